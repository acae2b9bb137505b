"""Tests for ssast_sb.data.audioset on a small AudioSet-shaped folder of real clips."""

import csv
import json
import logging
import os

import numpy as np
import pytest
import soundfile as sf

from ssast_sb.data.audio import EmptyAudioError
from ssast_sb.data.audioset import clip_keys, prepare_audioset
from ssast_sb.data.manifest import ManifestError, read_manifest

CLASS_LABELS = """index,mid,display_name
0,/m/09x0r,"Speech"
1,/m/05zppz,"Male speech, man speaking"
2,/m/0jbk,"Animal"
"""
HEADER = (
    "# Segments csv created Sun Mar  5 10:54:31 2017\n"
    "# num_ytids=6, num_segs=6, num_unique_labels=3, num_positive_labels=8\n"
    "# YTID, start_seconds, end_seconds, positive_labels\n"
)
BALANCED = HEADER + (
    '--4gqARaEJE, 0.000, 10.000, "/m/09x0r,/m/05zppz"\n'
    '-0RWZT-miFs, 420.000, 430.000, "/m/0jbk"\n'
    'Yx_3kd9A-1b, 30.000, 40.000, "/m/09x0r"\n'
    'abc_def-123, 10.000, 20.000, "/m/09x0r,/m/0jbk"\n'
    'MissingClip, 50.000, 60.000, "/m/0jbk"\n'
    'NotHere_007, 0.000, 10.000, "/m/09x0r"\n'
)
EVAL = HEADER + ('zzEvalClip1, 30.000, 40.000, "/m/09x0r"\nGoneForEver, 5.500, 15.500, "/m/0jbk"\n')
# file name under audio/ -> index of the real clip it holds
AUDIO_FILES = {
    "--4gqARaEJE_0.wav": 0,  # start in whole seconds
    "-0RWZT-miFs_420000.flac": 1,  # start in milliseconds
    "part1/Yx_3kd9A-1b_30.000.ogg": 2,  # subfolder; a YouTube ID that starts with Y
    "Yabc_def-123.mp3": 3,  # "Y" + YouTube ID, no start
    "zzEvalClip1_30.0.wav": 4,
    "NotHere_007_5.000.wav": 5,  # same ID, other start: must not match
}
BALANCED_FOUND = {
    "--4gqARaEJE_0.000": ("--4gqARaEJE_0.wav", "/m/09x0r;/m/05zppz"),
    "-0RWZT-miFs_420.000": ("-0RWZT-miFs_420000.flac", "/m/0jbk"),
    "Yx_3kd9A-1b_30.000": ("Yx_3kd9A-1b_30.000.ogg", "/m/09x0r"),
    "abc_def-123_10.000": ("Yabc_def-123.mp3", "/m/09x0r;/m/0jbk"),
}


@pytest.fixture(scope="module")
def real_clips(shared_dir):
    clips = []
    for task in ("kws_sid_fsdd", "pretrain_klettres"):
        folder = shared_dir / "data" / task
        with open(folder / "manifest.csv", newline="") as csv_file:
            clips += [folder / row["path"] for row in list(csv.DictReader(csv_file))[:3]]
    return clips


@pytest.fixture
def audioset_root(tmp_path, real_clips):
    root = tmp_path / "audioset"
    (root / "audio").mkdir(parents=True)
    (root / "class_labels_indices.csv").write_text(CLASS_LABELS)
    (root / "balanced_train_segments.csv").write_text(BALANCED)
    (root / "eval_segments.csv").write_text(EVAL)
    for name, clip_index in AUDIO_FILES.items():
        samples, rate = sf.read(real_clips[clip_index], dtype="float32")
        path = root / "audio" / name
        path.parent.mkdir(exist_ok=True)
        if name.endswith(".flac"):  # one stereo 44.1 kHz clip, as downloads often are
            samples, rate = np.stack([samples, samples], axis=1), 44100
        sf.write(path, samples, rate)
    (root / "audio" / "README.txt").write_text("not audio")
    return root


def test_manifests_and_missing_counts(audioset_root, tmp_path, caplog):
    save = tmp_path / "manifests"
    with caplog.at_level(logging.INFO, logger="ssast_sb.data.audioset"):
        summary = prepare_audioset(audioset_root, save)

    assert {k: summary["balanced_train"][k] for k in ("listed", "found", "missing", "kept")} == {
        "listed": 6,
        "found": 4,
        "missing": 2,
        "kept": 4,
    }
    assert {k: summary["eval"][k] for k in ("listed", "found", "missing", "kept")} == {
        "listed": 2,
        "found": 1,
        "missing": 1,
        "kept": 1,
    }
    assert "6 listed, 4 found, 2 missing" in caplog.text
    assert "MissingClip_50.000" in caplog.text

    balanced_csv = save / "audioset_balanced_train.csv"
    assert balanced_csv.read_text().splitlines()[0] == "ID,duration,wav,labels"
    rows = {row["ID"]: row for row in read_manifest(balanced_csv)}
    assert set(rows) == set(BALANCED_FOUND)
    for clip_id, (file_name, labels) in BALANCED_FOUND.items():
        row = rows[clip_id]
        assert os.path.isabs(row["wav"]) and row["wav"].endswith(file_name)
        assert row["labels"] == labels
        info = sf.info(row["wav"])
        assert row["duration"] == pytest.approx(info.frames / info.samplerate, abs=1e-6)

    eval_rows = read_manifest(save / "audioset_eval.csv")
    assert [row["ID"] for row in eval_rows] == ["zzEvalClip1_30.000"]


def test_label_map(audioset_root, tmp_path):
    prepare_audioset(audioset_root, tmp_path / "out", segments=["eval"])
    label_map = json.loads((tmp_path / "out" / "audioset_labels.json").read_text())
    assert label_map["mid_to_index"] == {"/m/09x0r": 0, "/m/05zppz": 1, "/m/0jbk": 2}
    assert label_map["display_names"]["/m/05zppz"] == "Male speech, man speaking"


@pytest.mark.parametrize(
    "stem, key",
    [
        ("abcdefghijk_30", ("abcdefghijk", 30000)),
        ("abcdefghijk_30.0", ("abcdefghijk", 30000)),
        ("abcdefghijk_30.000", ("abcdefghijk", 30000)),
        ("abcdefghijk_30000", ("abcdefghijk", 30000)),
        ("abcdefghijk_5.500_15.500", ("abcdefghijk", 5500)),
        ("Yabcdefghijk", ("abcdefghijk", None)),
        ("Yabcdefghijk_30.000_40.000", ("abcdefghijk", 30000)),
        ("abcdefghijk", ("abcdefghijk", None)),
        ("Y-_-_-_-_-_-", ("-_-_-_-_-_-", None)),
    ],
)
def test_clip_keys_accepts_common_names(stem, key):
    assert key in clip_keys(stem)


@pytest.mark.parametrize("stem", ["short", "abcdefghijk-30", "abcdefghijk_30s", "a b c d e f"])
def test_clip_keys_ignores_other_names(stem):
    assert clip_keys(stem) == []


def test_missing_segment_csv(audioset_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="unbalanced_train_segments.csv"):
        prepare_audioset(audioset_root, tmp_path / "out", segments=["unbalanced_train"])


def test_missing_class_labels(audioset_root, tmp_path):
    (audioset_root / "class_labels_indices.csv").unlink()
    with pytest.raises(FileNotFoundError, match="class_labels_indices.csv"):
        prepare_audioset(audioset_root, tmp_path / "out")


def test_missing_audio_folder(audioset_root, tmp_path):
    (audioset_root / "audio").rename(audioset_root / "clips")
    with pytest.raises(FileNotFoundError, match="audio folder"):
        prepare_audioset(audioset_root, tmp_path / "out")


def test_unknown_segment_name(audioset_root, tmp_path):
    with pytest.raises(ValueError, match="balanced"):
        prepare_audioset(audioset_root, tmp_path / "out", segments=["train"])


def test_label_absent_from_class_list(audioset_root, tmp_path):
    with open(audioset_root / "eval_segments.csv", "a") as segments:
        segments.write('zzEvalClip1, 0.000, 10.000, "/m/unknown"\n')
    with pytest.raises(ManifestError, match="/m/unknown"):
        prepare_audioset(audioset_root, tmp_path / "out", segments=["eval"])


def test_bad_clip_errors_or_is_skipped(audioset_root, tmp_path):
    (audioset_root / "audio" / "zzEvalClip1_30.0.wav").write_bytes(b"")
    with pytest.raises(EmptyAudioError, match="zzEvalClip1_30.0.wav"):
        prepare_audioset(audioset_root, tmp_path / "strict", segments=["eval"])

    summary = prepare_audioset(
        audioset_root, tmp_path / "lenient", segments=["eval"], on_bad_audio="skip"
    )
    assert summary["eval"]["found"] == 1 and summary["eval"]["kept"] == 0
    assert summary["eval"]["bad_audio"]["empty"] == 1
    assert read_manifest(tmp_path / "lenient" / "audioset_eval.csv") == []


def test_existing_outputs_are_kept_unless_forced(audioset_root, tmp_path):
    save = tmp_path / "out"
    prepare_audioset(audioset_root, save, segments=["eval"])
    (save / "audioset_eval.csv").write_text("ID,duration,wav,labels\n")
    assert prepare_audioset(audioset_root, save, segments=["eval"]) is None
    assert read_manifest(save / "audioset_eval.csv") == []
    assert prepare_audioset(audioset_root, save, segments=["eval"], force=True) is not None
    assert len(read_manifest(save / "audioset_eval.csv")) == 1


def test_skip_prep(tmp_path):
    assert prepare_audioset(tmp_path / "absent", tmp_path / "out", skip_prep=True) is None
    assert not (tmp_path / "out").exists()
