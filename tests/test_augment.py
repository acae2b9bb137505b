"""Tests for ssast_sb.augment: the original fine-tuning augmentations (docs/fidelity.md a.3)."""

import numpy as np
import pytest
import torch
import torchaudio

from ssast_sb.augment import (
    PRESETS,
    FinetuneAugmentation,
    add_noise_and_roll,
    draw_mixup_lambda,
    mix_labels,
    mixup_waveforms,
    spec_augment,
)


def _mask_extent(masked, axis):
    """(start, width) of the zeroed band of an all-ones input along ``axis`` (0=time, 1=freq)."""
    zero_lines = (masked == 0).all(dim=1 - axis)
    indices = torch.nonzero(zero_lines).flatten()
    if indices.numel() == 0:
        return None, 0
    assert torch.equal(indices, torch.arange(indices[0], indices[-1] + 1)), "mask not contiguous"
    return int(indices[0]), indices.numel()


@pytest.mark.parametrize(
    "freqm,timem,shape",
    [(48, 192, (300, 128)), (24, 96, (150, 64)), (48, 48, (40, 128)), (0, 30, (100, 16))],
)
def test_spec_augment_matches_torchaudio_draw_for_draw(freqm, timem, shape):
    """Same seed, same masks as the original FrequencyMasking + TimeMasking on (1, F, T)."""
    for seed in range(20):
        fbank = torch.randn(shape) - 5.0
        torch.manual_seed(seed)
        spec = fbank.t().unsqueeze(0)  # the original layout (1, F, T)
        if freqm:
            spec = torchaudio.transforms.FrequencyMasking(freqm)(spec)
        spec = torchaudio.transforms.TimeMasking(timem)(spec)
        expected = spec.squeeze(0).t()
        ours = spec_augment(fbank, freqm, timem, torch.Generator().manual_seed(seed))
        assert torch.equal(ours, expected), f"seed {seed}"


def test_spec_augment_mask_width_distribution():
    generator = torch.Generator().manual_seed(0)
    freqm, timem, num_frames, num_bins = 24, 96, 200, 64
    freq_widths, time_widths, time_ends = [], [], []
    fbank = torch.ones(num_frames, num_bins)
    for _ in range(2000):
        out = spec_augment(fbank, freqm, timem, generator)
        assert bool(((out == 0) | (out == 1)).all())
        # A zeroed frequency column covers all frames, a zeroed time row all bins.
        _, freq_width = _mask_extent(out, axis=1)
        time_start, time_width = _mask_extent(out, axis=0)
        freq_widths.append(freq_width)
        time_widths.append(time_width)
        if time_width:
            time_ends.append(time_start + time_width)
    assert torch.equal(fbank, torch.ones(num_frames, num_bins)), "input modified"
    # Width = floor(U * param): every value of [0, param) occurs, never param itself.
    assert set(freq_widths) == set(range(freqm))
    assert set(time_widths) == set(range(timem))
    assert np.mean(freq_widths) == pytest.approx((freqm - 1) / 2, abs=0.6)
    assert np.mean(time_widths) == pytest.approx((timem - 1) / 2, abs=2.5)
    assert max(time_ends) <= num_frames


def test_spec_augment_fills_zero_before_normalisation():
    fbank = torch.full((100, 128), -7.0)
    out = spec_augment(fbank, 48, 48, torch.Generator().manual_seed(3))
    assert set(out.unique().tolist()) == {0.0, -7.0}
    with pytest.raises(ValueError, match=r"\(T, F\)"):
        spec_augment(torch.ones(1, 10, 10), 4, 4)


def test_spec_augment_zero_params_is_identity_and_draws_nothing():
    generator = torch.Generator().manual_seed(5)
    fbank = torch.randn(20, 8)
    out = spec_augment(fbank, 0, 0, generator)
    assert torch.equal(out, fbank) and out is not fbank
    assert torch.equal(generator.get_state(), torch.Generator().manual_seed(5).get_state())


def test_mixup_waveforms_pads_cuts_and_removes_dc():
    wave1 = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    short = torch.tensor([10.0, 12.0])
    lam = 0.3
    mixed = mixup_waveforms(wave1, short, lam)
    w1 = wave1 - wave1.mean()
    w2 = torch.tensor([-1.0, 1.0, 0.0, 0.0, 0.0])  # DC-removed, then zero-padded
    expected = lam * w1 + (1 - lam) * w2
    expected = expected - expected.mean()
    assert torch.allclose(mixed, expected)
    assert mixed.mean().abs() < 1e-6

    long = torch.arange(8.0)
    mixed = mixup_waveforms(wave1, long, 0.5)
    w2 = (long - long.mean())[:5]  # DC removed over the whole partner, then cut
    expected = 0.5 * w1 + 0.5 * w2
    assert torch.allclose(mixed, expected - expected.mean())
    assert mixed.shape == wave1.shape


def test_mixup_on_real_audio_keeps_length_and_zero_mean():
    generator = torch.Generator().manual_seed(0)
    wave1 = torch.rand(16000, generator=generator) + 0.5
    wave2 = torch.rand(8000, generator=generator) - 0.2
    mixed = mixup_waveforms(wave1.unsqueeze(0), wave2.unsqueeze(0), 0.6)
    assert mixed.shape == (1, 16000)
    assert abs(float(mixed.mean())) < 1e-5


def test_mix_labels():
    y = mix_labels(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0]), 0.25)
    assert torch.allclose(y, torch.tensor([0.25, 0.0, 0.75]))
    assert float(y.sum()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shapes differ"):
        mix_labels(torch.zeros(3), torch.zeros(4), 0.5)


def test_mixup_lambda_is_beta_10_10():
    rng = np.random.default_rng(0)
    lams = np.array([draw_mixup_lambda(rng) for _ in range(20000)])
    assert ((lams > 0) & (lams < 1)).all()
    assert lams.mean() == pytest.approx(0.5, abs=0.005)
    assert lams.std() == pytest.approx(np.sqrt(1 / (4 * 21)), abs=0.005)  # Beta(10,10) std
    again = np.random.default_rng(0)
    assert draw_mixup_lambda(again) == lams[0]


def test_noise_is_positive_below_a_tenth_and_roll_in_minus10_to_9():
    num_frames, num_bins = 60, 4
    ramp = (torch.arange(num_frames, dtype=torch.float32) * 1000).unsqueeze(1)
    features = ramp.expand(num_frames, num_bins).clone()
    generator = torch.Generator().manual_seed(0)
    shifts, noise_max = [], []
    for _ in range(1000):
        out = add_noise_and_roll(features, generator)
        shift = -int(torch.round(out[0, 0] / 1000))  # row 0 now holds frame -shift
        shift = (shift + num_frames // 2) % num_frames - num_frames // 2
        noise = out - torch.roll(features, shift, dims=0)
        assert float(noise.min()) >= 0 and float(noise.max()) < 0.1
        shifts.append(shift)
        noise_max.append(float(noise.max()))
    assert set(shifts) == set(range(-10, 10))
    # u ~ U(0, 1) scales the noise per clip: the clip maxima spread over (0, 0.1).
    assert np.mean(noise_max) == pytest.approx(0.05, abs=0.005)
    assert min(noise_max) < 0.01 and max(noise_max) > 0.09
    assert torch.equal(features, ramp.expand(num_frames, num_bins)), "input modified"


def test_noise_and_roll_reproducible():
    features = torch.randn(50, 8)
    out1 = add_noise_and_roll(features, torch.Generator().manual_seed(7))
    out2 = add_noise_and_roll(features, torch.Generator().manual_seed(7))
    out3 = add_noise_and_roll(features, torch.Generator().manual_seed(8))
    assert torch.equal(out1, out2) and not torch.equal(out1, out3)


def test_presets_follow_the_recipes():
    assert PRESETS["audioset"] == FinetuneAugmentation(48, 192, 0.5, False)
    assert PRESETS["esc50"] == FinetuneAugmentation(24, 96, 0.0, True)
    assert PRESETS["speechcommands"] == FinetuneAugmentation(48, 48, 0.6, True)
    assert FinetuneAugmentation.preset("none") == FinetuneAugmentation(0, 0, 0.0, False)
    with pytest.raises(ValueError, match="esc50"):
        FinetuneAugmentation.preset("esc-50")
    with pytest.raises(ValueError):
        FinetuneAugmentation(mixup=1.5)
    with pytest.raises(ValueError):
        FinetuneAugmentation(freqm=-1)


def test_finetune_augmentation_applies_its_parts():
    aug = FinetuneAugmentation.preset("speechcommands")
    fbank = torch.full((128, 128), -6.0)
    masked = aug.augment_fbank(fbank, torch.Generator().manual_seed(1))
    assert torch.equal(masked, spec_augment(fbank, 48, 48, torch.Generator().manual_seed(1)))
    noisy = aug.augment_features(torch.zeros(128, 128), torch.Generator().manual_seed(1))
    assert float(noisy.min()) >= 0 and float(noisy.max()) > 0
    audioset = FinetuneAugmentation.preset("audioset")
    plain = torch.zeros(10, 4)
    assert audioset.augment_features(plain) is plain
