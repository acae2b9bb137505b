"""Tests for ssast_sb.data.speech_commands on a Speech-Commands-shaped tree of FSDD speech."""

import csv
import hashlib
import io
import json
import logging
import os
import shutil
import tarfile

import numpy as np
import pytest
import soundfile as sf

from ssast_sb.data.manifest import read_manifest
from ssast_sb.data.speech_commands import (
    KS12_WORDS,
    cut_silence_segments,
    download_speech_commands,
    prepare_speech_commands,
)

# word folder -> FSDD digit whose clips it holds (the audio content does not matter here)
WORD_DIGITS = {"yes": "0", "no": "1", "stop": "2", "zero": "3", "bed": "4", "marvin": "5"}
CLIPS_PER_WORD = 4
# Noise recordings (seconds): 10 segments -> 8/1/1, 3 segments -> 2/1/0 (train/valid/test).
NOISE_SECONDS = {"running_tap": 10.3, "white_noise": 3.5}
RATE = 16000


def _speaker_hash(speaker):
    return hashlib.sha1(speaker.encode()).hexdigest()[:8]


@pytest.fixture(scope="module")
def sc_template(tmp_path_factory, shared_dir):
    """``<root>/speech_commands_v0.02`` with word clips, split lists and noise; and the layout."""
    fsdd = shared_dir / "data" / "kws_sid_fsdd"
    with open(fsdd / "manifest.csv", newline="") as csv_file:
        fsdd_rows = list(csv.DictReader(csv_file))
    root = tmp_path_factory.mktemp("sc_template")
    release = root / "speech_commands_v0.02"
    layout = {}  # relative path -> (word, speaker hash)
    for word, digit in WORD_DIGITS.items():
        (release / word).mkdir(parents=True)
        clips = [row for row in fsdd_rows if row["label"] == digit][:CLIPS_PER_WORD]
        for take, row in enumerate(clips):
            speaker = _speaker_hash(row["speaker"])
            relative = f"{word}/{speaker}_nohash_{take}.wav"
            samples, rate = sf.read(fsdd / row["path"], dtype="float32")
            sf.write(release / relative, samples, rate, subtype="PCM_16")
            layout[relative] = (word, speaker)
    relatives = sorted(layout)
    valid, test = relatives[0::4], relatives[1::4]
    # The official lists name clips of the full corpus; a partial copy lacks some.
    (release / "validation_list.txt").write_text("\n".join(valid + ["yes/absent_nohash_0.wav"]))
    (release / "testing_list.txt").write_text("\n".join(test) + "\n")
    noise = release / "_background_noise_"
    noise.mkdir()
    rng = np.random.default_rng(0)
    for name, seconds in NOISE_SECONDS.items():
        samples = (rng.uniform(-0.3, 0.3, int(seconds * RATE))).astype(np.float32)
        sf.write(noise / f"{name}.wav", samples, RATE, subtype="PCM_16")
    (noise / "README.md").write_text("noise recordings")
    return root, layout, set(valid), set(test)


@pytest.fixture
def sc_root(tmp_path, sc_template):
    template, layout, valid, test = sc_template
    root = tmp_path / "corpora"
    shutil.copytree(template, root)
    return root, layout, valid, test


def _split_of(relative, valid, test):
    return "valid" if relative in valid else "test" if relative in test else "train"


def test_v2_35_uses_words_and_list_splits(sc_root, tmp_path):
    root, layout, valid, test = sc_root
    save = tmp_path / "manifests"
    summary = prepare_speech_commands(root, save, version=2, task="v2_35")
    assert sorted(os.listdir(save)) == [
        "speech_commands_v2_35.prepared.json",
        "speech_commands_v2_35_test.csv",
        "speech_commands_v2_35_train.csv",
        "speech_commands_v2_35_valid.csv",
    ]
    assert summary["num_classes"] == len(WORD_DIGITS)
    assert summary["silence_segments"] == 0 and summary["listed_not_found"] == 1
    seen = {}
    for split in ("train", "valid", "test"):
        path = save / f"speech_commands_v2_35_{split}.csv"
        assert path.read_text().splitlines()[0] == "ID,duration,wav,label,word,speaker"
        for row in read_manifest(path):
            relative = "/".join(row["wav"].split(os.sep)[-2:])
            assert os.path.isabs(row["wav"])
            word, speaker = layout[relative]
            assert row["label"] == row["word"] == word
            assert row["speaker"] == speaker
            assert row["ID"] == relative[:-4].replace("/", "_")
            assert _split_of(relative, valid, test) == split
            assert 0 < row["duration"] < 2
            seen[relative] = split
    assert sorted(seen) == sorted(layout)  # every clip exactly once
    assert summary["valid"]["kept"] == len(valid) and summary["test"]["kept"] == len(test)
    # The listed clip that is not on disk is counted in its class.
    assert summary["short_classes"] == {"valid": {"yes": [1, 2]}}
    stamp = json.loads((save / "speech_commands_v2_35.prepared.json").read_text())
    assert list(stamp["counts"]["class_counts"]["train"]) == sorted(WORD_DIGITS)


def test_v1_ks12_maps_unknown_and_cuts_silence(sc_root, tmp_path):
    root, layout, valid, test = sc_root
    save = tmp_path / "manifests"
    summary = prepare_speech_commands(root, save, version=2, task="v1_ks12")
    assert summary["num_classes"] == 5  # yes, no, stop, _unknown_, _silence_ in this copy
    assert summary["silence_segments"] == 13
    rows = {
        split: read_manifest(save / f"speech_commands_v1_ks12_{split}.csv")
        for split in ("train", "valid", "test")
    }
    words = [
        row for split_rows in rows.values() for row in split_rows if row["label"] != "_silence_"
    ]
    assert len(words) == len(layout)
    for row in words:
        expected = row["word"] if row["word"] in KS12_WORDS else "_unknown_"
        assert row["label"] == expected
    assert {row["word"] for row in words if row["label"] == "_unknown_"} == {
        "zero",
        "bed",
        "marvin",
    }
    silence = {
        split: sorted(row["ID"] for row in split_rows if row["label"] == "_silence_")
        for split, split_rows in rows.items()
    }
    # Per recording: the first 80% of its segments train, the next 10% valid, the rest test.
    assert silence["train"] == [f"silence_running_tap_{k:04d}" for k in range(8)] + [
        f"silence_white_noise_{k:04d}" for k in range(2)
    ]
    assert silence["valid"] == ["silence_running_tap_0008", "silence_white_noise_0002"]
    assert silence["test"] == ["silence_running_tap_0009"]
    for split_rows in rows.values():
        for row in split_rows:
            if row["label"] == "_silence_":
                assert row["duration"] == 1.0 and row["word"] == "_silence_"
                assert row["wav"].startswith(str(save / "speech_commands_silence"))
    assert not (save / "speech_commands_v1_ks12_labels.json").exists()  # no class list
    assert sorted(summary["class_counts"]["train"]) == sorted(
        ["yes", "no", "stop", "_unknown_", "_silence_"]
    )


def test_silence_segments_are_exact_slices_and_deterministic(sc_root, tmp_path):
    root, _, _, _ = sc_root
    noise = root / "speech_commands_v0.02" / "_background_noise_"
    first = cut_silence_segments(noise, tmp_path / "a")
    second = cut_silence_segments(noise, tmp_path / "b")
    assert [row["ID"] for _, row in first] == [row["ID"] for _, row in second]
    source, _ = sf.read(noise / "running_tap.wav", dtype="int16")
    for k in (0, 5, 9):
        name = f"silence_running_tap_{k:04d}.wav"
        segment, rate = sf.read(tmp_path / "a" / name, dtype="int16")
        assert rate == RATE and len(segment) == RATE
        assert np.array_equal(segment, source[k * RATE : (k + 1) * RATE])
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # A stale segment from an earlier run is removed.
    (tmp_path / "a" / "silence_old_0000.wav").write_bytes(b"")
    cut_silence_segments(noise, tmp_path / "a")
    assert not (tmp_path / "a" / "silence_old_0000.wav").exists()
    assert len(list((tmp_path / "a").glob("*.wav"))) == 13


def test_v1_ks12_needs_background_noise(sc_root, tmp_path):
    root, _, _, _ = sc_root
    shutil.rmtree(root / "speech_commands_v0.02" / "_background_noise_")
    with pytest.raises(FileNotFoundError, match="_silence_"):
        prepare_speech_commands(root, tmp_path / "m", version=2, task="v1_ks12")
    # v2_35 does not use the noise.
    assert prepare_speech_commands(root, tmp_path / "m2", version=2) is not None


def test_task_and_version_checks(sc_root, tmp_path, caplog):
    root, _, _, _ = sc_root
    with pytest.raises(ValueError, match="version 2"):
        prepare_speech_commands(root, tmp_path / "m", version=1, task="v2_35")
    with pytest.raises(ValueError, match="Unknown"):
        prepare_speech_commands(root, tmp_path / "m", task="v3")
    with caplog.at_level(logging.WARNING):
        prepare_speech_commands(root, tmp_path / "m", version=2, task="v1_ks12")
    assert "uses Speech Commands v1" in caplog.text


def test_missing_dataset_says_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        prepare_speech_commands(tmp_path, tmp_path / "out", version=1, task="v1_ks12")
    message = str(error.value)
    assert "http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz" in message
    assert str(tmp_path / "speech_commands_v0.01") in message


def test_skip_existing(sc_root, tmp_path):
    root, _, _, _ = sc_root
    save = tmp_path / "m"
    assert prepare_speech_commands(root, save) is not None
    assert prepare_speech_commands(root, save) is None
    assert prepare_speech_commands(root, save, force=True) is not None


def _tar_release(release, tar_path):
    """Pack like the official archive: the release's content at the top level, no folder."""
    with tarfile.open(tar_path, "w:gz") as tarred:
        for path in sorted(release.iterdir()):
            tarred.add(path, arcname=path.name)


def test_download_from_local_tar_then_prepare(sc_root, tmp_path, caplog):
    root, layout, _, _ = sc_root
    tar_path = tmp_path / "speech_commands_v0.02.tar.gz"
    _tar_release(root / "speech_commands_v0.02", tar_path)
    data = tmp_path / "data"
    with caplog.at_level(logging.INFO, logger="ssast_sb.data.esc50"):
        release = download_speech_commands(data, version=2, url=tar_path.as_uri())
    digest = hashlib.sha256(tar_path.read_bytes()).hexdigest()
    assert digest in caplog.text
    assert release == data / "speech_commands_v0.02"
    assert (release / "validation_list.txt").is_file() and (release / "yes").is_dir()
    assert sorted(os.listdir(data)) == ["speech_commands_v0.02", "speech_commands_v0.02.tar.gz"]
    summary = prepare_speech_commands(data, tmp_path / "m", version=2)
    assert sum(summary[split]["kept"] for split in ("train", "valid", "test")) == len(layout)


def test_download_rejects_wrong_checksum(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tarred:
        info = tarfile.TarInfo("validation_list.txt")
        info.size = 0
        tarred.addfile(info, io.BytesIO(b""))
    tar_path = tmp_path / "sc.tar.gz"
    tar_path.write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match="Checksum mismatch"):
        download_speech_commands(tmp_path / "data", 1, url=tar_path.as_uri(), sha256="ab" * 32)
    assert not (tmp_path / "data" / "speech_commands_v0.01").exists()
