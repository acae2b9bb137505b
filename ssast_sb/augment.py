"""Fine-tuning augmentations of the original SSAST loader (docs/fidelity.md a.3).

The original applies, to each training clip and in this order:

1. mixup on the *waveform* with probability ``mixup``: both clips DC-removed,
   the partner padded or cut to the first clip's length, ``lam ~ Beta(10, 10)``,
   the mix DC-removed again, labels mixed with the same ``lam``
   (:func:`mixup_waveforms`, :func:`mix_labels`, :func:`draw_mixup_lambda`);
2. SpecAugment on the *unnormalised* log-mel: one frequency mask and one time
   mask filled with 0, so after normalisation the masked cells hold
   ``-mean / (2 std)`` (:func:`spec_augment`);
3. after normalisation, if ``noise`` is on: small positive uniform noise and a
   circular shift along time (:func:`add_noise_and_roll`).

Every function takes its random generator explicitly, so a worker seeded once
reproduces the same augmented clips. :class:`FinetuneAugmentation` bundles the
per-task settings of the released recipes (docs/fidelity.md a.3 table, d.2).

Authors
 * ssast-sb contributors
"""

from dataclasses import dataclass

import torch

#: Beta(a, a) parameter of the mixup ratio (dataloader.py uses np.random.beta(10, 10)).
MIXUP_BETA = 10.0
#: The time shift of the roll is drawn from [-MAX_ROLL_FRAMES, MAX_ROLL_FRAMES - 1].
MAX_ROLL_FRAMES = 10


def _mask_interval(size, mask_param, generator):
    """Start and end of one mask along an axis of ``size`` entries.

    Copies ``torchaudio.functional.mask_along_axis`` draw for draw: the width
    is ``floor(U * mask_param)`` and the start ``trunc(U' * (size - U * mask_param))``,
    i.e. the start uses the width *before* flooring, as torchaudio does.
    """
    value = torch.rand(1, generator=generator) * mask_param
    min_value = torch.rand(1, generator=generator) * (size - value)
    start = int(min_value.long())
    return start, start + int(value.long())


def spec_augment(fbank, freqm, timem, generator=None):
    """One frequency mask and one time mask on an unnormalised ``(T, F)`` fbank.

    Matches ``torchaudio.transforms.FrequencyMasking(freqm)`` followed by
    ``TimeMasking(timem)`` (``iid_masks=False``) as the original loader applies
    them: each mask is ``floor(U * param)`` wide, so in ``[0, param)``, and filled
    with 0. With the same seed, this function and the torchaudio transforms
    (drawing from the default generator) give identical masks. A parameter of 0
    skips that mask without drawing random numbers, like torchaudio.

    Arguments
    ---------
    fbank : torch.Tensor
        ``(T, F)`` log-mel filterbank, before normalisation (docs/fidelity.md a.3, f.6).
    freqm : int
        Maximum frequency-mask width in mel bins (exclusive).
    timem : int
        Maximum time-mask width in frames (exclusive).
    generator : torch.Generator, optional
        Source of randomness (CPU); the default generator when None.

    Returns
    -------
    torch.Tensor
        A masked copy of ``fbank``; the input is not modified.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> out = spec_augment(torch.ones(100, 128), freqm=48, timem=192, generator=g)
    >>> out.shape, bool((out == 0).any())
    (torch.Size([100, 128]), True)
    """
    if fbank.dim() != 2:
        raise ValueError(f"spec_augment expects a (T, F) fbank, got shape {tuple(fbank.shape)}")
    out = fbank.clone()
    num_frames, num_bins = fbank.shape
    if freqm >= 1:
        start, end = _mask_interval(num_bins, freqm, generator)
        out[:, max(start, 0) : max(end, 0)] = 0.0
    if timem >= 1:
        start, end = _mask_interval(num_frames, timem, generator)
        out[max(start, 0) : max(end, 0), :] = 0.0
    return out


def _remove_dc(waveform):
    return waveform - waveform.mean(dim=-1, keepdim=True)


def mixup_waveforms(wave1, wave2, lam):
    """Mix two waveforms the way the original loader does.

    Both are DC-removed, ``wave2`` is zero-padded or cut at the end to the
    length of ``wave1``, the mix ``lam * wave1 + (1 - lam) * wave2`` is formed
    and DC-removed again (docs/fidelity.md a.3).

    Arguments
    ---------
    wave1 : torch.Tensor
        ``(..., N1)`` samples of the clip being augmented; sets the output length.
    wave2 : torch.Tensor
        ``(..., N2)`` samples of the partner clip.
    lam : float
        Weight of ``wave1``, e.g. from :func:`draw_mixup_lambda`.

    Returns
    -------
    torch.Tensor
        ``(..., N1)`` mixed waveform with zero mean.

    Example
    -------
    >>> mixed = mixup_waveforms(torch.ones(4) + 1, torch.tensor([1.0, -1.0]), 0.5)
    >>> mixed.shape, round(float(mixed.mean()), 6)
    (torch.Size([4]), 0.0)
    """
    wave1, wave2 = _remove_dc(wave1), _remove_dc(wave2)
    length1, length2 = wave1.shape[-1], wave2.shape[-1]
    if length2 < length1:
        wave2 = torch.nn.functional.pad(wave2, (0, length1 - length2))
    else:
        wave2 = wave2[..., :length1]
    return _remove_dc(lam * wave1 + (1.0 - lam) * wave2)


def mix_labels(y1, y2, lam):
    """Mix two (multi-hot or one-hot) label vectors: ``lam * y1 + (1 - lam) * y2``.

    Arguments
    ---------
    y1 : torch.Tensor
        Labels of the clip being augmented.
    y2 : torch.Tensor
        Labels of the partner, same shape.
    lam : float
        The ratio used for the waveforms.

    Returns
    -------
    torch.Tensor
        Soft labels.

    Example
    -------
    >>> mix_labels(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), 0.75)
    tensor([0.7500, 0.2500])
    """
    if y1.shape != y2.shape:
        raise ValueError(f"Label shapes differ: {tuple(y1.shape)} vs {tuple(y2.shape)}")
    return lam * y1 + (1.0 - lam) * y2


def draw_mixup_lambda(rng):
    """Draw the mixup ratio ``lam ~ Beta(10, 10)`` (mean 0.5, std about 0.11).

    Arguments
    ---------
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    float
        A value in (0, 1).

    Example
    -------
    >>> import numpy as np
    >>> lam = draw_mixup_lambda(np.random.default_rng(0))
    >>> 0.0 < lam < 1.0
    True
    """
    return float(rng.beta(MIXUP_BETA, MIXUP_BETA))


def add_noise_and_roll(features, generator=None):
    """Add small positive noise, then roll along time (the original ``noise=True``).

    Computes ``x + U[0,1)^{T x F} * u / 10`` with one ``u ~ U(0, 1)`` per clip,
    then ``torch.roll`` by an integer shift in ``[-10, 9]`` frames along time
    (``np.random.randint(-10, 10)`` in the original). It is applied *after*
    normalisation, so the noise is at most 0.1 against a feature std of about 0.5.

    Arguments
    ---------
    features : torch.Tensor
        ``(T, F)`` normalised features of one clip.
    generator : torch.Generator, optional
        Source of randomness (CPU); the default generator when None.

    Returns
    -------
    torch.Tensor
        A new ``(T, F)`` tensor.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> out = add_noise_and_roll(torch.zeros(50, 8), generator=g)
    >>> out.shape, bool(out.min() >= 0), bool(out.max() < 0.1)
    (torch.Size([50, 8]), True, True)
    """
    if features.dim() != 2:
        raise ValueError(
            f"add_noise_and_roll expects (T, F) features, got shape {tuple(features.shape)}"
        )
    noise = torch.rand(features.shape, generator=generator, dtype=features.dtype)
    scale = torch.rand(1, generator=generator, dtype=features.dtype) / 10
    shift = int(torch.randint(-MAX_ROLL_FRAMES, MAX_ROLL_FRAMES, (1,), generator=generator))
    noisy = features + noise.to(features.device) * scale.to(features.device)
    return torch.roll(noisy, shifts=shift, dims=0)


@dataclass(frozen=True)
class FinetuneAugmentation:
    """Augmentation settings of a fine-tuning recipe (docs/fidelity.md a.3, d.2).

    Arguments
    ---------
    freqm : int
        Maximum frequency-mask width (0: no frequency mask).
    timem : int
        Maximum time-mask width (0: no time mask).
    mixup : float
        Probability that a training clip is mixed with a random partner.
    noise : bool
        Whether to add noise and roll after normalisation.

    Example
    -------
    >>> FinetuneAugmentation.preset("esc50")
    FinetuneAugmentation(freqm=24, timem=96, mixup=0.0, noise=True)
    >>> aug = FinetuneAugmentation.preset("speechcommands")
    >>> g = torch.Generator().manual_seed(0)
    >>> aug.augment_features(aug.augment_fbank(torch.ones(128, 128), g), g).shape
    torch.Size([128, 128])
    """

    freqm: int = 0
    timem: int = 0
    mixup: float = 0.0
    noise: bool = False

    def __post_init__(self):
        if self.freqm < 0 or self.timem < 0:
            raise ValueError(
                f"Mask widths must be >= 0, got freqm={self.freqm}, timem={self.timem}"
            )
        if not 0.0 <= self.mixup <= 1.0:
            raise ValueError(f"mixup is a probability in [0, 1], got {self.mixup}")

    @classmethod
    def preset(cls, task):
        """Settings of a released recipe.

        Arguments
        ---------
        task : str
            One of ``"audioset"``, ``"esc50"``, ``"speechcommands"`` or ``"none"``
            (no augmentation: pretraining, evaluation and the SUPERB tasks).

        Returns
        -------
        FinetuneAugmentation

        Example
        -------
        >>> FinetuneAugmentation.preset("audioset").mixup
        0.5
        """
        if task not in PRESETS:
            raise ValueError(f"Unknown augmentation preset {task!r}; choose from {list(PRESETS)}")
        return PRESETS[task]

    def augment_fbank(self, fbank, generator=None):
        """Apply SpecAugment to an unnormalised ``(T, F)`` fbank (identity if both widths are 0).

        Arguments
        ---------
        fbank : torch.Tensor
            ``(T, F)`` log-mel before normalisation.
        generator : torch.Generator, optional
            Source of randomness.

        Returns
        -------
        torch.Tensor

        Example
        -------
        >>> x = torch.ones(10, 4)
        >>> FinetuneAugmentation().augment_fbank(x) is x
        True
        """
        if self.freqm == 0 and self.timem == 0:
            return fbank
        return spec_augment(fbank, self.freqm, self.timem, generator)

    def augment_features(self, features, generator=None):
        """Apply noise and roll to normalised ``(T, F)`` features when ``noise`` is on.

        Arguments
        ---------
        features : torch.Tensor
            ``(T, F)`` features after normalisation.
        generator : torch.Generator, optional
            Source of randomness.

        Returns
        -------
        torch.Tensor

        Example
        -------
        >>> x = torch.zeros(10, 4)
        >>> FinetuneAugmentation(noise=False).augment_features(x) is x
        True
        """
        if not self.noise:
            return features
        return add_noise_and_roll(features, generator)


#: The released recipes' settings (run_as.sh, run_esc_*.sh, run_sc.sh; docs/fidelity.md a.3).
PRESETS = {
    "audioset": FinetuneAugmentation(freqm=48, timem=192, mixup=0.5, noise=False),
    "esc50": FinetuneAugmentation(freqm=24, timem=96, mixup=0.0, noise=True),
    "speechcommands": FinetuneAugmentation(freqm=48, timem=48, mixup=0.6, noise=True),
    "none": FinetuneAugmentation(),
}
