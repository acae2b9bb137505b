"""Tests for the synthetic sound-event corpus."""

import csv
import logging
import os

import numpy as np
import pytest
import soundfile as sf

from ssast_sb.data.synthetic import (
    PEAK_RANGE,
    SAMPLE_RATE,
    SYNTHETIC_CLASSES,
    generate_clip,
    prepare_synthetic_corpus,
)

SPLITS = ("unlabeled", "train", "valid", "test")
# Small corpus: 10 unlabeled clips, then 2 / 1 / 1 clips per class.
SMALL = {
    "num_unlabeled": 10,
    "num_labeled_per_class": 2,
    "num_valid_per_class": 1,
    "num_test_per_class": 1,
    "duration_s": 0.5,
}


def _read_manifest(path):
    with open(path, newline="") as csv_file:
        reader = csv.DictReader(csv_file)
        return reader.fieldnames, list(reader)


def _corpus_files(folder):
    """Relative path -> absolute path of every file written under ``folder``."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            files[os.path.relpath(path, folder)] = path
    return files


def _log_spectrum(clip, frame=512):
    """Mean log-magnitude spectrum over frames, in dB."""
    frames = clip[: len(clip) // frame * frame].reshape(-1, frame) * np.hanning(frame)
    return 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)).mean(axis=0) + 1e-8)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    return folder, prepare_synthetic_corpus(str(folder), seed=0, **SMALL)


def test_generation_is_deterministic(corpus, tmp_path):
    folder, manifests = corpus
    other_manifests = prepare_synthetic_corpus(str(tmp_path), seed=0, **SMALL)
    files, other_files = _corpus_files(folder), _corpus_files(tmp_path)
    assert sorted(files) == sorted(other_files)
    wavs = [name for name in files if name.endswith(".wav")]
    assert len(wavs) == 10 + 4 * len(SYNTHETIC_CLASSES)
    for name in wavs:
        with open(files[name], "rb") as a, open(other_files[name], "rb") as b:
            assert a.read() == b.read(), name
    for split in SPLITS:
        with open(manifests[split]) as a, open(other_manifests[split]) as b:
            # Only the folder in the absolute wav paths may differ.
            assert a.read().replace(str(folder), "") == b.read().replace(str(tmp_path), "")


def test_clip_does_not_depend_on_generation_order():
    first = generate_clip("siren", np.random.default_rng([3, 1, 7]))
    generate_clip("tone", np.random.default_rng([3, 1, 6]))
    again = generate_clip("siren", np.random.default_rng([3, 1, 7]))
    np.testing.assert_array_equal(first, again)


def test_manifests_rows_columns_labels_and_durations(corpus):
    _, manifests = corpus
    assert sorted(manifests) == sorted(SPLITS)
    expected_per_class = {"train": 2, "valid": 1, "test": 1}
    all_ids = []
    for split in SPLITS:
        assert manifests[split].endswith(f"synthetic_{split}.csv")
        fieldnames, rows = _read_manifest(manifests[split])
        assert fieldnames == ["ID", "duration", "wav", "label"]
        labels = [row["label"] for row in rows]
        assert set(labels) <= set(SYNTHETIC_CLASSES)
        if split == "unlabeled":
            assert len(rows) == 10
        else:
            assert len(rows) == expected_per_class[split] * len(SYNTHETIC_CLASSES)
            for class_name in SYNTHETIC_CLASSES:
                assert labels.count(class_name) == expected_per_class[split]
        for row in rows:
            assert os.path.isabs(row["wav"])
            assert os.path.dirname(row["wav"]).endswith(os.path.join("synthetic_audio", split))
            info = sf.info(row["wav"])
            assert info.samplerate == SAMPLE_RATE
            assert info.channels == 1
            assert info.subtype == "PCM_16"
            assert float(row["duration"]) == pytest.approx(info.frames / info.samplerate)
            assert float(row["duration"]) == pytest.approx(SMALL["duration_s"])
        all_ids += [row["ID"] for row in rows]
    assert len(all_ids) == len(set(all_ids))


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


def test_written_audio_is_bounded_and_not_silent(corpus):
    _, manifests = corpus
    for split in SPLITS:
        for row in _read_manifest(manifests[split])[1]:
            audio, _ = sf.read(row["wav"], dtype="float32")
            assert np.all(np.isfinite(audio))
            assert np.abs(audio).max() <= 1.0
            assert np.abs(audio).max() >= PEAK_RANGE[0] - 1e-3, row["ID"]


def test_unknown_class_is_rejected():
    with pytest.raises(ValueError, match="Unknown class"):
        generate_clip("thunder", np.random.default_rng(0))


def test_different_seeds_give_different_audio(corpus, tmp_path):
    _, manifests = corpus
    other = prepare_synthetic_corpus(str(tmp_path), seed=1, **SMALL)
    rows = _read_manifest(manifests["train"])[1]
    other_rows = _read_manifest(other["train"])[1]
    assert [row["label"] for row in rows] == [row["label"] for row in other_rows]
    for row, other_row in zip(rows, other_rows):
        audio, _ = sf.read(row["wav"])
        other_audio, _ = sf.read(other_row["wav"])
        assert not np.array_equal(audio, other_audio)


def test_splits_hold_different_clips(corpus):
    _, manifests = corpus
    train = _read_manifest(manifests["train"])[1][0]
    valid = _read_manifest(manifests["valid"])[1][0]
    assert train["label"] == valid["label"]
    assert not np.array_equal(sf.read(train["wav"])[0], sf.read(valid["wav"])[0])


def test_second_call_skips_generation(tmp_path):
    manifests = prepare_synthetic_corpus(str(tmp_path), **SMALL)
    mtimes = {name: os.stat(path).st_mtime_ns for name, path in _corpus_files(tmp_path).items()}
    assert prepare_synthetic_corpus(str(tmp_path), **SMALL) == manifests
    after = {name: os.stat(path).st_mtime_ns for name, path in _corpus_files(tmp_path).items()}
    assert after == mtimes


def test_skip_prep_writes_nothing(tmp_path):
    manifests = prepare_synthetic_corpus(str(tmp_path), skip_prep=True, **SMALL)
    assert manifests["train"] == str(tmp_path / "synthetic_train.csv")
    assert os.listdir(tmp_path) == []


def test_interrupted_generation_is_redone(tmp_path):
    manifests = prepare_synthetic_corpus(str(tmp_path), **SMALL)
    wav = _read_manifest(manifests["test"])[1][0]["wav"]
    with open(wav, "rb") as wav_file:
        original = wav_file.read()
    # An interrupted run leaves a truncated clip and misses the last manifests.
    with open(wav, "wb") as wav_file:
        wav_file.write(original[:100])
    os.remove(manifests["test"])
    prepare_synthetic_corpus(str(tmp_path), **SMALL)
    assert os.path.isfile(manifests["test"])
    with open(wav, "rb") as wav_file:
        assert wav_file.read() == original
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_changed_options_regenerate(tmp_path):
    prepare_synthetic_corpus(str(tmp_path), **SMALL)
    manifests = prepare_synthetic_corpus(str(tmp_path), **{**SMALL, "num_unlabeled": 3})
    assert len(_read_manifest(manifests["unlabeled"])[1]) == 3


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


def test_corpus_of_an_earlier_version_is_regenerated(tmp_path, caplog):
    """Manifests with the old options file and no stamp: rebuilt, and the old file removed."""
    manifests = prepare_synthetic_corpus(str(tmp_path), **SMALL)
    os.remove(tmp_path / "synthetic.prepared.json")
    (tmp_path / "synthetic_options.json").write_text("{}")
    with caplog.at_level(logging.WARNING):
        assert prepare_synthetic_corpus(str(tmp_path), **SMALL) == manifests
    assert "found synthetic_unlabeled.csv, synthetic_train.csv, synthetic_valid.csv ..." in (
        caplog.text
    )
    assert not (tmp_path / "synthetic_options.json").exists()
    assert (tmp_path / "synthetic.prepared.json").is_file()
