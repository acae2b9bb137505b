"""The quickstart in a reduced configuration: the whole pipeline on synthetic audio, learning."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ssast_sb.reports import read_train_log

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quickstart_reduced(tmp_path):
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    output = workdir / "out"
    command = [
        sys.executable,
        str(ROOT / "recipes" / "quickstart" / "train.py"),
        str(ROOT / "hparams" / "quickstart.yaml"),
        "--output_folder",
        str(output),
        # 100 pretraining steps and 8 fine-tuning epochs: about 2.5 minutes on 2 cores.
        "--num_unlabeled",
        "120",
        "--num_labeled_per_class",
        "6",
        "--num_valid_per_class",
        "4",
        "--num_test_per_class",
        "5",
        "--steps_per_epoch",
        "20",
        "--number_of_epochs",
        "5",
        "--finetune",
        "{number_of_epochs: 8, dataloader_opts: {batch_size: 8, num_workers: 0}}",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="2")
    before = set(ROOT.iterdir())
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=workdir, env=env, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Nothing is written outside the output folder (neither the working directory nor the repo).
    assert [p.name for p in workdir.iterdir()] == ["out"]
    assert set(ROOT.iterdir()) == before
    assert "| pretrained |" in result.stdout and "| scratch |" in result.stdout
    results = json.loads((output / "results.json").read_text())
    for name in ("pretrained", "scratch"):
        assert 0.0 <= results[name]["test_acc"] <= 1.0
        assert (output / f"finetune_{name}" / "train_log.txt").exists()
    # Pretraining learned: held-out masked-patch classification accuracy (chance 1/60 with
    # 60 masked patches) rises to several times chance. Measured: 0.029 -> 0.058.
    log = read_train_log(output / "pretrain" / "train_log.txt")
    chance = 1 / 60
    assert log[-1]["valid acc"] >= 3 * chance and log[-1]["valid acc"] > 1.5 * log[0]["valid acc"]
    # Both twins beat chance (0.125, 8 classes) by a margin. Measured: 0.200 and 0.225.
    for name in ("pretrained", "scratch"):
        assert results[name]["test_acc"] >= 0.125 + 0.04, results[name]
    png = output / "pretraining_curves.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
