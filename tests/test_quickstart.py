"""The quickstart in a reduced configuration, on the FSDD clips shipped in data/: it learns."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ssast_sb.reports import read_train_log

ROOT = Path(__file__).resolve().parents[1]
CHANCE = 0.1  # 10 digits, balanced test split


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
        # The quickstart with one seed of its three: about 3.5 minutes on 2 cores.
        "--seeds",
        "[0]",
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
    assert "| pretrained |" in result.stdout and "| gain |" in result.stdout
    results = json.loads((output / "results.json").read_text())

    # Pretraining learned: the held-out masked-patch accuracy ends several times above a
    # random guess's (logged beside it) and above where it started. Measured: 0.140 after
    # 40 steps, 0.326 after 240 (a random guess: 0.096).
    log = read_train_log(output / "pretrain" / "train_log.txt")
    first, last = log[0], log[-1]
    assert last["valid acc"] >= 3 * last["valid chance"], last
    assert last["valid acc"] > first["valid acc"] + 0.05, (first, last)
    assert results["pretraining"]["valid_acc"][-1] == last["valid acc"]
    png = output / "pretraining_curves.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Both twins beat chance (10 digits) by a margin, and the shipped pretraining pays off.
    # Measured (seed 0): pretrained 0.857, scratch 0.450.
    pretrained, scratch = results["pretrained"]["mean"], results["scratch"]["mean"]
    assert scratch >= CHANCE + 0.15, results["scratch"]
    assert pretrained >= scratch + 0.10, results
    assert results["gain_points"] == pytest.approx(100 * (pretrained - scratch), abs=0.05)
    for twin in ("pretrained", "scratch"):
        folder = output / f"finetune_{twin}_seed0"
        assert (folder / "train_log.txt").exists() and (folder / "inference").is_dir()
    assert set(results["minutes"]) == {
        "pretraining",
        "finetuning_pretrained",
        "finetuning_scratch",
        "classify_file",
    }
    # classify_file ran on a held-out clip with the pretrained twin's inference folder.
    classified = results["classify_file"]
    assert classified["predicted"] in {str(digit) for digit in range(10)}
    assert f"classify_file({classified['file']})" in result.stdout

    # A rerun with another scratch rate stops before any work, naming the one stage whose
    # settings differ (the pretraining demo and the pretrained twin are unaffected).
    rerun = subprocess.run(
        [*command, "--scratch_lr", "0.001"],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        timeout=300,
    )
    assert rerun.returncode == 1, rerun.stderr[-3000:]
    assert f"{output / 'finetune_scratch_seed0' / 'save'} (fine-tuning, seed 0, twin scratch)" in (
        rerun.stderr
    )
    assert "lr: 0.0002 -> 0.001" in rerun.stderr
    assert "pretrain/save" not in rerun.stderr and "finetune_pretrained" not in rerun.stderr
    assert json.loads((output / "results.json").read_text()) == results
