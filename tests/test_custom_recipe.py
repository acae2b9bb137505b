"""Your own labeled audio: ``prepare_labeled`` on the layouts users have, and the recipe.

Every corpus is made inside the tests from the real clips of ``../shared/data``: FSDD
digits as a folder per class (with upper-case extensions), EmoDB as a spreadsheet CSV
(byte-order mark, ``emotion`` column, speakers), ESC-10 clips as a multi-label list.
"""

import csv
import json
import logging
import os
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import torch

from ssast_sb.data.labeled import prepare_labeled, summarize_labeled
from ssast_sb.data.manifest import ManifestError, read_manifest
from tests.conftest import load_reference
from tests.test_finetune_recipes import _shared_rows

ROOT = Path(__file__).resolve().parents[1]


def digits_as_class_folders(shared_dir, root, every=6):
    """FSDD digits as ``root/<digit name>/<speaker>/<clip>.FLAC`` (upper-case extension)."""
    names = "zero one two three four five six seven eight nine".split()
    for row in _shared_rows(shared_dir, "kws_sid_fsdd")[::every]:
        destination = root / names[int(row["label"])] / row["speaker"]
        destination.mkdir(parents=True, exist_ok=True)
        shutil.copy(row["path"], destination / (row["path"].stem + ".FLAC"))
    return root


def emodb_as_spreadsheet_csv(shared_dir, path, split=False, every=1):
    """EmoDB as a CSV saved by a spreadsheet: BOM, columns ``file,emotion,speaker[,set]``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = _shared_rows(shared_dir, "emotion_emodb")[::every]
    with open(path, "w", newline="", encoding="utf-8-sig") as stream:
        writer = csv.writer(stream)
        writer.writerow(["file", "emotion", "speaker"] + (["set"] if split else []))
        for row in rows:
            extra = [{"valid": "Validation", "test": "TEST"}.get(row["split"], "train")]
            writer.writerow([row["path"], row["label"], row["speaker"]] + (extra if split else []))
    return path


EMODB_COLUMNS = {"path": "file", "label": "emotion", "split": "set"}


def test_class_folders_are_split_per_class_and_the_split_is_kept(shared_dir, tmp_path, caplog):
    data = digits_as_class_folders(shared_dir, tmp_path / "digits")
    summary = prepare_labeled(data, tmp_path / "out", seed=3)
    assert summary["classes"] == sorted("zero one two three four five six seven eight nine".split())
    assert not summary["multi_label"] and not summary["has_speakers"]
    manifests = {
        split: read_manifest(tmp_path / "out" / f"{split}.csv") for split in summary["splits"]
    }
    for split, rows in manifests.items():  # every class, in the given shares (30 clips each)
        counts = Counter(row["label"] for row in rows)
        assert set(counts) == set(summary["classes"]), split
        assert set(counts.values()) == {{"train": 24, "valid": 3, "test": 3}[split]}, split
    assert all(row["wav"].endswith(".FLAC") for row in manifests["train"])
    split_csv = (tmp_path / "out" / "split.csv").read_text()
    # A rerun with the same options reuses everything, split included.
    caplog.set_level(logging.INFO)
    prepare_labeled(data, tmp_path / "out", seed=3)
    assert "already prepared" in caplog.text
    assert (tmp_path / "out" / "split.csv").read_text() == split_csv
    # Another seed is another split, and the log says why the manifests are rebuilt.
    prepare_labeled(data, tmp_path / "out", seed=4)
    assert "seed: 3 -> 4" in caplog.text
    assert (tmp_path / "out" / "split.csv").read_text() != split_csv


def test_a_spreadsheet_csv_with_speakers_gets_a_speaker_disjoint_split(shared_dir, tmp_path):
    listing = emodb_as_spreadsheet_csv(shared_dir, tmp_path / "emodb.csv")
    summary = prepare_labeled(listing, tmp_path / "out", columns=EMODB_COLUMNS, seed=0)
    assert summary["has_speakers"] and len(summary["classes"]) == 7
    speakers = defaultdict(set)
    for split in ("train", "valid", "test"):
        for row in read_manifest(tmp_path / "out" / f"{split}.csv"):
            speakers[split].add(row["speaker"])
    assert not (speakers["train"] & speakers["valid"] or speakers["train"] & speakers["test"])
    assert (len(speakers["valid"]), len(speakers["test"])) == (1, 1)  # 10 % of 10 speakers


def test_the_lists_own_split_column_is_used(shared_dir, tmp_path):
    listing = emodb_as_spreadsheet_csv(shared_dir, tmp_path / "emodb.csv", split=True)
    summary = prepare_labeled(listing, tmp_path / "out", columns=EMODB_COLUMNS)
    assert summary["splits"] == {"train": 278, "valid": 130, "test": 127}  # shared/data's split


def test_a_multi_label_list(shared_dir, tmp_path):
    rows = _shared_rows(shared_dir, "audio_events_esc10")[::8]
    listing = tmp_path / "events.csv"
    with open(listing, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["path", "label"])
        for index, row in enumerate(rows):
            labels = row["label"] if index % 2 else f"{row['label']};outdoor"
            writer.writerow([os.path.relpath(row["path"], tmp_path), labels])
    summary = prepare_labeled(listing, tmp_path / "out", valid_ratio=0.2, test_ratio=0.2)
    assert summary["multi_label"] and "outdoor" in summary["classes"]


@pytest.mark.parametrize(
    "columns, message",
    [
        (
            {"label": "label"},
            "has no 'path' and no 'label' column (columns found: ['file', 'emotion', 'speaker'",
        ),
        ({"path": "name", "label": "emotion"}, "has no 'name' column"),
    ],
)
def test_a_missing_column_names_the_columns_found(shared_dir, tmp_path, columns, message):
    listing = emodb_as_spreadsheet_csv(shared_dir, tmp_path / "emodb.csv", every=20)
    with pytest.raises(ManifestError, match=message.replace("(", r"\(").replace("[", r"\[")):
        prepare_labeled(listing, tmp_path / "out", columns=columns)


def test_a_class_with_too_few_clips_is_named_with_its_count(shared_dir, tmp_path):
    data = digits_as_class_folders(shared_dir, tmp_path / "digits", every=12)
    lonely = tmp_path / "digits" / "hello"
    lonely.mkdir()
    for clip in sorted((tmp_path / "digits" / "one").rglob("*.FLAC"))[:2]:
        shutil.copy(clip, lonely / clip.name)
    with pytest.raises(ManifestError, match=r"at least 3 clips per class; 'hello' \(2\) has fewer"):
        prepare_labeled(data, tmp_path / "out")


def _recipe(data, output, *options, timeout=600, workers=0):
    command = [
        sys.executable,
        str(ROOT / "recipes" / "custom" / "train.py"),
        str(ROOT / "hparams" / "custom.yaml"),
        "--data",
        str(data),
        "--output_folder",
        str(output),
        "--model_size",
        "tiny",
        "--num_workers",
        str(workers),
        "--noprogressbar",
        *options,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONUNBUFFERED="1")
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result


def test_the_recipe_runs_on_class_folders_in_debug_mode(shared_dir, reference_dir, tmp_path):
    # From a released-format checkpoint (the original code's tiny frame model), its patch
    # shape taken from the checkpoint.
    checkpoint = tmp_path / "SSAST-Tiny-Frame.pth"
    state = load_reference(reference_dir / "tiny_frame_seed0.pt")["pretrain_state_dict"]
    torch.save(state, checkpoint)
    data = digits_as_class_folders(shared_dir, tmp_path / "digits", every=12)
    result = _recipe(
        data,
        tmp_path / "out",
        *"--debug --debug_batches 2 --debug_epochs 1".split(),
        *["--pretrained_path", str(checkpoint)],
    )
    output = tmp_path / "out-debug"
    results = json.loads((output / "results.json").read_text())
    assert 0.0 <= results["metrics"]["accuracy"] <= 1.0
    for name in ("train_log.txt", "per_class_report.txt", "confusion_matrix.png"):
        assert (output / name).is_file(), name
    assert (output / "inference" / "hyperparams.yaml").is_file()
    log = result.stdout + result.stderr
    digits = "eight, five, four, nine, one, seven, six, three, two, zero"
    assert f"Task: 10 classes ({digits}), single-label, loss ce" in log
    assert "Normalisation: mean" in log and "of the training split's fbank" in log
    assert "Input length: " in log and "95% of the training clips last at most" in log
    assert "frame 128x2 patches at stride 128/1" in log  # the checkpoint's shape, frame strides
    hparams = (output / "hyperparams.yaml").read_text()
    assert "num_classes: 10" in hparams  # what the recipe decided is in the saved YAML


def test_the_recipe_runs_on_a_multi_label_list_in_debug_mode(shared_dir, tmp_path):
    rows = _shared_rows(shared_dir, "audio_events_esc10")[::4]
    listing = tmp_path / "events.csv"
    with open(listing, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["path", "label"])
        for index, row in enumerate(rows):
            writer.writerow([row["path"], row["label"] + (";outdoor" if index % 2 else "")])
    # The frozen SUPERB protocol: a layer-weighted head over a fixed encoder.
    result = _recipe(
        listing,
        tmp_path / "out",
        *"--debug --debug_batches 2 --debug_epochs 1".split(),
        *"--head layer_weighted --freeze_upstream True".split(),
        workers=64,
    )
    results = json.loads((tmp_path / "out-debug" / "results.json").read_text())
    assert 0.0 <= results["metrics"]["mAP"] <= 1.0
    log = result.stdout + result.stderr
    assert "multi-label, loss bce" in log
    assert "Trainable Parameters represent" in log and "100.0000%" not in log
    # More loader processes than cores: the machine's count, said once for all loaders.
    cpus = len(os.sched_getaffinity(0))
    assert log.count(f"num_workers 64 is more loader processes than the {cpus} CPU cores") == 1
    assert "CategoricalEncoder is not empty" not in log


@pytest.mark.slow
def test_the_recipe_learns_emotions_of_held_out_speakers(shared_dir, tmp_path):
    # EmoDB from a spreadsheet CSV with speakers: a speaker-disjoint split (1 valid and 1
    # test speaker of 10), SSAST-tiny from scratch. Chance 1/7; the test speaker's most
    # frequent emotion is a fraction of its clips.
    listing = emodb_as_spreadsheet_csv(shared_dir, tmp_path / "emodb.csv")
    _recipe(
        listing,
        tmp_path / "out",
        "--columns",
        "{path: file, label: emotion}",
        "--number_of_epochs",
        "4",
        "--lr",
        "5.0e-4",
    )
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    test_rows = read_manifest(tmp_path / "out" / "manifests" / "test.csv")
    majority = max(Counter(row["label"] for row in test_rows).values()) / len(test_rows)
    accuracy = results["metrics"]["accuracy"]
    print(f"EmoDB held-out speaker: test accuracy {accuracy:.3f} (majority {majority:.3f})")
    assert accuracy >= max(2 / 7, majority + 0.1)
    summary = summarize_labeled(tmp_path / "out" / "manifests")
    assert summary["has_speakers"]
