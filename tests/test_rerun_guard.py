"""Reruns into an existing output folder, as users do them: the same command, one setting changed.

Each case runs the recipe as a user would, on copies of ``../shared/data`` laid out
inside the test: a rerun with other settings stops before any work, naming every
difference and the remedies, and leaves every file of the earlier run as it was;
``--fresh_run True`` moves the earlier run aside; the same command again reloads the
finished run and says that it trains nothing; cross-validation folds run one at a
time each get their own folder; a run whose learning rate stays 0 stops.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import load_reference
from tests.test_custom_recipe import digits_as_class_folders
from tests.test_finetune_recipes import build_iemocap

ROOT = Path(__file__).resolve().parents[1]


def _run(recipe, yaml, *options, timeout=600):
    command = [
        sys.executable,
        str(ROOT / "recipes" / recipe / "train.py"),
        str(ROOT / "hparams" / yaml),
        "--noprogressbar",
        *[str(option) for option in options],
    ]
    env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONUNBUFFERED="1")
    return subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout
    )


def _ok(result):
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout + result.stderr


def _refused(result):
    """A refusal: status 1, one message without a traceback, naming both remedies."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    assert "--fresh_run True" in result.stderr and "--output_folder" in result.stderr
    return result.stderr


def _snapshot(folder):
    """Every file under ``folder`` with its bytes (what a refused rerun must leave alone)."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(Path(folder).rglob("*"))
        if path.is_file() and path.name != "log.txt"  # SpeechBrain's log of every attempt
    }


@pytest.fixture
def tiny_frame_pth(reference_dir, tmp_path):
    """The original code's tiny frame model as a released-format ``.pth``."""
    path = tmp_path / "pretraining" / "SSAST-Tiny-Frame.pth"
    path.parent.mkdir()
    torch.save(load_reference(reference_dir / "tiny_frame_seed0.pt")["pretrain_state_dict"], path)
    return path


def test_a_rerun_never_reuses_a_model_made_with_other_settings(
    shared_dir, tiny_frame_pth, tmp_path
):
    data = digits_as_class_folders(shared_dir, tmp_path / "digits", every=12)
    output = tmp_path / "runs" / "kws_pt"
    common = [
        *("--data", data, "--output_folder", output, "--model_size", "tiny"),
        *("--num_workers", "0", "--number_of_epochs", "1", "--target_frames", "64"),
    ]
    pretrained = [*common, "--pretrained_path", tiny_frame_pth, "--lr", "1e-4"]
    _ok(_run("custom", "custom.yaml", *pretrained))
    record = json.loads((output / "save" / "run_record.json").read_text())
    assert record["settings"]["lr"] == 1e-4
    assert record["inputs"]["pretrained_path"]["bytes"] == tiny_frame_pth.stat().st_size
    assert set(record["manifests"]) == {"train", "valid", "test"}
    before = _snapshot(output)

    # 1. Scratch at another rate into the same folder: used to reload the finished model.
    message = _refused(
        _run("custom", "custom.yaml", *common, "--pretrained_path", "null", "--lr", "5e-4")
    )
    assert "lr: 0.0001 -> 0.0005" in message
    assert f"pretrained_path: '{tiny_frame_pth}' -> null" in message
    assert f"{output}.previous-" in message
    # 2. Another split: used to rebuild the split and test the old model on its training clips.
    message = _refused(_run("custom", "custom.yaml", *pretrained, "--split_seed", "1"))
    assert "split_seed: 0 -> 1" in message and "lr:" not in message
    # The pretrained checkpoint rewritten in place: same path, other file.
    original = tiny_frame_pth.read_bytes()
    state = torch.load(tiny_frame_pth, weights_only=True)
    state["module.v.cls_token"] = state["module.v.cls_token"] + 1
    torch.save(state, tiny_frame_pth)
    message = _refused(_run("custom", "custom.yaml", *pretrained))
    assert "inputs: pretrained_path.sha256:" in message
    tiny_frame_pth.write_bytes(original)
    # Nothing of the earlier run changed: model, results, manifests, split, saved YAML.
    assert _snapshot(output) == before

    # The same command again: the finished run is reloaded, nothing is trained.
    log = _ok(_run("custom", "custom.yaml", *pretrained))
    assert "holds a finished run (epoch 1 of 1)" in log and "nothing is trained" in log
    assert "all 7 done: the run has finished" in log
    reloaded = _snapshot(output)
    log_lines = {name: snapshot["train_log.txt"].decode().splitlines() for name, snapshot in
                 (("before", before), ("reloaded", reloaded))}  # fmt: skip
    assert log_lines["reloaded"][: len(log_lines["before"])] == log_lines["before"]
    assert not any(line.startswith("epoch:") for line in log_lines["reloaded"][2:])  # no training

    # Afresh in the same folder: the earlier run is moved aside whole, never deleted.
    log = _ok(
        _run(
            "custom",
            "custom.yaml",
            *common,
            *("--pretrained_path", "null", "--lr", "5e-4", "--fresh_run", "True"),
        )
    )
    (moved,) = output.parent.glob("kws_pt.previous-*")
    assert f"--fresh_run: the run in {output} was moved to {moved}" in log
    assert _snapshot(moved) == reloaded
    record = json.loads((output / "save" / "run_record.json").read_text())
    assert record["settings"]["lr"] == 5e-4 and record["inputs"] == {}
    assert "resumed" not in log and "finished run" not in log


def test_cross_validation_folds_run_one_at_a_time_never_meet(shared_dir, tmp_path):
    data = tmp_path / "iemocap"
    data.mkdir()
    build_iemocap(shared_dir, data)
    output = tmp_path / "runs" / "iemocap"
    common = [
        *("--data_folder", data, "--output_folder", output, "--pretrained_path", "null"),
        *("--model_size", "tiny", "--target_frames", "128", "--number_of_epochs", "1"),
        *("--total_steps", "null", "--grad_accumulation_factor", "1"),
        *("--dataloader_opts", "{batch_size: 4, num_workers: 0}"),
    ]
    _ok(_run("iemocap", "iemocap.yaml", *common, "--folds", "[1]"))
    # The folder holds the recipe that ran (SpeechBrain's convention), not a library module.
    script = (ROOT / "recipes" / "iemocap" / "train.py").read_bytes()
    assert (output / "train.py").read_bytes() == script and not (output / "common.py").exists()
    fold1 = _snapshot(output / "fold1")
    stdout = _ok(_run("iemocap", "iemocap.yaml", *common, "--folds", "[2]"))
    # Fold 2 trained in its own folder (it used to load fold 1's model from the shared one),
    # and fold 1's files are as they were.
    assert _snapshot(output / "fold1") == fold1
    assert not (output / "results.json").exists() and not list(output.glob("save/CKPT+*"))
    results = {
        fold: json.loads((output / fold / "results.json").read_text())
        for fold in ("fold1", "fold2")
    }
    # Each fold's results are its own: the validation figure is that of its own train log.
    for fold, result in results.items():
        log = (output / fold / "train_log.txt").read_text()
        assert log.startswith("epoch: 1") and f"valid acc: {result['valid']['acc']:.2e}" in log
    # The table covers both folds, the earlier one read from its folder.
    assert "| fold1 |" in stdout and "| fold2 |" in stdout
    assert "| fold1 |" in (output / "results.md").read_text()
    # Another rate for a third fold would mix settings in one table: both folds are named.
    message = _refused(_run("iemocap", "iemocap.yaml", *common, "--folds", "[3]", "--lr", "1e-3"))
    assert f"{output / 'fold1' / 'save'} (fine-tuning, fold fold1)" in message
    assert f"{output / 'fold2' / 'save'} (fine-tuning, fold fold2)" in message
    assert message.count("lr: 0.0001 -> 0.001") == 2


def _pretraining_options(shared_dir, tmp_path, output, **changes):
    data = shared_dir / "data"
    valid = tmp_path / "valid"
    if not valid.exists():
        valid.mkdir()
        for path in sorted((data / "emotion_emodb" / "audio").glob("*.flac"))[:8]:
            (valid / path.name).write_bytes(path.read_bytes())
    options = {
        "output_folder": output,
        "audioset_folder": "null",
        "librispeech_folder": "null",
        "extra_sources": f"[{data / 'kws_sid_fsdd' / 'audio'}]",
        "valid_source": valid,
        "num_workers": 0,
        "target_frames": 64,
        "num_masked": 16,
        "valid_num_masked": 16,
        "steps_per_epoch": 5,
        "number_of_epochs": 2,
        "batch_size": 8,
        "warmup_steps": 4,
        "warmup_interval": 1,
        "passes": "null",
        **changes,
    }
    return [item for key, value in options.items() for item in (f"--{key}", value)]


def test_pretraining_reruns_and_what_its_export_line_says(shared_dir, tmp_path):
    output = tmp_path / "pt"
    options = _pretraining_options(shared_dir, tmp_path, output)
    stdout = _ok(_run("pretrain", "pretrain_frame_tiny.yaml", *options))
    # The export line says how far the run got, against a random guess, with its steps.
    line = next(line for line in stdout.splitlines() if line.startswith("Pretrained SSAST: "))
    assert str(output / "pretrained" / "ssast_pretrained.pth") in line
    assert "best validation masked-patch accuracy" in line and "a random guess" in line
    assert "at step 5 of 10" in line or "at step 10 of 10" in line
    script = (ROOT / "recipes" / "pretrain" / "train.py").read_bytes()
    assert (output / "train.py").read_bytes() == script and not (output / "common.py").exists()
    before = _snapshot(output)
    # Another mask count or pool is another pretraining.
    changed = _pretraining_options(shared_dir, tmp_path, output, num_masked=8)
    message = _refused(_run("pretrain", "pretrain_frame_tiny.yaml", *changed))
    assert "num_masked: 16 -> 8" in message
    klettres = shared_dir / "data" / "pretrain_klettres" / "audio"
    changed = _pretraining_options(shared_dir, tmp_path, output, extra_sources=f"[{klettres}]")
    message = _refused(_run("pretrain", "pretrain_frame_tiny.yaml", *changed))
    assert "extra_sources: [" in message and "pretrain_klettres" in message
    assert _snapshot(output) == before


def test_a_pretraining_whose_learning_rate_stays_zero_exports_nothing(shared_dir, tmp_path):
    output = tmp_path / "pt"
    options = _pretraining_options(
        shared_dir, tmp_path, output, warmup_steps=1000, warmup_interval=50
    )
    result = _run("pretrain", "pretrain_frame_tiny.yaml", *options)
    output_text = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output_text, output_text[-3000:]
    assert "The warm-up lasts 1000 optimiser steps but the run takes 10" in result.stderr
    assert "the learning rate stays 0 for the whole run" in result.stderr
    assert "--allow_zero_lr True" in result.stderr
    assert not (output / "pretrained").exists()
    assert not list((output / "save").glob("CKPT+*"))
