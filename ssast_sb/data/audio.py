"""Reading audio files for data preparation and training.

Everything goes through `soundfile`, so WAV, FLAC, OGG and MP3 work without
torchcodec. Problems surface as `AudioError` subclasses whose messages name the
file and what is wrong with it, so a bad clip in a 2-million-file corpus can be
found from the log line alone.

Example
-------
>>> import tempfile, os
>>> import numpy as np, soundfile as sf
>>> tmp = tempfile.mkdtemp()
>>> path = os.path.join(tmp, "tone.wav")
>>> sf.write(path, np.zeros(8000, dtype="float32"), 16000)
>>> load_audio(path).shape
torch.Size([8000])
>>> audio_info(path).duration_s
0.5
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

logger = logging.getLogger(__name__)


class AudioError(ValueError):
    """Base class of the errors raised when an audio file cannot be used."""


class AudioFileMissingError(AudioError):
    """The audio file does not exist (or is not a regular file)."""


class AudioDecodeError(AudioError):
    """The file exists but soundfile cannot read it (corrupt or unknown format)."""


class EmptyAudioError(AudioError):
    """The file holds no samples (zero bytes or zero frames)."""


class NonFiniteAudioError(AudioError):
    """The decoded samples contain NaN or infinite values."""


@dataclass(frozen=True)
class AudioInfo:
    """Header information of an audio file.

    Arguments
    ---------
    num_frames : int
        Number of samples per channel.
    sample_rate : int
        Sampling rate in Hz.
    channels : int
        Number of channels.
    duration_s : float
        Duration in seconds (``num_frames / sample_rate``).
    """

    num_frames: int
    sample_rate: int
    channels: int
    duration_s: float


def _check_file(path):
    """Raise `AudioFileMissingError` or `EmptyAudioError` before soundfile sees the file."""
    path = Path(path)
    if not path.exists():
        raise AudioFileMissingError(f"Audio file not found: {path}")
    if not path.is_file():
        raise AudioFileMissingError(f"Audio path is not a regular file: {path}")
    if path.stat().st_size == 0:
        raise EmptyAudioError(f"Audio file is empty (0 bytes): {path}")
    return path


def audio_info(path):
    """Read the header of an audio file without decoding the samples.

    Arguments
    ---------
    path : str or pathlib.Path
        The audio file.

    Returns
    -------
    AudioInfo
        Number of frames, sample rate, channels and duration in seconds.

    Raises
    ------
    AudioFileMissingError, AudioDecodeError, EmptyAudioError

    Example
    -------
    >>> import tempfile, os
    >>> import numpy as np, soundfile as sf
    >>> path = os.path.join(tempfile.mkdtemp(), "stereo.flac")
    >>> sf.write(path, np.zeros((4000, 2), dtype="float32"), 8000)
    >>> audio_info(path)
    AudioInfo(num_frames=4000, sample_rate=8000, channels=2, duration_s=0.5)
    """
    path = _check_file(path)
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError) as err:
        raise AudioDecodeError(f"Cannot read audio file {path}: {err}") from err
    if info.frames <= 0:
        raise EmptyAudioError(f"Audio file has no samples: {path}")
    return AudioInfo(
        num_frames=int(info.frames),
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        duration_s=info.frames / info.samplerate,
    )


def load_audio(path, target_sample_rate=16000):
    """Load an audio file as a mono float32 waveform.

    Multichannel audio is mixed down by averaging the channels; audio at another
    rate is resampled to ``target_sample_rate``. Both are logged at INFO level,
    because a corpus that is silently resampled is a common source of surprises.

    Arguments
    ---------
    path : str or pathlib.Path
        The audio file (anything soundfile reads: wav, flac, ogg, mp3, ...).
    target_sample_rate : int or None
        Sampling rate of the returned waveform in Hz; ``None`` keeps the file's rate.

    Returns
    -------
    torch.Tensor
        1-D float32 tensor of samples, nominally in [-1, 1].

    Raises
    ------
    AudioFileMissingError, AudioDecodeError, EmptyAudioError, NonFiniteAudioError

    Example
    -------
    >>> import tempfile, os
    >>> import numpy as np, soundfile as sf
    >>> path = os.path.join(tempfile.mkdtemp(), "stereo_8k.wav")
    >>> sf.write(path, np.full((8000, 2), 0.25, dtype="float32"), 8000)
    >>> wav = load_audio(path, target_sample_rate=16000)
    >>> wav.shape, wav.dtype
    (torch.Size([16000]), torch.float32)
    """
    path = _check_file(path)
    try:
        samples, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as err:
        raise AudioDecodeError(f"Cannot decode audio file {path}: {err}") from err

    num_frames, channels = samples.shape
    if num_frames == 0:
        raise EmptyAudioError(f"Audio file has no samples: {path}")
    finite = np.isfinite(samples)
    if not finite.all():
        num_bad = int(samples.size - finite.sum())
        raise NonFiniteAudioError(f"Audio file {path} contains {num_bad} NaN or infinite sample(s)")

    if channels > 1:
        logger.info("Mixing %d channels down to mono: %s", channels, path)
        samples = samples.mean(axis=1)
    else:
        samples = samples[:, 0]
    waveform = torch.from_numpy(np.ascontiguousarray(samples))

    if target_sample_rate is not None and sample_rate != target_sample_rate:
        logger.info("Resampling %s from %d Hz to %d Hz", path, sample_rate, target_sample_rate)
        waveform = torchaudio.functional.resample(
            waveform, orig_freq=sample_rate, new_freq=target_sample_rate
        )
    return waveform.to(torch.float32)
