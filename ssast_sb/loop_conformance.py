"""The optimisation loop against the original's: the learning rate at every optimiser step.

    python -m ssast_sb.loop_conformance ../shared/reference/loop

The reference folder holds the learning rates that the original training loops
(``traintest.train`` for fine-tuning, ``traintest_mask.trainmask`` for
pretraining) applied at every optimiser step, driven with a small stand-in model,
and the parameter groups of the original's fine-tuning optimiser on a real tiny
model (its README says how they were made). Here the same settings run through
our Brains, built from the recipe YAMLs with a stand-in model of the same
parameter names: :class:`~ssast_sb.brains.finetune.ClassifierBrain` from
``hparams/esc50.yaml``, ``speech_commands_v2.yaml`` and ``audioset_full.yaml``
(their loaders, drop_last and balanced sampler included), and
:class:`~ssast_sb.brains.pretrain.MSPMBrain` from ``pretrain_frame_tiny.yaml``
(its length in passes over the pool). Every rate of every group must match to
:data:`RELATIVE_TOLERANCE`, and the real tiny model's groups must be the
original's (names, learning rates, weight decay, betas, eps).

Authors
 * ssast-sb contributors
"""

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.dataset import DynamicItemDataset

from ssast_sb.brains.finetune import ClassifierBrain
from ssast_sb.brains.pretrain import MSPMBrain, pass_budget, train_loader_options
from ssast_sb.checkpoints import original_name
from ssast_sb.sampler import classification_loader_options

#: Largest relative difference allowed between a rate and the original's.
RELATIVE_TOLERANCE = 1e-12
#: The recipe YAMLs (in ``hparams/``) of the fine-tuning trajectories, and what each changes.
FINETUNE_CASES = {
    "esc50.json": ("esc50.yaml", {}),
    "esc50_head10.json": ("esc50.yaml", {"head_lr": 10.0, "warmup": True}),
    "sc2_small.json": ("speech_commands_v2.yaml", {}),
    "as2m_scaled.json": ("audioset_full.yaml", {}),
}
#: The original's parameters that no forward pass uses (timm's DeiT heads, docs/fidelity.md b).
LEFTOVERS = ("v.head.", "v.head_dist.")
#: Validation accuracies for the pretraining trajectory: the original's log (``eval_lines``)
#: shows its rate halved after the 6th and the 11th evaluation; any series that improves at
#: evaluations 1-3 and 7-8 and not at 4-6 and 9-12 makes ReduceLROnPlateau (patience 2) do so.
PRETRAINING_ACCURACIES = (0.1, 0.2, 0.3, 0.3, 0.3, 0.3, 0.35, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4)
HPARAMS = Path(__file__).resolve().parents[1] / "hparams"


class StandIn(torch.nn.Module):
    """The stand-in of the reference loops: ``v`` and the original head ``mlp_head``.

    Arguments
    ---------
    width : int
        Input width.
    num_classes : int
        Outputs.
    """

    def __init__(self, width=8, num_classes=2):
        super().__init__()
        self.v = torch.nn.Linear(width, width)
        self.mlp_head = torch.nn.Sequential(
            torch.nn.LayerNorm(width), torch.nn.Linear(width, num_classes)
        )

    def forward(self, features):
        """Logits of ``(B, width)`` features."""
        return self.mlp_head(self.v(features))

    def head_parameters(self):
        """The head, trained at ``lr * head_lr``."""
        return list(self.mlp_head.parameters())


class RateRecorder:
    """Records every group's learning rate at every optimiser step (a step pre-hook)."""

    def __init__(self):
        self.rates = []

    def attach(self, optimizer):
        """Hooks ``optimizer``."""
        optimizer.register_step_pre_hook(
            lambda opt, args, kwargs: self.rates.append([g["lr"] for g in opt.param_groups])
        )


class _StandInClassifierBrain(ClassifierBrain):
    """``ClassifierBrain`` whose forward pass is the stand-in's on fixed inputs."""

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        features = torch.ones(len(batch.id), self.modules.model.v.in_features)
        return self.modules.model(features), self._targets(batch)

    def init_optimizers(self):
        super().init_optimizers()
        self.recorder.attach(self.optimizer)


class _StandInPretrainBrain(MSPMBrain):
    """``MSPMBrain`` whose forward pass is the stand-in's; validation gives scripted accuracies."""

    def compute_forward(self, batch, stage):
        loss = self.modules.model(torch.ones(len(batch.id), 8)).square().mean()
        if stage == sb.Stage.TRAIN:
            accuracy = 0.0
        else:
            accuracy = self.accuracies[min(self.evaluations, len(self.accuracies) - 1)]
        zero = loss.detach() * 0
        return {"loss": loss, "nce": zero, "mse": zero, "acc": zero + accuracy, "chance": zero}

    def on_stage_end(self, stage, stage_loss, epoch=None):
        super().on_stage_end(stage, stage_loss, epoch)
        if stage == sb.Stage.VALID:
            self.evaluations += 1

    def init_optimizers(self):
        super().init_optimizers()
        self.recorder.attach(self.optimizer)


def _classification_set(size, num_classes, multi_label):
    """Items with a label (a multi-hot vector for multi-label tasks), for the stand-in."""
    rows = {
        f"clip{i}": {"label": str(i % num_classes), "labels": f"{i % num_classes}"}
        for i in range(size)
    }
    dataset = DynamicItemDataset(rows)

    @sb.utils.data_pipeline.takes("label")
    @sb.utils.data_pipeline.provides("target")
    def target(label):
        if multi_label:
            return torch.nn.functional.one_hot(torch.tensor(int(label)), num_classes).float()
        return torch.tensor([int(label)])

    dataset.add_dynamic_item(target)
    dataset.set_output_keys(["id", "target"])
    return dataset


def _stand_in_brain(brain_class, model, hparams):
    """A Brain of ``brain_class`` over a stand-in ``model`` on the CPU, recording its rates.

    The YAML's checkpointer saves the stand-in in place of the recipe's model.
    """
    hparams["checkpointer"].recoverables.pop("model", None)
    hparams["checkpointer"].add_recoverable("model", model)
    brain = brain_class(
        modules={"model": model},
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts={"device": "cpu", "noprogressbar": True},
        checkpointer=hparams["checkpointer"],
    )
    brain.recorder = RateRecorder()
    return brain


def _finetune_hparams(yaml, cfg, changes, folder):
    overrides = {
        "output_folder": str(folder),
        "data_folder": str(folder),
        "pretrained_path": None,
        "model_size": "tiny",
        "num_classes": cfg["C"],
        "number_of_epochs": cfg["epochs"],
        "batch_size": cfg["bs"],
        "num_workers": 0,
        **changes,
    }
    with open(HPARAMS / yaml, encoding="utf-8") as stream:
        return load_hyperpyyaml(stream, overrides)


def _compare(ours, reference):
    """``(steps compared, largest relative difference)``; a different step count is infinite."""
    if len(ours) != len(reference):
        return len(ours), math.inf
    worst = 0.0
    for mine, theirs in zip(ours, reference):
        for a, b in zip(_as_list(mine), _as_list(theirs)):
            worst = max(worst, abs(a - b) / abs(b) if b else abs(a))
    return len(ours), worst


def _as_list(rates):
    return rates if isinstance(rates, list) else [rates]


def finetune_trajectory(reference, yaml, changes=None, folder=None):
    """Our ``ClassifierBrain``'s rates for a reference trajectory's settings.

    Arguments
    ---------
    reference : dict
        A fine-tuning file of the reference folder (``cfg``, ``lrs``, ...).
    yaml : str
        The recipe YAML of those settings.
    changes : dict, optional
        What the reference changes in the YAML (``head_lr``, ``warmup``).
    folder : str, optional
        Scratch folder (checkpoints of the stand-in).

    Returns
    -------
    dict
        ``rates`` (one list per optimiser step), ``steps_per_epoch``, ``settings``
        (the YAML's lr, head_lr, warm-up and schedule, to compare with ``cfg``).
    """
    cfg = reference["cfg"]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(folder or scratch)
        hparams = _finetune_hparams(yaml, cfg, changes or {}, folder)
        model = StandIn(num_classes=cfg["C"])
        hparams.update(model=model, modules={"model": model})
        brain = _stand_in_brain(_StandInClassifierBrain, model, hparams)
        multi_label = hparams["multi_label"]
        train = _classification_set(cfg["N"], cfg["C"], multi_label)
        valid = _classification_set(cfg["C"], cfg["C"], multi_label)
        brain.step_budget = hparams.get("total_steps")
        brain.fit(
            hparams["epoch_counter"],
            train,
            valid,
            train_loader_kwargs=classification_loader_options(hparams, train, True),
            valid_loader_kwargs=classification_loader_options(hparams, valid, False),
        )
        milestones = list(hparams["lr_milestones"])
        return {
            "rates": brain.recorder.rates,
            "steps_per_epoch": brain.steps_per_epoch,
            "settings": {
                "lr": hparams["lr"],
                "head_lr": hparams["head_lr"],
                "warmup": hparams["warmup"],
                "start": milestones[0] if milestones else None,
                "step": milestones[1] - milestones[0] if len(milestones) > 1 else None,
                "decay": hparams["lr_decay"],
                "loss": hparams["loss"].upper(),
            },
        }


def pretraining_trajectory(reference, folder=None, yaml="pretrain_frame_tiny.yaml"):
    """Our ``MSPMBrain``'s rates for the reference pretraining trajectory.

    The pool holds ``steps_per_pass`` clips of batch size 1, so that the run's
    length, ``passes`` passes of ``pool // batch`` steps, is the reference's; one
    epoch is the YAML's ``steps_per_epoch`` (the original's ``epoch_iter``), and
    the validations give :data:`PRETRAINING_ACCURACIES`.

    Returns
    -------
    dict
        ``rates`` (one per optimiser step) and ``settings``.
    """
    cfg = reference["cfg"]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(folder or scratch)
        overrides = {
            "output_folder": str(folder),
            "audioset_folder": None,
            "librispeech_folder": None,
            "target_frames": 128,
            "num_masked": 32,
            "valid_num_masked": 32,
            "batch_size": 1,
            "num_workers": 0,
            "ckpt_interval_minutes": 0,
            "passes": cfg["passes"],
        }
        with open(HPARAMS / yaml, encoding="utf-8") as stream:
            hparams = load_hyperpyyaml(stream, overrides)
        hparams["valid_num_masked"] = None  # the stand-in draws no masks
        brain = _stand_in_brain(_StandInPretrainBrain, torch.nn.Linear(8, 8), hparams)
        brain.evaluations = 0
        brain.accuracies = PRETRAINING_ACCURACIES
        pool = _classification_set(cfg["steps_per_pass"], 2, False)
        valid = _classification_set(2, 2, False)
        brain.step_budget = pass_budget(hparams, len(pool))
        brain.fit(
            hparams["epoch_counter"],
            pool,
            valid,
            train_loader_kwargs=train_loader_options(hparams, len(pool)),
            valid_loader_kwargs={"batch_size": 2},
        )
        return {
            "rates": [rates[0] for rates in brain.recorder.rates],
            "settings": {
                "lr": hparams["lr"],
                "epoch_iter": hparams["steps_per_epoch"],
                "lr_patience": hparams["plateau_patience"],
                "passes": hparams["passes"],
            },
        }


def optimiser_groups(yaml="esc50.yaml", head_lr=10.0):
    """The groups of our fine-tuning optimiser on a real tiny model, in the original's names.

    Returns
    -------
    list of dict
        Per group: ``names`` (original names), ``lr``, ``weight_decay``, ``betas``, ``eps``.
    """
    with tempfile.TemporaryDirectory() as folder:
        cfg = {"C": 50, "epochs": 1, "bs": 48}
        hparams = _finetune_hparams(
            yaml, cfg, {"head_lr": head_lr, "patch_shape": "patch"}, Path(folder)
        )
        brain = ClassifierBrain(
            modules=hparams["modules"],
            opt_class=hparams["opt_class"],
            hparams=hparams,
            run_opts={"device": "cpu"},
        )
        brain.init_optimizers()
        names = {id(p): name for name, p in hparams["model"].named_parameters()}
        return [
            {
                "names": [original_name(names[id(p)]) for p in group["params"]],
                "lr": group["lr"],
                "weight_decay": group["weight_decay"],
                "betas": list(group["betas"]),
                "eps": group["eps"],
            }
            for group in brain.optimizer.param_groups
        ]


def compare_groups(ours, reference):
    """Differences between our groups and the original's (leftover heads aside), as lines.

    The original's groups also hold timm's two DeiT heads (``v.head``,
    ``v.head_dist``), which no forward pass uses; ours have no such parameters.
    """
    problems = []
    for index, group in enumerate(ours):
        theirs = reference[str(index)]
        # The same parameters (Adam treats each alone, so their order within a group is moot).
        expected = {name for name in theirs["names"] if not name.startswith(LEFTOVERS)}
        if set(group["names"]) != expected or len(group["names"]) != len(expected):
            different = sorted(set(group["names"]) ^ expected)[:5]
            problems.append(f"group {index}: other parameters ({different})")
        for key in ("lr", "weight_decay", "betas", "eps"):
            if group[key] != theirs[key]:
                problems.append(f"group {index}: {key} {group[key]} vs {theirs[key]}")
    if len(ours) != len(reference):
        problems.append(f"{len(ours)} groups vs {len(reference)}")
    return problems


def _settings_differ(ours, cfg):
    """The YAML settings that are not the reference's, as ``key: ours != theirs`` strings."""
    return [f"{key}: {value} != {cfg[key]}" for key, value in ours.items() if value != cfg[key]]


def check(folder):
    """Every trajectory and the groups against ``folder``.

    Returns
    -------
    tuple
        ``(rows, all_passed)``; a row is ``(file, our YAML, our steps, the original's,
        largest relative difference, problems)``, problems empty when it conforms.
    """
    folder = Path(folder)
    rows = []
    for name, (yaml, changes) in FINETUNE_CASES.items():
        reference = json.loads((folder / name).read_text(encoding="utf-8"))
        ours = finetune_trajectory(reference, yaml, changes)
        steps, worst = _compare(ours["rates"], reference["lrs"])
        problems = _settings_differ(ours["settings"], reference["cfg"])
        if ours["steps_per_epoch"] != reference["steps_per_epoch"]:
            problems.append(
                f"{ours['steps_per_epoch']} steps an epoch, not {reference['steps_per_epoch']}"
            )
        if worst > RELATIVE_TOLERANCE:
            problems.append("rates differ")
        rows.append((name, yaml, steps, len(reference["lrs"]), worst, problems))
    reference = json.loads((folder / "pt_tiny.json").read_text(encoding="utf-8"))
    ours = pretraining_trajectory(reference)
    steps, worst = _compare(ours["rates"], reference["lrs"])
    problems = _settings_differ(ours["settings"], reference["cfg"])
    if worst > RELATIVE_TOLERANCE:
        problems.append("rates differ")
    expected = len(reference["lrs"])
    rows.append(("pt_tiny.json", "pretrain_frame_tiny.yaml", steps, expected, worst, problems))
    groups = json.loads((folder / "groups.json").read_text(encoding="utf-8"))
    problems = compare_groups(optimiser_groups(), groups)
    rows.append(("groups.json", "esc50.yaml", len(groups), len(groups), 0.0, problems))
    return rows, not any(row[-1] for row in rows)


def main(argv=None):
    """Prints one line per reference file; exits 1 if any differs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="the reference folder (../shared/reference/loop)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a stand-in model: threads only add overhead
    rows, passed = check(args.folder)
    print(
        "| reference | our YAML | optimiser steps (ours / original) | largest relative difference |"
    )
    print("|---|---|---|---|")
    for name, yaml, steps, expected, worst, problems in rows:
        verdict = "; ".join(problems) if problems else "same"
        print(f"| {name} | {yaml} | {steps} / {expected} | {worst:.1e} ({verdict}) |")
    print("The loop conforms to the original." if passed else "The loop DIFFERS from the original.")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
