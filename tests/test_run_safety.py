"""Runs that would go wrong silently: each now stops with an error or says so in the log.

Checkpoints that do not match the YAML, truncated or foreign checkpoint files, a
warm-up longer than the run, bf16 on a CPU that emulates it, checkpoint-interval
options and the names of checkpoint folders in log lines. (The ``--debug`` run that
must not touch a finished run is checked by every recipe run of
``tests/test_finetune_recipes.py``.)
"""

import csv
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.run_opts import RunOptions

from ssast_sb.brains import run_checks
from ssast_sb.brains.common import AtomicCheckpointer, RecipeOptions
from ssast_sb.brains.finetune import run_classification
from ssast_sb.brains.run_checks import RunChecks, ZeroLearningRateError
from ssast_sb.checkpoints import (
    CheckpointError,
    encoder_from_original,
    pretrain_model_from_original,
    save_speechbrain_checkpoint,
    task_encoder,
)
from ssast_sb.encoder import EncoderConfig, SSASTEncoder
from ssast_sb.models import SSASTClassifier
from tests.conftest import load_reference

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_frame_pth(reference_dir, tmp_path):
    """The original code's tiny frame model, saved as a released-format ``.pth``."""
    path = tmp_path / "SSAST-Tiny-Frame.pth"
    torch.save(load_reference(reference_dir / "tiny_frame_seed0.pt")["pretrain_state_dict"], path)
    return path


def test_a_checkpoint_of_another_size_and_shape_is_refused_naming_both(tiny_frame_pth):
    # What a user did: a tiny frame .pth given to the base patch ESC-50 YAML.
    with pytest.raises(CheckpointError) as error:
        task_encoder(tiny_frame_pth, "base", "patch", fstride=10, tstride=10, target_frames=512)
    message = str(error.value)
    assert str(tiny_frame_pth) in message
    assert "holds a tiny model with frame patches" in message
    assert "model_size: base, patch_shape: patch" in message
    assert "--model_size tiny --patch_shape frame" in message


def test_unset_size_takes_the_checkpoints_and_logs_what_it_is(tiny_frame_pth, caplog):
    caplog.set_level(logging.INFO, logger="ssast_sb.checkpoints")
    encoder = task_encoder(tiny_frame_pth, None, None, fstride=128, tstride=10, target_frames=512)
    assert (encoder.config.embed_dim, encoder.config.tshape) == (192, 2)
    text = caplog.text
    assert f"Pretrained checkpoint {tiny_frame_pth}: SSAST-tiny (192-d, 12 blocks, 3 heads)" in text
    assert "frame 128x2 patches at stride 128/2, grid 1x512 over 1024 frames" in text
    # Stride 10 over 2-frame patches: most frames are never seen, and the log says so.
    assert "see 2 of every 10 frames: 80% of the input is never seen" in text


def test_a_truncated_checkpoint_names_the_file_and_what_was_expected(tiny_frame_pth, tmp_path):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(tiny_frame_pth.read_bytes()[:20000])
    with pytest.raises(CheckpointError) as error:
        task_encoder(truncated, target_frames=128)
    assert str(truncated) in str(error.value) and "truncated" in str(error.value)
    assert "expected an SSAST pretraining checkpoint" in str(error.value)


def test_an_audio_file_given_as_checkpoint_is_named(shared_dir):
    clip = next((shared_dir / "data" / "kws_sid_fsdd" / "audio").glob("*.flac"))
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint") as error:
        task_encoder(clip, target_frames=128)
    assert str(clip) in str(error.value)


def test_a_foreign_state_dict_lists_a_few_keys_not_all(tmp_path):
    foreign = tmp_path / "whisper.pth"
    torch.save({f"decoder.layer{i}.weight": torch.zeros(1) for i in range(40)}, foreign)
    with pytest.raises(CheckpointError) as error:
        task_encoder(foreign, target_frames=128)
    assert "Not an SSAST checkpoint" in str(error.value) and "(40 keys)" in str(error.value)
    assert "decoder.layer39" not in str(error.value)


def test_our_speechbrain_layout_ckpt_and_export_folder_load(tiny_frame_pth, tmp_path):
    # A pretraining run writes pretrained/ssast_pretrained.{pth,ckpt}: either file, or the
    # folder, starts fine-tuning, with the same encoder.
    model, _ = pretrain_model_from_original(str(tiny_frame_pth))
    folder = tmp_path / "pretrained"
    folder.mkdir()
    save_speechbrain_checkpoint(model, folder / "ssast_pretrained.ckpt")
    (folder / "ssast_pretrained.pth").write_bytes(tiny_frame_pth.read_bytes())
    reference, _ = encoder_from_original(str(tiny_frame_pth))
    for source in (folder / "ssast_pretrained.ckpt", folder):
        encoder, _ = encoder_from_original(str(source))
        assert encoder.config == reference.config
        for key, value in reference.state_dict().items():
            assert torch.equal(encoder.state_dict()[key], value), key


def test_a_finetuned_state_says_which_file_to_use(tmp_path):
    config = EncoderConfig(embed_dim=16, depth=1, num_heads=2, input_tdim=32)
    path = tmp_path / "model.ckpt"
    torch.save(SSASTClassifier(SSASTEncoder(config), 3).state_dict(), path)
    with pytest.raises(CheckpointError, match="is a fine-tuned classifier") as error:
        task_encoder(path, target_frames=32)
    assert "inference folder" in str(error.value)


def _fsdd_manifests(shared_dir, folder, per_label=2):
    """Small train/valid CSVs of FSDD digits (real audio): ``per_label`` clips per digit."""
    source = shared_dir / "data" / "kws_sid_fsdd"
    with open(source / "manifest.csv", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    manifests = {}
    for split in ("train", "valid"):
        path = folder / f"{split}.csv"
        chosen, taken = [], {}
        for row in rows:
            if row["split"] == split and taken.get(row["label"], 0) < per_label:
                taken[row["label"]] = taken.get(row["label"], 0) + 1
                chosen.append(row)
        with open(path, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(["ID", "duration", "wav", "label"])
            for row in chosen:
                wav = source / row["path"]
                writer.writerow([wav.stem, row["duration"], wav, row["label"]])
        manifests[split] = str(path)
    return manifests


def test_a_run_whose_learning_rate_stays_zero_stops_before_training(shared_dir, tmp_path, caplog):
    # The Speech Commands V2 YAML on a short run: its 1000-step staircase warm-up keeps the
    # learning rate at 0 for the whole run, which used to end at chance and export the
    # untrained model with a warning only.
    manifests = _fsdd_manifests(shared_dir, tmp_path)
    labels = {row["label"] for row in csv.DictReader(open(manifests["train"], encoding="utf-8"))}
    overrides = {
        "data_folder": str(tmp_path),
        "output_folder": str(tmp_path / "out"),
        "pretrained_path": None,
        "model_size": "tiny",
        "target_frames": 64,
        "tstride": 2,
        "number_of_epochs": 2,
        "num_classes": len(labels),
        "dataloader_opts": {"batch_size": 8, "num_workers": 0},
    }

    def load():
        with open(ROOT / "hparams" / "speech_commands_v2.yaml", encoding="utf-8") as stream:
            return load_hyperpyyaml(stream, overrides)

    caplog.set_level(logging.INFO, logger="ssast_sb.brains.run_checks")
    opts = {"device": "cpu", "noprogressbar": True}
    with pytest.raises(ZeroLearningRateError) as error:
        run_classification(load(), opts, manifests)
    # 20 clips in batches of 8, the last partial batch dropped (the original's loader).
    assert "Schedule: 2 epochs x 2 optimiser steps = 4 steps; lr 2.50e-04" in caplog.text
    assert (
        "The warm-up lasts 1000 optimiser steps but the run takes 4 (2 epochs): the learning "
        "rate stays 0 for the whole run" in str(error.value)
    )
    assert "--allow_zero_lr True" in str(error.value)
    out = tmp_path / "out"
    assert not (out / "results.json").exists() and not (out / "inference").exists()
    assert not list((out / "save").glob("CKPT+*"))
    # Accepted explicitly, it runs with the warning, at lr 0.
    opts = RecipeOptions.extend(RunOptions.from_dictionary(opts), allow_zero_lr=True)
    run_classification(load(), opts, manifests)
    assert "the learning rate stays 0 for the whole run" in caplog.text
    log = (out / "train_log.txt").read_text()
    assert log.count("lr: 0.00e+00") == 2


class _Checked(RunChecks, sb.Brain):
    """A Brain with only what :class:`RunChecks` reads."""


def _checked_brain(precision, epochs=10, current=0):
    counter = sb.utils.epoch_loop.EpochCounter(epochs)
    counter.current = current
    hparams = {
        "epoch_counter": counter,
        "lr": 1e-3,
        "warmup": True,
        "warmup_steps": 1000,
        "warmup_interval": 50,
        "lr_milestones": [5, 6],
        "lr_decay": 0.85,
    }
    brain = _Checked(modules={}, hparams=hparams, run_opts={"precision": precision})
    brain.train_batches = 100
    return brain


def test_bf16_on_a_cpu_without_native_bf16_warns_and_says_what_to_use(monkeypatch, caplog):
    monkeypatch.setattr(run_checks, "cpu_flags", lambda: {"avx2", "fma"})
    _checked_brain("bf16").check_run()
    assert "--precision bf16 on a CPU without native bf16 (no AVX512-BF16 or AMX)" in caplog.text
    assert "use --precision fp32" in caplog.text
    caplog.clear()
    monkeypatch.setattr(run_checks, "cpu_flags", lambda: {"avx512_bf16"})
    _checked_brain("bf16").check_run()
    assert "native bf16" not in caplog.text


def test_a_resumed_run_counts_only_the_steps_left(caplog):
    caplog.set_level(logging.INFO, logger="ssast_sb.brains.run_checks")
    # 800 steps done, 12 of 20 epochs left: 2000 steps in all, past the 1000-step warm-up.
    brain = _checked_brain("fp32", epochs=20, current=8)
    brain.optimizer_step = 800
    brain.check_run()
    assert (
        "20 epochs x 100 optimiser steps = 2000 steps; resumed after 800 (epoch 9 of 20 under "
        "way): 1200 left" in caplog.text
    )
    assert "The warm-up lasts" not in caplog.text


def test_checkpoint_interval_options_from_the_command_line(tmp_path):
    # --ckpt_interval_minutes takes a float, and --ckpt_interval_steps replaces the YAML's
    # ckpt_interval_minutes: 10 (SpeechBrain alone exits on both).
    script = (
        "import sys, speechbrain as sb\n"
        "from ssast_sb.brains.common import load_recipe\n"
        "hparams, opts, _, _ = load_recipe(sys.argv[1:])\n"
        "brain = sb.Brain(modules={}, hparams=hparams, run_opts=opts)\n"
        "print('intervals', brain.ckpt_interval_minutes, brain.ckpt_interval_steps)\n"
    )
    common = [
        str(ROOT / "hparams" / "pretrain_small.yaml"),
        "--extra_sources",
        "[]",
        "--valid_source",
        "null",
    ]
    printed = []
    for options in (["--ckpt_interval_steps", "5"], ["--ckpt_interval_minutes", "0.5"]):
        result = subprocess.run(
            [sys.executable, "-c", script, *common, *options, "--output_folder", str(tmp_path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        printed.append(result.stdout.split("intervals ")[-1].strip())
    assert printed == ["0 5", "0.5 0"]


def test_checkpoint_log_lines_name_the_final_folder(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    checkpointer = AtomicCheckpointer(tmp_path, {"layer": torch.nn.Linear(2, 2)})
    checkpointer.save_and_keep_only(meta={"acc": 0.5}, max_keys=["acc"])
    ckpt = checkpointer.find_checkpoint(max_key="acc")
    saved = [record.getMessage() for record in caplog.records if "Saved" in record.getMessage()]
    assert saved == [f"Saved an end-of-epoch checkpoint in {ckpt.path}"]
    assert ".partial-" not in caplog.text
