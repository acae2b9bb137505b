"""Two-process DDP (gloo, CPU) pretraining: completes, checkpoints and prepares data once."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ssast_sb.reports import read_train_log

ROOT = Path(__file__).resolve().parents[1]


def _free_port():
    """A port no process listens on now, so parallel runs do not collide."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _torchrun(*args, timeout=900):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port",
        str(_free_port()),
        *args,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout
    )


def test_ranks_draw_different_masks(tmp_path):
    report = tmp_path / "masks.json"
    result = _torchrun(str(ROOT / "tests" / "helpers" / "ddp_brain_masks.py"), str(report))
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(report.read_text()) == {"world_size": 2, "different": True}


def test_checkpoint_rotation_waits_for_the_rename(tmp_path):
    # The main process renames each checkpoint late; rotation must still agree across ranks.
    report = tmp_path / "left.json"
    helper = str(ROOT / "tests" / "helpers" / "ddp_checkpoints.py")
    result = _torchrun(helper, str(tmp_path / "save"), str(report), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(report.read_text()) == {"left": [2]}


def test_finished_ranks_leave_with_status_zero():
    # finish_distributed_run: every rank, a DDP wrapper still alive, prints its line and
    # leaves with status 0 (the helper's statement after it would exit with 3).
    result = _torchrun(str(ROOT / "tests" / "helpers" / "ddp_finish.py"))
    assert result.returncode == 0, result.stderr[-3000:]
    # The ranks share the pipe, so their lines may interleave.
    assert [result.stdout.count(f"rank {rank} trained") for rank in (0, 1)] == [1, 1]


@pytest.mark.slow
def test_two_process_pretraining_runs_once(shared_dir, tmp_path):
    data = shared_dir / "data"
    result = _torchrun(
        str(ROOT / "recipes" / "pretrain" / "train.py"),
        str(ROOT / "hparams" / "pretrain_frame_tiny.yaml"),
        "--distributed_backend",
        "gloo",
        "--output_folder",
        str(tmp_path),
        "--audioset_folder",
        "null",
        "--librispeech_folder",
        "null",
        "--extra_sources",
        f"[{data / 'pretrain_klettres' / 'audio'}]",
        "--valid_source",
        str(data / "emotion_emodb" / "audio"),
        "--num_workers",
        "0",
        "--target_frames",
        "64",
        "--num_masked",
        "20",
        "--valid_num_masked",
        "20",
        "--passes",
        "null",
        "--allow_zero_lr",
        "True",  # 8 steps of the 1000-step warm-up: lr 0, accepted on purpose
        "--steps_per_epoch",
        "4",
        "--number_of_epochs",
        "2",
        "--batch_size",
        "4",
    )
    assert result.returncode == 0, result.stderr[-4000:]
    log = read_train_log(tmp_path / "train_log.txt")
    # Logged once (rank 0), 4 steps per interval on every rank.
    assert [(row["epoch"], row["optimizer_step"]) for row in log] == [(1, 4), (2, 8)]
    checkpoints = sorted((tmp_path / "save").glob("CKPT+*"))
    assert 1 <= len(checkpoints) <= 2
    assert (tmp_path / "pretrained" / "ssast_pretrained.pth").exists()
    # Data preparation ran on the main process only.
    log_text = (tmp_path / "log.txt").read_text()
    assert log_text.count("Pretraining train set") == 1


@pytest.mark.slow
def test_two_process_quickstart_pretrains_and_finetunes(tmp_path):
    # Pretraining and fine-tuning under 2-process DDP: both complete, manifests are written once.
    result = _torchrun(
        str(ROOT / "recipes" / "quickstart" / "train.py"),
        str(ROOT / "hparams" / "quickstart.yaml"),
        "--distributed_backend",
        "gloo",
        "--output_folder",
        str(tmp_path),
        "--seeds",
        "[0]",
        "--shots",
        "2",
        "--valid_per_class",
        "1",
        "--steps_per_epoch",
        "3",
        "--number_of_epochs",
        "2",
        "--batch_size",
        "8",
        "--finetune_epochs",
        "2",
        "--warmup_steps",
        "2",
        "--warmup_interval",
        "1",
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "results.md").read_text().count("| pretrained |") == 1
    for name in ("pretrained", "scratch"):
        folder = tmp_path / f"finetune_{name}_seed0"
        log = read_train_log(folder / "train_log.txt")
        assert [row["epoch"] for row in log if "epoch" in row] == [1, 2]
        assert (folder / "inference" / "hyperparams.yaml").exists()
    log_text = (tmp_path / "log.txt").read_text()
    assert log_text.count("Pretrained SSAST written") == 1
    assert log_text.count("Few-shot manifests in") == 1


@pytest.mark.slow
def test_two_process_custom_recipe_runs(shared_dir, tmp_path):
    # Your own data under 2-process DDP: class folders of FSDD digits. The manifests, the
    # split and the fbank statistics are written by the main process (run_on_main) and read
    # by both; the run trains, tests and exports once.
    from tests.test_custom_recipe import digits_as_class_folders

    data = digits_as_class_folders(shared_dir, tmp_path / "digits", every=12)
    result = _torchrun(
        str(ROOT / "recipes" / "custom" / "train.py"),
        str(ROOT / "hparams" / "custom.yaml"),
        "--distributed_backend",
        "gloo",
        "--data",
        str(data),
        "--output_folder",
        str(tmp_path / "out"),
        "--model_size",
        "tiny",
        "--number_of_epochs",
        "2",
        "--batch_size",
        "8",
        "--num_workers",
        "0",
    )
    assert result.returncode == 0, result.stderr[-4000:]
    output = tmp_path / "out"
    log = read_train_log(output / "train_log.txt")
    assert [row["epoch"] for row in log if "epoch" in row] == [1, 2]
    assert json.loads((output / "results.json").read_text())["metrics"]["accuracy"] >= 0.0
    log_text = (output / "log.txt").read_text()
    assert log_text.count("Labeled audio") == 1 and log_text.count("Normalisation:") == 1
    assert (output / "manifests" / "norm_stats.json").is_file()
