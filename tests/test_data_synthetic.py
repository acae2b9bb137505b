"""Tests for the synthetic sound events of the layout fixtures."""

import numpy as np
import pytest

from ssast_sb.data.synthetic import PEAK_RANGE, SAMPLE_RATE, SYNTHETIC_CLASSES, generate_clip


def _log_spectrum(clip, frame=512):
    """Mean log-magnitude spectrum over frames, in dB."""
    frames = clip[: len(clip) // frame * frame].reshape(-1, frame) * np.hanning(frame)
    return 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)).mean(axis=0) + 1e-8)


def test_clip_does_not_depend_on_generation_order():
    first = generate_clip("siren", np.random.default_rng([3, 1, 7]))
    generate_clip("tone", np.random.default_rng([3, 1, 6]))
    again = generate_clip("siren", np.random.default_rng([3, 1, 7]))
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("class_name", SYNTHETIC_CLASSES)
def test_clips_are_finite_bounded_and_not_silent(class_name):
    for index in range(5):
        clip = generate_clip(class_name, np.random.default_rng([0, index]), duration_s=1.0)
        assert clip.dtype == np.float32
        assert clip.shape == (SAMPLE_RATE,)
        assert np.all(np.isfinite(clip))
        peak = np.abs(clip).max()
        assert PEAK_RANGE[0] - 1e-6 <= peak <= PEAK_RANGE[1] + 1e-6
        assert np.sqrt(np.mean(clip**2)) > 0.01


def test_unknown_class_is_rejected():
    with pytest.raises(ValueError, match="Unknown class"):
        generate_clip("thunder", np.random.default_rng(0))


def test_classes_have_different_spectra():
    """Class-mean spectra differ far more between classes than between two draws of one class."""
    classes = ("tone", "noise_burst", "harmonic_stack", "click_train")

    def mean_spectrum(class_name, draw):
        clips = [
            generate_clip(class_name, np.random.default_rng([draw, i]), duration_s=1.0)
            for i in range(12)
        ]
        return np.mean([_log_spectrum(clip) for clip in clips], axis=0)

    spectra = {name: [mean_spectrum(name, draw) for draw in (0, 1)] for name in classes}
    within = max(np.sqrt(np.mean((a - b) ** 2)) for a, b in spectra.values())
    for i, first in enumerate(classes):
        for second in classes[i + 1 :]:
            between = np.sqrt(np.mean((spectra[first][0] - spectra[second][0]) ** 2))
            assert between > 2 * within, (first, second, between, within)


def _peak_frequency_track(clip, frame=512, hop=256):
    """Loudest frequency (Hz, above 250 Hz) of the frames where a narrow-band event stands out."""
    frames = np.lib.stride_tricks.sliding_window_view(clip, frame)[::hop] * np.hanning(frame)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs_hz = np.fft.rfftfreq(frame, d=1.0 / SAMPLE_RATE)
    # Skip the bins where the 1/f background noise is strongest.
    power, freqs_hz = power[:, freqs_hz >= 250], freqs_hz[freqs_hz >= 250]
    peak_power = power.max(axis=1)
    return freqs_hz[power.argmax(axis=1)][peak_power > 0.3 * peak_power.max()]


@pytest.mark.parametrize("class_name, sign", [("chirp_up", 1), ("chirp_down", -1)])
def test_chirps_sweep_in_their_direction(class_name, sign):
    for index in range(10):
        clip = generate_clip(class_name, np.random.default_rng([0, index]), duration_s=2.0)
        track = _peak_frequency_track(clip)
        slope = np.polyfit(np.arange(len(track)), np.log(track), 1)[0]
        assert sign * slope > 0, (index, slope)


def _modulation_index(clip, hop=160):
    """Power of the 3-20 Hz fluctuations of the frame RMS over the event, relative to its mean."""
    rms = np.sqrt(np.mean(clip[: len(clip) // hop * hop].reshape(-1, hop) ** 2, axis=1))
    loud = np.flatnonzero(rms > 0.5 * rms.max())
    envelope = rms[loud[0] : loud[-1] + 1]
    spectrum = np.abs(np.fft.rfft(envelope - envelope.mean())) ** 2
    freqs_hz = np.fft.rfftfreq(len(envelope), d=hop / SAMPLE_RATE)
    in_band = (freqs_hz >= 3) & (freqs_hz <= 20)
    return spectrum[in_band].sum() / (len(envelope) * envelope.mean() ** 2)


def test_am_tone_is_modulated_and_tone_is_not():
    def median_modulation(class_name):
        return np.median(
            [
                _modulation_index(generate_clip(class_name, np.random.default_rng([0, i])))
                for i in range(10)
            ]
        )

    assert median_modulation("am_tone") > 5 * median_modulation("tone")


