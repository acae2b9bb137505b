"""Reading audio files for data preparation and training.

Everything goes through `soundfile`, so WAV, FLAC, OGG and MP3 work without
torchcodec. Problems surface as `AudioError` subclasses whose messages name the
file and what is wrong with it, so a bad clip in a 2-million-file corpus can be
found from the log line alone.

A file whose header declares more audio than it holds (a copy cut short, a
download that stopped) is a `TruncatedAudioError`, both when its header is read
(`audio_info`) and when it is decoded (`load_audio`): libsndfile itself would
silently report the shorter length.

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

import atexit
import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from ssast_sb.errors import UserError

logger = logging.getLogger(__name__)

#: A file may hold this much less audio than its header declares (seconds) before it
#: counts as truncated: well under one 10 ms fbank hop.
TRUNCATION_TOLERANCE_S = 0.005
#: The shortest clip that fills one 25 ms analysis window.
MIN_CLIP_S = 0.025
#: soundfile formats whose length libsndfile takes from a RIFF/RF64 data chunk.
_RIFF_FORMATS = ("WAV", "WAVEX", "RF64")
#: Placeholder sizes that streaming writers leave in a data chunk: length unknown.
_UNKNOWN_CHUNK_SIZES = (0, 0xFFFFFFFF)
_RIFF_MAX_CHUNKS = 64
_DECODE_BLOCK = 4096

# (kind, path) pairs already logged by this process: each is announced once.
_ANNOUNCED = set()
#: Names the folder shared with the loaders' workers (``<owner pid>:<folder>``).
_SHARED_ANNOUNCEMENTS = "SSAST_SB_ANNOUNCEMENTS"


class AudioError(UserError, ValueError):
    """Base class of the errors raised when an audio file cannot be used."""


class AudioFileMissingError(AudioError):
    """The audio file does not exist (or is not a regular file)."""


class AudioDecodeError(AudioError):
    """The file exists but soundfile cannot read it (corrupt or unknown format)."""


class TruncatedAudioError(AudioDecodeError):
    """The file holds less audio than its header declares (cut short)."""


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


def announce_once(kind, path, level, message, *args, log=None):
    """Log ``message`` the first time this process sees ``(kind, path)``; later calls are silent.

    Arguments
    ---------
    kind : str
        What is announced (``"resample"``, ``"mixdown"``, ``"short"``, ...).
    path : str or pathlib.Path
        The file it is about.
    level : int
        Logging level, e.g. ``logging.INFO``.
    message : str
        ``%``-style format string of the log line; ``args`` fill it.
    *args
        Values of the format string.
    log : logging.Logger, optional
        The logger to use; this module's by default.

    Returns
    -------
    bool
        True when the line was logged now.

    Example
    -------
    >>> announce_once("doc", "/x/a.wav", logging.DEBUG, "first %s", "time")
    True
    >>> announce_once("doc", "/x/a.wav", logging.DEBUG, "first %s", "time")
    False
    """
    key = (kind, str(path))
    if key in _ANNOUNCED:
        return False
    _ANNOUNCED.add(key)
    folder = _shared_announcements()
    if folder is not None:
        marker = os.path.join(folder, hashlib.sha1(repr(key).encode()).hexdigest())
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:  # another worker of this run, or this one in an earlier epoch
            return False
    (log or logger).log(level, message, *args)
    return True


def share_announcements_with_workers():
    """Makes :func:`announce_once` count once per run, across the loaders' worker processes.

    A ``DataLoader`` starts new worker processes every epoch, each with its own
    memory: without this, every worker announced a resampled file again at every
    epoch. Called in the main process before the loaders start (the pipelines
    call it); announcements are then marked in a temporary folder that the
    workers find through an environment variable and that is removed at exit.

    Example
    -------
    >>> share_announcements_with_workers()
    >>> _shared_announcements() is not None
    True
    """
    if _shared_announcements() is not None:
        return
    folder = tempfile.mkdtemp(prefix="ssast-sb-announced-")
    os.environ[_SHARED_ANNOUNCEMENTS] = f"{os.getpid()}:{folder}"
    atexit.register(shutil.rmtree, folder, True)


def _shared_announcements():
    """The folder of this run's announcements: this process's, or its loader parent's."""
    owner, _, folder = os.environ.get(_SHARED_ANNOUNCEMENTS, "").partition(":")
    if not owner.isdigit() or not os.path.isdir(folder):
        return None
    if int(owner) == os.getpid():
        return folder
    # A loader worker of the owner; any other child (a recipe started by a test) has its own.
    in_worker = torch.utils.data.get_worker_info() is not None
    return folder if in_worker and int(owner) == os.getppid() else None


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


def _riff_chunks(stream):
    """``(chunk id, size, stream position of its body)`` of the chunks of a RIFF file."""
    for _ in range(_RIFF_MAX_CHUNKS):
        header = stream.read(8)
        if len(header) < 8:
            return
        chunk_id, size = header[:4], int.from_bytes(header[4:], "little")
        start = stream.tell()
        yield chunk_id, size, start
        stream.seek(start + size + (size & 1))  # chunks are padded to an even size


def riff_declared_frames(path):
    """Frames that the data chunk of a WAV (RIFF or RF64) file declares, read from its header.

    libsndfile clamps the frame count of a WAV file to what the file holds, so a
    file cut short looks like a short clip; the size written in its ``data``
    chunk still tells how long it was meant to be.

    Arguments
    ---------
    path : str or pathlib.Path
        A WAV file.

    Returns
    -------
    int or None
        The declared number of frames; None when the file is no little-endian
        RIFF/RF64 WAV or its header leaves the length open (a streaming placeholder).

    Example
    -------
    >>> import tempfile, os
    >>> import numpy as np, soundfile as sf
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(path, np.zeros((1000, 2), dtype="float32"), 16000, subtype="PCM_16")
    >>> riff_declared_frames(path)
    1000
    >>> _ = open(path, "r+b").truncate(100)  # cut the file short
    >>> riff_declared_frames(path), sf.info(path).frames
    (1000, 14)
    """
    block_align, ds64_data_size = None, None
    with open(path, "rb") as stream:
        riff = stream.read(12)
        if len(riff) < 12 or riff[:4] not in (b"RIFF", b"RF64") or riff[8:] != b"WAVE":
            return None
        for chunk_id, size, start in _riff_chunks(stream):
            if chunk_id in (b"fmt ", b"ds64"):
                body = stream.read(min(size, 32))
                if chunk_id == b"fmt " and len(body) >= 14:
                    block_align = int.from_bytes(body[12:14], "little")
                elif chunk_id == b"ds64" and len(body) >= 16:
                    ds64_data_size = int.from_bytes(body[8:16], "little")
            elif chunk_id == b"data":
                if size == 0xFFFFFFFF and ds64_data_size is not None:
                    size = ds64_data_size
                if not block_align or size in _UNKNOWN_CHUNK_SIZES:
                    return None
                return size // block_align
    return None


def _decodable_frames(path):
    """Frames that actually decode, reading block by block until the data ends or breaks."""
    count = 0
    try:
        with sf.SoundFile(str(path)) as stream:
            while True:
                block = stream.read(_DECODE_BLOCK, dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                count += len(block)
    except (sf.SoundFileError, RuntimeError):
        pass
    return count


def _truncation_error(path, declared, actual, sample_rate):
    """The `TruncatedAudioError` naming the file and both lengths."""
    return TruncatedAudioError(
        f"Audio file {path} is truncated: its header declares {declared} frames "
        f"({declared / sample_rate:.3f} s at {sample_rate} Hz) but it holds only {actual} "
        f"({actual / sample_rate:.3f} s). Copy or download it again, or drop it with "
        "on_bad_audio: skip."
    )


def _check_length(path, declared, actual, sample_rate):
    """Raise `TruncatedAudioError` when ``actual`` falls short of ``declared`` beyond tolerance."""
    if declared is None:
        return
    tolerance = max(1, int(round(TRUNCATION_TOLERANCE_S * sample_rate)))
    if declared - actual > tolerance:
        raise _truncation_error(path, declared, actual, sample_rate)


def _declared_frames(path, info):
    """Length the header declares: WAV's RIFF data chunk, FLAC's STREAMINFO; None otherwise.

    Other formats (OGG, MP3) have no declared length that decoding must reach.
    """
    if info.format in _RIFF_FORMATS:
        return riff_declared_frames(path)
    if info.format == "FLAC":
        return int(info.frames)
    return None


def _check_header_length(path, info):
    """Cheap truncation check from the header, before decoding anything.

    WAV: the data chunk's declared size against the frames libsndfile found.
    FLAC: its STREAMINFO frame count is only a promise, so the last frame is
    sought and read; only when that fails is the file decoded to count its frames.
    """
    if info.format in _RIFF_FORMATS:
        _check_length(path, riff_declared_frames(path), int(info.frames), info.samplerate)
    elif info.format == "FLAC":
        try:
            with sf.SoundFile(str(path)) as stream:
                stream.seek(info.frames - 1)
                last = stream.read(1, dtype="float32")
        except (sf.SoundFileError, RuntimeError):
            last = []
        if len(last) == 0:
            _check_length(path, int(info.frames), _decodable_frames(path), info.samplerate)


def audio_info(path):
    """Read the header of an audio file without decoding the samples.

    The length the header declares is checked against what the file holds
    (cheaply: the RIFF data chunk of a WAV file, the last frame of a FLAC file).

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
    AudioFileMissingError, AudioDecodeError, TruncatedAudioError, EmptyAudioError

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
    _check_header_length(path, info)
    return AudioInfo(
        num_frames=int(info.frames),
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        duration_s=info.frames / info.samplerate,
    )


def _decode(path):
    """All samples ``(frames, channels)`` and the rate; truncation and decode errors named."""
    try:
        info = sf.info(str(path))
        declared = _declared_frames(path, info)
    except (sf.SoundFileError, RuntimeError) as err:
        raise AudioDecodeError(f"Cannot decode audio file {path}: {err}") from err
    try:
        samples, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as err:
        _check_length(path, declared, _decodable_frames(path), info.samplerate)
        raise AudioDecodeError(f"Cannot decode audio file {path}: {err}") from err
    if len(samples):
        _check_length(path, declared, len(samples), sample_rate)
    return samples, sample_rate


def _to_mono(samples, path):
    """Average the channels of ``(frames, channels)`` samples (announced once per file)."""
    channels = samples.shape[1]
    if channels == 1:
        return samples[:, 0]
    announce_once(
        "mixdown", path, logging.INFO, "Mixing %d channels down to mono: %s", channels, path
    )
    return samples.mean(axis=1)


def _warn_if_shorter_than_a_window(waveform, sample_rate, path):
    """Warn (once per file) that a clip is too short for one 25 ms window."""
    window = int(round(MIN_CLIP_S * sample_rate))
    if waveform.numel() < window:
        announce_once(
            "short",
            path,
            logging.WARNING,
            "Clip %s holds %d samples at %d Hz, shorter than one 25 ms window (%d samples); "
            "its features are computed on a zero-padded window",
            path,
            waveform.numel(),
            sample_rate,
            window,
        )


def load_audio(path, target_sample_rate=16000):
    """Load an audio file as a mono float32 waveform.

    Multichannel audio is mixed down by averaging the channels; audio at another
    rate is resampled to ``target_sample_rate``. Both are logged at INFO level,
    once per file and process, because a corpus that is silently resampled is a
    common source of surprises. A clip shorter than one 25 ms window is warned
    about (once per file): its features come from a zero-padded window.

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
    AudioFileMissingError, AudioDecodeError, TruncatedAudioError, EmptyAudioError,
    NonFiniteAudioError

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
    samples, sample_rate = _decode(path)
    if samples.shape[0] == 0:
        raise EmptyAudioError(f"Audio file has no samples: {path}")
    finite = np.isfinite(samples)
    if not finite.all():
        num_bad = int(samples.size - finite.sum())
        raise NonFiniteAudioError(f"Audio file {path} contains {num_bad} NaN or infinite sample(s)")

    waveform = torch.from_numpy(np.ascontiguousarray(_to_mono(samples, path)))
    output_rate = sample_rate
    if target_sample_rate is not None and sample_rate != target_sample_rate:
        announce_once(
            "resample",
            path,
            logging.INFO,
            "Resampling %s from %d Hz to %d Hz",
            path,
            sample_rate,
            target_sample_rate,
        )
        waveform = torchaudio.functional.resample(
            waveform, orig_freq=sample_rate, new_freq=target_sample_rate
        )
        output_rate = target_sample_rate
    _warn_if_shorter_than_a_window(waveform, output_rate, path)
    return waveform.to(torch.float32)
