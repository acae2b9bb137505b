"""The optimisation loop as the original's, step for step (``../shared/reference/loop``).

``ClassifierBrain`` built from ``hparams/esc50.yaml``, ``speech_commands_v2.yaml`` and
``audioset_full.yaml`` with a stand-in model, and ``MSPMBrain`` from
``pretrain_frame_tiny.yaml``, must apply the original's learning rate to every
parameter group at every optimiser step, with the original's groups; mixup mixes
two unmixed clips; the SUPERB recipes run s3prl's exact step counts.
"""

import json

import numpy as np
import pytest
import speechbrain as sb
import torch

from ssast_sb.augment import FinetuneAugmentation
from ssast_sb.brains.common import SeededGenerator
from ssast_sb.brains.finetune import ClassifierBrain
from ssast_sb.brains.run_checks import RunChecks
from ssast_sb.loop_conformance import (
    FINETUNE_CASES,
    StandIn,
    compare_groups,
    finetune_trajectory,
    main,
    optimiser_groups,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def loop_dir(reference_dir):
    return reference_dir / "loop"


def _largest_relative_difference(ours, reference):
    assert len(ours) == len(reference)
    worst = 0.0
    for mine, theirs in zip(ours, reference):
        mine, theirs = np.atleast_1d(mine), np.atleast_1d(theirs)
        assert mine.shape == theirs.shape
        scale = np.where(theirs == 0, 1.0, np.abs(theirs))
        worst = max(worst, float(np.max(np.abs(mine - theirs) / scale)))
    return worst


def test_a_loader_that_keeps_the_last_batch_departs(loop_dir):
    """The check can fail: with the last partial batch kept, ESC-50 takes 34 steps an epoch."""
    reference = json.loads((loop_dir / "esc50.json").read_text())
    reference["cfg"]["epochs"] = 8
    ours = finetune_trajectory(reference, "esc50.yaml", {"drop_last": False})
    assert ours["steps_per_epoch"] == 34 and len(ours["rates"]) == 8 * 34


def test_the_finetuning_optimiser_has_the_originals_groups(loop_dir):
    reference = json.loads((loop_dir / "groups.json").read_text())
    ours = optimiser_groups()
    assert compare_groups(ours, reference) == []
    assert [len(group["names"]) for group in ours] == [151, 4]  # 155 - timm's 4 unused heads
    wrong = [dict(group, lr=group["lr"] * 2) for group in ours]
    assert compare_groups(wrong, reference)  # and the comparison can fail


def test_every_trajectory_and_the_groups_conform(loop_dir, capsys):
    # python -m ssast_sb.loop_conformance ../shared/reference/loop: every rate of every group at
    # every optimiser step (ESC-50, ESC-50 with head_lr 10 and warm-up, Speech Commands V2 with
    # the warm-up crossing the milestones, AudioSet-2M with the balanced sampler, tiny
    # pretraining with ReduceLROnPlateau), the YAML's settings, the steps an epoch, the groups.
    assert main([str(loop_dir)]) == 0
    printed = capsys.readouterr().out
    for name in (*FINETUNE_CASES, "pt_tiny.json", "groups.json"):
        assert f"| {name} |" in printed
    assert printed.count("(same) |") == 6 and "The loop conforms to the original." in printed
    assert "| pt_tiny.json | pretrain_frame_tiny.yaml | 10000 / 10000 |" in printed
    assert "| esc50.json | esc50.yaml | 1650 / 1650 |" in printed


def test_mixup_mixes_two_unmixed_clips():
    # Every clip mixed (rate 1), one-hot targets: a partner read from an already mixed clip
    # would give targets of three or more classes (460 of 1,533 with the SC-V2 rate before).
    torch.manual_seed(0)
    classes, clips = 35, 64
    hparams = {
        "augmentation": FinetuneAugmentation(mixup=1.0),
        "num_classes": classes,
        "seed": 0,
    }
    brain = ClassifierBrain(modules={"model": StandIn()}, hparams=hparams, run_opts={})
    brain.aug_rng = SeededGenerator(0)
    wavs = torch.randn(clips, 1600)
    targets = torch.arange(clips) % classes
    mixed_wavs, mixed = brain._mixup(wavs, torch.ones(clips), targets)
    assert int((mixed > 0).sum(dim=1).max()) <= 2
    assert torch.allclose(mixed.sum(dim=1), torch.ones(clips))
    assert not torch.equal(mixed_wavs, wavs)


class _Budgeted(RunChecks, sb.Brain):
    """A Brain with only what the run-length check reads."""


@pytest.mark.parametrize(
    "batches, accumulation, budget, epochs",
    [(1684, 1, 20000, 12), (1075, 8, 10000, 75), (4312, 8, 40000, 75)],
)
def test_a_step_budget_sets_the_epochs_and_the_step_limit(batches, accumulation, budget, epochs):
    # s3prl's KS, ER and SID budgets: whole accumulation groups per epoch (SpeechBrain
    # drops an unfinished one at each epoch's end), the last epoch cut at the budget.
    counter = sb.utils.epoch_loop.EpochCounter(1)
    brain = _Budgeted(
        modules={},
        hparams={"epoch_counter": counter},
        run_opts={"grad_accumulation_factor": accumulation},
    )
    brain.step_budget = budget
    brain.make_dataloader(list(range(batches)), sb.Stage.TRAIN, batch_size=1)
    assert brain.steps_per_epoch == batches // accumulation
    assert counter.limit == epochs and brain.optimizer_step_limit == budget
