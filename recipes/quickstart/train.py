#!/usr/bin/env python3
"""Quickstart: does MSPM pretraining pay off? Pretrained vs scratch SSAST-tiny on spoken digits.

    python recipes/quickstart/train.py hparams/quickstart.yaml

The flow, on the FSDD clips shipped in ``data/kws_sid_fsdd``:

1. the few-shot manifests (``run_on_main``): the unlabeled pool (the train
   split), ``shots`` labeled clips per class for each seed, valid and test;
2. a short MSPM pretraining in an ``MSPMBrain`` on the pool, to show the loop
   learning: its validation masked-patch accuracy against the accuracy of a
   random guess, plotted;
3. fine-tuning in a ``ClassifierBrain``, for each seed, of the encoder shipped in
   ``data/checkpoints`` (pretrained on the same pool by
   ``benchmarks/quickstart_checkpoint.py``) and of its from-scratch twin; the
   YAML is reloaded per run, so each gets fresh objects;
4. the table (mean and standard deviation over seeds, gain in points),
   ``results.md`` and ``results.json``, and ``classify_file`` on a held-out clip
   with the pretrained twin's inference folder.

Rerunning resumes: finished stages are recovered from their checkpoints. Each
stage keeps a run record of its settings; a rerun whose settings differ for a
stage (``--finetune_epochs``, ``--scratch_lr``, ``--number_of_epochs``, ...)
stops before any work and lists the differences (see ``--fresh_run``).

Authors
 * ssast-sb contributors
"""

import json
import statistics
import sys
import time
from pathlib import Path

from speechbrain.utils.distributed import if_main_process, run_on_main

from ssast_sb.brains.common import load_hparams, load_recipe, resolved_yaml
from ssast_sb.brains.finetune import run_classification
from ssast_sb.brains.pretrain import run_pretraining
from ssast_sb.brains.process_group import finish_distributed_run
from ssast_sb.brains.run_record import recipe_settings
from ssast_sb.data.fewshot import prepare_fewshot
from ssast_sb.data.manifest import read_manifest
from ssast_sb.errors import report_user_errors
from ssast_sb.fileio import atomic_open
from ssast_sb.inference import SSASTAudioClassifier
from ssast_sb.reports import plot_curves, read_train_log

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = ROOT / "data" / "kws_sid_fsdd" / "manifest.csv"
DEFAULT_CHECKPOINT = ROOT / "data" / "checkpoints" / "ssast_tiny_frame_fsdd.pth"
TWINS = ("pretrained", "scratch")


def summarize(accuracies):
    """Mean, standard deviation (over seeds) and the per-seed values of one twin.

    Example
    -------
    >>> summarize({0: 0.5, 1: 0.7})
    {'mean': 0.6, 'std': 0.1414, 'per_seed': {0: 0.5, 1: 0.7}}
    """
    values = list(accuracies.values())
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return {
        "mean": round(statistics.mean(values), 4),
        "std": round(spread, 4),
        "per_seed": dict(accuracies),
    }


def gain_points(results):
    """The pretrained twin's mean test accuracy minus the scratch twin's, in points.

    Example
    -------
    >>> gain_points({"pretrained": {"mean": 0.8}, "scratch": {"mean": 0.65}})
    15.0
    """
    return round(100 * (results["pretrained"]["mean"] - results["scratch"]["mean"]), 1)


def format_table(results, task):
    """The results table: test accuracy of each twin, mean ± std and per seed, and the gain.

    Example
    -------
    >>> rows = {"pretrained": {"mean": 0.8, "std": 0.01, "per_seed": {0: 0.8}},
    ...         "scratch": {"mean": 0.7, "std": 0.02, "per_seed": {0: 0.7}}}
    >>> print(format_table(rows, "digits, 10 clips per class"))
    | digits, 10 clips per class | test accuracy, mean ± std (1 seed) | per seed |
    |---|---|---|
    | pretrained | 0.800 ± 0.010 | 0.800 |
    | scratch | 0.700 ± 0.020 | 0.700 |
    | gain | +10.0 points | |
    """
    seeds = len(results["pretrained"]["per_seed"])
    lines = [
        f"| {task} | test accuracy, mean ± std ({seeds} seed{'s' * (seeds > 1)}) | per seed |",
        "|---|---|---|",
    ]
    for twin in TWINS:
        row = results[twin]
        per_seed = " ".join(f"{value:.3f}" for value in row["per_seed"].values())
        lines.append(f"| {twin} | {row['mean']:.3f} ± {row['std']:.3f} | {per_seed} |")
    lines.append(f"| gain | {gain_points(results):+.1f} points | |")
    return "\n".join(lines)


def resolve_inputs(hparams):
    """The source manifest and the checkpoint: the YAML's, or the repository's."""
    source = Path(hparams["source_manifest"] or DEFAULT_SOURCE)
    checkpoint = Path(hparams["checkpoint"] or DEFAULT_CHECKPOINT)
    for path, what in ((source, "source_manifest"), (checkpoint, "checkpoint")):
        if not path.is_file():
            raise FileNotFoundError(
                f"{what} {path} not found; the quickstart reads the repository's data/ folder "
                "(run it from a clone of the repository) or set --" + what
            )
    return source, checkpoint


def pretraining_summary(log, minutes):
    """What the demo pretraining's log shows: steps, validation MPC accuracy and chance.

    Arguments
    ---------
    log : list of dict
        :func:`ssast_sb.reports.read_train_log` of the pretraining.
    minutes : float
        Its wall-clock minutes.

    Returns
    -------
    dict

    Example
    -------
    >>> log = [{"optimizer_step": 40.0, "valid acc": 0.15, "valid chance": 0.1},
    ...        {"optimizer_step": 80.0, "valid acc": 0.35, "valid chance": 0.1}]
    >>> summary = pretraining_summary(log, 2.0)
    >>> summary["steps"], summary["times_chance"]
    ([40, 80], 3.5)
    """
    rows = [row for row in log if "valid acc" in row]
    chance = rows[-1]["valid chance"]
    return {
        "steps": [int(row["optimizer_step"]) for row in rows],
        "valid_acc": [row["valid acc"] for row in rows],
        "valid_chance": chance,
        "times_chance": round(rows[-1]["valid acc"] / chance, 1),
        "minutes": round(minutes, 2),
    }


def pretraining_demo(hparams, run_opts, manifests, output):
    """The short MSPM pretraining in the Brain loop, its curve and its summary."""
    start = time.time()
    run_pretraining(hparams, run_opts, manifests, PRETRAINING_STAGE)
    minutes = (time.time() - start) / 60
    log = read_train_log(hparams["train_log"])
    if if_main_process():
        plot_curves(
            log,
            ["train loss", "valid loss", ("valid acc", "valid chance")],
            output / "pretraining_curves.png",
            title="MSPM pretraining (acc: masked patch classification; chance: a random guess)",
        )
    return pretraining_summary(log, minutes)


#: The pretraining demo, as its run record names it.
PRETRAINING_STAGE = {"name": "pretraining"}
#: Top-level keys that only the fine-tuning runs use: not settings of the pretraining demo.
FINETUNING_ONLY = (
    "finetune",
    "target_frames",
    "num_classes",
    "shots",
    "seeds",
    "checkpoint",
    "twin",
    "run_seed",
    "finetune_pretrained_path",
    "finetune_lr",
    "finetune_layer_decay",
    "finetune_epochs",
    *(f"{twin}_{name}" for twin in TWINS for name in ("lr", "layer_decay")),
)


def twin_overrides(hparams, twin, seed, checkpoint):
    """The YAML values that make one fine-tuning run: the twin, the seed and their settings.

    Example
    -------
    >>> values = {"scratch_lr": 2e-4, "scratch_layer_decay": 1.0}
    >>> twin_overrides(values, "scratch", 3, "ckpt.pth")["finetune_pretrained_path"] is None
    True
    """
    return {
        "twin": twin,
        "run_seed": seed,
        "finetune_pretrained_path": str(checkpoint) if twin == "pretrained" else None,
        "finetune_lr": hparams[f"{twin}_lr"],
        "finetune_layer_decay": hparams[f"{twin}_layer_decay"],
    }


def stage_settings(command_line, run_opts, stage):
    """The settings of one quickstart run: the demo's, or one twin's at one seed (run records)."""
    file, overrides = command_line.hparams_file, command_line.overrides
    if stage.get("name") == PRETRAINING_STAGE["name"]:
        return recipe_settings(file, overrides, run_opts, exclude=FINETUNING_ONLY)
    values = resolved_yaml(file, overrides)
    _, checkpoint = resolve_inputs(values)
    more = twin_overrides(values, stage["twin"], stage["seed"], checkpoint)
    return recipe_settings(file, {**overrides, **more}, run_opts, section="finetune")


def finetune_twins(hparams_file, overrides, hparams, run_opts, paths, checkpoint):
    """Fine-tunes both twins for every seed; test accuracies, minutes and the inference folders."""
    accuracies = {twin: {} for twin in TWINS}
    minutes = dict.fromkeys(TWINS, 0.0)
    folders = {}
    for seed in hparams["seeds"]:
        for twin in TWINS:
            start = time.time()
            more = twin_overrides(hparams, twin, seed, checkpoint)
            run = load_hparams(hparams_file, overrides, **more)["finetune"]
            manifests = {
                "train": paths["train"][seed],
                "valid": paths["valid"],
                "test": paths["test"],
            }
            stage = {"name": "fine-tuning", "twin": twin, "seed": seed}
            fold = run_classification(run, run_opts, manifests, stage)
            accuracies[twin][seed] = round(fold["test"]["acc"], 4)
            minutes[twin] += (time.time() - start) / 60
            folders.setdefault(twin, Path(run["experiment_folder"]) / "inference")
    return accuracies, minutes, folders


def classify_one(inference_folder, test_manifest, output):
    """``classify_file`` on the first held-out clip: what a user does with the trained model."""
    clip = read_manifest(test_manifest)[0]
    classifier = SSASTAudioClassifier.from_hparams(
        source=str(inference_folder), savedir=str(output / "classify_file")
    )
    _, score, _, labels = classifier.classify_file(clip["wav"])
    return {
        "file": clip["wav"],
        "label": clip["label"],
        "predicted": labels[0],
        "probability": round(float(score.exp()), 4),
    }


def report(results, task, output):
    """Prints the table and the stages' figures; writes ``results.md`` and ``results.json``."""
    table = format_table(results, task)
    demo = results["pretraining"]
    lines = [
        table,
        "",
        f"MSPM pretraining demo: {demo['steps'][-1]} steps, validation masked-patch accuracy "
        + " -> ".join(f"{acc:.3f}" for acc in demo["valid_acc"])
        + f" (a random guess: {demo['valid_chance']:.3f}; {demo['times_chance']:.1f}x chance)",
        "classify_file({file}): {predicted} (p={probability}), label {label}".format(
            **results["classify_file"]
        ),
        "minutes: "
        + ", ".join(f"{stage} {value:.1f}" for stage, value in results["minutes"].items()),
    ]
    print("\n".join(lines))
    with atomic_open(output / "results.md") as stream:
        stream.write("\n".join(lines) + "\n")
    with atomic_open(output / "results.json") as stream:
        stream.write(json.dumps(results, indent=2))


def main(argv):
    """Runs the recipe on the command line ``argv`` (the YAML, then its options)."""
    hparams, run_opts, hparams_file, overrides = load_recipe(argv, stage_settings)
    output = Path(hparams["output_folder"])
    source, checkpoint = resolve_inputs(hparams)
    fewshot_options = {
        "shots": hparams["shots"],
        "seeds": hparams["seeds"],
        "label_column": hparams["label_column"],
        "valid_per_class": hparams["valid_per_class"],
        "pool_valid_clips": hparams["pool_valid_clips"],
    }
    run_on_main(prepare_fewshot, args=[source, hparams["data_folder"]], kwargs=fewshot_options)
    paths = prepare_fewshot(source, hparams["data_folder"], **fewshot_options)

    demo = pretraining_demo(
        hparams, run_opts, {"train": paths["pool"], "valid": paths["pool_valid"]}, output
    )
    accuracies, finetune_minutes, folders = finetune_twins(
        hparams_file, overrides, hparams, run_opts, paths, checkpoint
    )
    results = {twin: summarize(accuracies[twin]) for twin in TWINS}
    results.update(
        task=f"{hparams['task_name']}, {hparams['shots']} labeled clips per class",
        gain_points=gain_points(results),
        checkpoint=str(checkpoint),
        pretraining=demo,
        minutes={
            "pretraining": demo["minutes"],
            "finetuning_pretrained": round(finetune_minutes["pretrained"], 2),
            "finetuning_scratch": round(finetune_minutes["scratch"], 2),
        },
    )
    if if_main_process():
        start = time.time()
        results["classify_file"] = classify_one(folders["pretrained"], paths["test"], output)
        results["minutes"]["classify_file"] = round((time.time() - start) / 60, 2)
        report(results, results["task"], output)
    finish_distributed_run()


if __name__ == "__main__":
    report_user_errors(main)(sys.argv[1:])
