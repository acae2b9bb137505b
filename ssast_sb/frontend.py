"""Waveforms to SSAST input features, exactly as the original loader (docs/fidelity.md a.1-a.2).

Per clip: remove the DC offset, compute a 128-bin Kaldi fbank (25 ms Hanning
windows every 10 ms, no dither), pad with zeros or cut to ``target_frames``,
and only then normalise with ``(x - mean) / (2 * std)``. Padded frames therefore
hold ``-mean / (2 * std)``, not 0, as in the original.

Authors
 * ssast-sb contributors
"""

import logging

import torch
import torchaudio

from ssast_sb.batch_padding import MIN_FRAMES

logger = logging.getLogger(__name__)

#: The sample rate every SSAST model was trained on.
SAMPLE_RATE = 16000
#: Kaldi framing at 16 kHz: 25 ms windows (samples) every 10 ms (samples).
FRAME_LENGTH = 400
FRAME_SHIFT = 160

#: Dataset statistics ``(mean, std)`` of the log-mel fbank used by the original recipes.
NORM_STATS = {
    "audioset": (-4.2677393, 4.5689974),
    "esc50": (-6.6268077, 5.358466),
    "speechcommands": (-6.845978, 5.5654526),
}

#: ``(target_frames, statistics)`` of the original recipes.
PRESETS = {
    "pretrain": (1024, "audioset"),
    "audioset": (1024, "audioset"),
    "esc50": (512, "esc50"),
    "speechcommands": (128, "speechcommands"),
}


def kaldi_fbank(waveform, sample_rate=SAMPLE_RATE, num_mel_bins=128, frame_shift_ms=10.0):
    """The original SSAST fbank of one clip (DC offset removed first).

    Arguments
    ---------
    waveform : torch.Tensor
        ``(N,)`` samples of one clip.
    sample_rate : int
        Sample rate of ``waveform``.
    num_mel_bins : int
        Mel bins (128 in every SSAST model).
    frame_shift_ms : float
        Hop in milliseconds.

    Returns
    -------
    torch.Tensor
        ``(frames, num_mel_bins)`` log-mel features, ``frames = 1 + (N - 400) // 160``.

    Example
    -------
    >>> kaldi_fbank(torch.randn(16000)).shape
    torch.Size([98, 128])
    """
    waveform = waveform - waveform.mean()
    return torchaudio.compliance.kaldi.fbank(
        waveform.unsqueeze(0),
        htk_compat=True,
        sample_frequency=sample_rate,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=num_mel_bins,
        dither=0.0,
        frame_shift=frame_shift_ms,
    )


def pad_or_cut(features, target_frames):
    """Zero-pads at the end or cuts the tail to ``target_frames`` frames.

    Arguments
    ---------
    features : torch.Tensor
        ``(frames, bins)``.
    target_frames : int
        Wanted number of frames.

    Returns
    -------
    torch.Tensor
        ``(target_frames, bins)``.

    Example
    -------
    >>> pad_or_cut(torch.ones(3, 2), 5)[:, 0]
    tensor([1., 1., 1., 0., 0.])
    >>> pad_or_cut(torch.ones(3, 2), 2).shape
    torch.Size([2, 2])
    """
    missing = target_frames - features.shape[0]
    if missing > 0:
        return torch.nn.functional.pad(features, (0, 0, 0, missing))
    return features[:target_frames]


def resample_to(waveforms, sample_rate, target_rate=SAMPLE_RATE, source="audio"):
    """Resamples to ``target_rate`` (with one log line) when the rates differ.

    Arguments
    ---------
    waveforms : torch.Tensor
        ``(..., N)`` samples.
    sample_rate : int
        Their sample rate.
    target_rate : int
        Wanted sample rate.
    source : str
        What the audio is, for the log line (a file name, say).

    Returns
    -------
    torch.Tensor
        The resampled (or unchanged) waveforms.

    Example
    -------
    >>> resample_to(torch.randn(2, 8000), 8000).shape
    torch.Size([2, 16000])
    """
    if int(sample_rate) == int(target_rate):
        return waveforms
    logger.info("Resampling %s from %d Hz to %d Hz", source, sample_rate, target_rate)
    return torchaudio.functional.resample(waveforms, int(sample_rate), int(target_rate))


class SSASTFbank(torch.nn.Module):
    """Batch of waveforms with SpeechBrain relative lengths to SSAST features.

    Arguments
    ---------
    target_frames : int
        Frames per clip after padding or cutting (1024 pretraining and AudioSet,
        512 ESC-50, 128 Speech Commands).
    mean, std : float
        Dataset statistics; the output is ``(fbank - mean) / (2 * std)``.
    sample_rate : int
        Sample rate of the incoming waveforms; anything but 16 kHz is resampled.
    num_mel_bins : int
        Mel bins.
    variable_length : bool
        Opt-in departure: clips longer than ``target_frames`` are still cut, but
        shorter ones are padded only to the longest clip of their batch (at
        least :data:`MIN_FRAMES`), for an encoder built with
        ``EncoderConfig(variable_length=True)``. The original pads every clip
        to ``target_frames``.

    Example
    -------
    >>> fbank = SSASTFbank.from_preset("esc50")
    >>> wavs = torch.randn(2, 16000)
    >>> fbank(wavs, torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 512, 128])
    """

    def __init__(
        self,
        target_frames=1024,
        mean=NORM_STATS["audioset"][0],
        std=NORM_STATS["audioset"][1],
        sample_rate=SAMPLE_RATE,
        num_mel_bins=128,
        variable_length=False,
    ):
        super().__init__()
        self.variable_length = variable_length
        self.target_frames = target_frames
        self.mean = mean
        self.std = std
        self.sample_rate = sample_rate
        self.num_mel_bins = num_mel_bins

    @classmethod
    def from_preset(cls, name, **overrides):
        """Builds the frontend of an original recipe.

        Arguments
        ---------
        name : str
            One of :data:`PRESETS` (``pretrain``, ``audioset``, ``esc50``,
            ``speechcommands``).
        **overrides
            Constructor arguments to change.

        Returns
        -------
        SSASTFbank

        Example
        -------
        >>> SSASTFbank.from_preset("speechcommands").target_frames
        128
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose from {sorted(PRESETS)}")
        target_frames, stats = PRESETS[name]
        mean, std = NORM_STATS[stats]
        kwargs = dict(target_frames=target_frames, mean=mean, std=std)
        kwargs.update(overrides)
        return cls(**kwargs)

    def raw_features(self, waveform):
        """Unnormalised fbank of one 16 kHz clip, padded or cut (original order).

        With ``variable_length``, a shorter clip keeps its length (see :meth:`stack`).
        """
        features = self.raw_features_unpadded(waveform)
        if self.variable_length and features.shape[0] < self.target_frames:
            return features
        return pad_or_cut(features, self.target_frames)

    def stack(self, features):
        """Stacks normalised clips into a batch, padding shorter ones at the end.

        The padding value is that of zero fbank after normalisation, what the
        original's zero padding before normalisation gives.

        Arguments
        ---------
        features : list of torch.Tensor
            ``(T_i, F)`` normalised features.

        Returns
        -------
        torch.Tensor
            ``(B, max(T_i, MIN_FRAMES), F)``.

        Example
        -------
        >>> frontend = SSASTFbank(target_frames=100, variable_length=True)
        >>> frontend.stack([torch.zeros(30, 128), torch.zeros(20, 128)]).shape
        torch.Size([2, 30, 128])
        """
        frames = max(MIN_FRAMES, max(f.shape[0] for f in features))
        pad_value = float(self.normalize(torch.zeros(())))
        return torch.stack(
            [
                torch.nn.functional.pad(f, (0, 0, 0, frames - f.shape[0]), value=pad_value)
                for f in features
            ]
        )

    def raw_features_unpadded(self, waveform):
        """Unnormalised fbank of one 16 kHz clip at its own length ``(T, F)``.

        A clip shorter than one 25 ms window is zero-padded to it. The warning
        naming the file comes from :func:`ssast_sb.data.audio.load_audio`, which
        knows the path; here, where only samples are known, it is a DEBUG line.
        """
        min_samples = FRAME_LENGTH  # one 25 ms window
        if waveform.numel() < min_samples:
            logger.debug(
                "Clip of %d samples is shorter than one 25 ms window; zero-padded",
                waveform.numel(),
            )
            waveform = torch.nn.functional.pad(waveform, (0, min_samples - waveform.numel()))
        return kaldi_fbank(waveform, SAMPLE_RATE, self.num_mel_bins)

    def real_frames(self, num_samples):
        """Frames of real audio in the features of clips of ``num_samples`` samples.

        Kaldi framing gives ``1 + (N - 400) // 160`` frames (a clip shorter than
        one window is padded to it), capped at ``target_frames``; what lies beyond
        is padding. Real-audio pooling averages only the patches over these frames.

        Arguments
        ---------
        num_samples : torch.Tensor
            ``(B,)`` samples per clip at 16 kHz.

        Returns
        -------
        torch.Tensor
            ``(B,)`` int64, on the device of ``num_samples``.

        Example
        -------
        >>> SSASTFbank(target_frames=100).real_frames(torch.tensor([16000, 8000, 100]))
        tensor([98, 48,  1])
        """
        samples = torch.as_tensor(num_samples).long().clamp(min=FRAME_LENGTH)
        return (1 + (samples - FRAME_LENGTH) // FRAME_SHIFT).clamp(max=self.target_frames)

    def normalize(self, features):
        """``(features - mean) / (2 * std)`` as the original loader."""
        return (features - self.mean) / (self.std * 2)

    @torch.no_grad()
    def forward(self, wavs, wav_lens=None):
        """Computes ``(B, target_frames, num_mel_bins)`` features.

        With ``variable_length``, the batch is as long as its longest clip.

        Arguments
        ---------
        wavs : torch.Tensor
            ``(B, N)`` waveforms, zero-padded at the end.
        wav_lens : torch.Tensor, optional
            ``(B,)`` SpeechBrain relative lengths in (0, 1].

        Returns
        -------
        torch.Tensor
            Normalised features, float32.
        """
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        if wavs.dim() != 2:
            raise ValueError(f"SSASTFbank expects (batch, samples), got {tuple(wavs.shape)}")
        wavs = resample_to(wavs.float(), self.sample_rate, SAMPLE_RATE, "a batch of waveforms")
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0])
        num_samples = (
            (wav_lens.float().cpu() * wavs.shape[1]).round().long().clamp(max=wavs.shape[1])
        )
        return self.stack(
            [
                self.normalize(self.raw_features(wav[:length]))
                for wav, length in zip(wavs, num_samples.tolist())
            ]
        )
