"""The quickstart in a reduced configuration: the whole pipeline on synthetic audio."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
        "--num_unlabeled",
        "48",
        "--num_labeled_per_class",
        "2",
        "--num_valid_per_class",
        "2",
        "--num_test_per_class",
        "2",
        "--steps_per_epoch",
        "3",
        "--number_of_epochs",
        "2",
        "--batch_size",
        "8",
        "--finetune",
        "{number_of_epochs: 2, dataloader_opts: {batch_size: 8, num_workers: 0}}",
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
    png = output / "pretraining_curves.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
