"""Deterministic synthetic sound events, the audio of the datasets' layout fixtures.

``benchmarks/fixture_layouts.py`` fills tiny copies of each dataset's official
layout with these clips, so that every recipe's data preparation and training
loop run without the datasets (the device check, the recipe tests). Every clip
holds one procedural sound event (a tone, a chirp, a noise burst, ...) with a
random onset, duration and envelope, mixed into pink background noise at a
random SNR and peak-normalised, so that the classes differ in their
time-frequency shape and not in their loudness. A clip depends only on the
generator it is given, so it is the same whatever order the clips are made in.
"""

import numpy as np

SAMPLE_RATE = 16000
SNR_RANGE_DB = (0.0, 20.0)
PEAK_RANGE = (0.5, 0.9)
# Event length as a fraction of the clip, so short test clips still hold an event.
EVENT_FRACTION_RANGE = (0.25, 0.75)


def _phase(freq_hz, sample_rate):
    """Integrates an instantaneous frequency track (Hz) into a phase (rad)."""
    return 2 * np.pi * np.cumsum(freq_hz) / sample_rate


def _tone(rng, num_samples, sample_rate):
    """A pure tone at a random frequency."""
    freq_hz = rng.uniform(300.0, 3000.0)
    time_s = np.arange(num_samples) / sample_rate
    return np.sin(2 * np.pi * freq_hz * time_s + rng.uniform(0, 2 * np.pi))


def _exponential_sweep(rng, num_samples, sample_rate):
    """Frequency track rising exponentially by a factor of 2 to 4."""
    start_hz = rng.uniform(300.0, 1200.0)
    stop_hz = start_hz * rng.uniform(2.0, 4.0)
    return start_hz * (stop_hz / start_hz) ** np.linspace(0.0, 1.0, num_samples)


def _chirp_up(rng, num_samples, sample_rate):
    """A sweep whose frequency rises over the event."""
    return np.sin(_phase(_exponential_sweep(rng, num_samples, sample_rate), sample_rate))


def _chirp_down(rng, num_samples, sample_rate):
    """A sweep whose frequency falls over the event."""
    freq_hz = _exponential_sweep(rng, num_samples, sample_rate)[::-1]
    return np.sin(_phase(freq_hz, sample_rate))


def _band_noise(rng, num_samples, sample_rate, low_hz, high_hz):
    """White noise with every FFT bin outside [low_hz, high_hz] zeroed."""
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    freqs_hz = np.fft.rfftfreq(num_samples, d=1.0 / sample_rate)
    spectrum[(freqs_hz < low_hz) | (freqs_hz > high_hz)] = 0.0
    return np.fft.irfft(spectrum, n=num_samples)


def _noise_burst(rng, num_samples, sample_rate):
    """Noise limited to a random band a few hundred Hz to 1.5 kHz wide."""
    center_hz = rng.uniform(500.0, 5000.0)
    half_width_hz = rng.uniform(100.0, 750.0)
    return _band_noise(
        rng, num_samples, sample_rate, center_hz - half_width_hz, center_hz + half_width_hz
    )


def _harmonic_stack(rng, num_samples, sample_rate):
    """A random fundamental with several harmonics of decaying amplitude."""
    f0_hz = rng.uniform(100.0, 400.0)
    num_harmonics = int(rng.integers(4, 9))
    decay = rng.uniform(0.5, 0.8)
    time_s = np.arange(num_samples) / sample_rate
    event = np.zeros(num_samples)
    for harmonic in range(1, num_harmonics + 1):
        if harmonic * f0_hz >= sample_rate / 2:
            break
        phase = rng.uniform(0, 2 * np.pi)
        event += decay ** (harmonic - 1) * np.sin(2 * np.pi * harmonic * f0_hz * time_s + phase)
    return event


def _click_train(rng, num_samples, sample_rate):
    """Regularly spaced short decaying noise clicks at a random rate."""
    rate_hz = rng.uniform(8.0, 30.0)
    click_len = max(1, int(0.002 * sample_rate))
    click = rng.standard_normal(click_len) * np.exp(-np.arange(click_len) / (click_len / 4))
    period = int(sample_rate / rate_hz)
    event = np.zeros(num_samples)
    for start in range(int(rng.integers(0, period)), num_samples, period):
        stop = min(start + click_len, num_samples)
        event[start:stop] += click[: stop - start]
    return event


def _am_tone(rng, num_samples, sample_rate):
    """A tone whose amplitude is modulated at a few Hz."""
    carrier_hz = rng.uniform(400.0, 3000.0)
    modulation_hz = rng.uniform(4.0, 16.0)
    depth = rng.uniform(0.6, 1.0)
    time_s = np.arange(num_samples) / sample_rate
    modulation = 1.0 - depth * 0.5 * (1.0 + np.cos(2 * np.pi * modulation_hz * time_s))
    return modulation * np.sin(2 * np.pi * carrier_hz * time_s)


def _siren(rng, num_samples, sample_rate):
    """A two-tone siren alternating between a low and a high pitch."""
    low_hz = rng.uniform(500.0, 1500.0)
    high_hz = low_hz * rng.uniform(1.25, 1.6)
    half_period_s = rng.uniform(0.1, 0.3)
    time_s = np.arange(num_samples) / sample_rate
    freq_hz = np.where((time_s // half_period_s) % 2 == 0, low_hz, high_hz)
    return np.sin(_phase(freq_hz, sample_rate))


_EVENT_GENERATORS = {
    "tone": _tone,
    "chirp_up": _chirp_up,
    "chirp_down": _chirp_down,
    "noise_burst": _noise_burst,
    "harmonic_stack": _harmonic_stack,
    "click_train": _click_train,
    "am_tone": _am_tone,
    "siren": _siren,
}

SYNTHETIC_CLASSES = tuple(_EVENT_GENERATORS)


def _envelope(rng, num_samples, sample_rate):
    """Linear attack (5-50 ms), flat sustain and a linear decay (10-40 % of the event)."""
    attack = min(num_samples, max(1, int(rng.uniform(0.005, 0.05) * sample_rate)))
    decay = min(num_samples - attack, max(1, int(rng.uniform(0.1, 0.4) * num_samples)))
    envelope = np.ones(num_samples)
    envelope[:attack] = np.linspace(0.0, 1.0, attack, endpoint=False)
    if decay > 0:
        envelope[num_samples - decay :] = np.linspace(1.0, 0.0, decay)
    return envelope


def _pink_noise(rng, num_samples, sample_rate):
    """Unit-power noise with a 1/f power spectrum, a soft stand-in for room noise."""
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    freqs_hz = np.fft.rfftfreq(num_samples, d=1.0 / sample_rate)
    spectrum /= np.sqrt(np.maximum(freqs_hz, 20.0))
    noise = np.fft.irfft(spectrum, n=num_samples)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def generate_clip(class_name, rng, duration_s=2.0, sample_rate=SAMPLE_RATE):
    """Generates one clip holding a single sound event of the given class.

    The event gets a random onset, duration (25-75 % of the clip) and envelope,
    and is mixed into pink noise at an SNR drawn from ``SNR_RANGE_DB`` (measured
    over the event). The mixture is peak-normalised to a random level in
    ``PEAK_RANGE`` so that loudness carries no information about the class.

    Arguments
    ---------
    class_name : str
        One of ``SYNTHETIC_CLASSES``.
    rng : numpy.random.Generator
        The only source of randomness: the same generator state gives the same clip.
    duration_s : float
        Clip length in seconds.
    sample_rate : int
        Sampling rate in Hz.

    Returns
    -------
    clip : numpy.ndarray
        Mono float32 waveform of ``round(duration_s * sample_rate)`` samples in [-1, 1].

    Example
    -------
    >>> clip = generate_clip("chirp_up", np.random.default_rng(0), duration_s=0.5)
    >>> clip.shape, clip.dtype
    ((8000,), dtype('float32'))
    >>> bool(0.5 <= np.abs(clip).max() <= 0.9)
    True
    """
    if class_name not in _EVENT_GENERATORS:
        raise ValueError(f"Unknown class {class_name!r}; expected one of {SYNTHETIC_CLASSES}")
    num_samples = round(duration_s * sample_rate)
    if num_samples < 2:
        raise ValueError(f"duration_s={duration_s} gives fewer than 2 samples")

    event_len = max(2, int(rng.uniform(*EVENT_FRACTION_RANGE) * num_samples))
    onset = int(rng.integers(0, num_samples - event_len + 1))
    event = _EVENT_GENERATORS[class_name](rng, event_len, sample_rate)
    event = event * _envelope(rng, event_len, sample_rate)

    snr_db = rng.uniform(*SNR_RANGE_DB)
    event_power = np.mean(event**2) + 1e-12
    noise = _pink_noise(rng, num_samples, sample_rate)
    clip = noise * np.sqrt(event_power / 10 ** (snr_db / 10))
    clip[onset : onset + event_len] += event

    peak = rng.uniform(*PEAK_RANGE)
    clip *= peak / (np.abs(clip).max() + 1e-12)
    return clip.astype(np.float32)
