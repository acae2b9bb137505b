#!/usr/bin/env python3
"""Quickstart: does MSPM pretraining pay off? Pretrained vs scratch SSAST-tiny on spoken digits.

    python recipes/quickstart/train.py hparams/quickstart.yaml

The flow, on the FSDD clips shipped in ``data/kws_sid_fsdd``:

1. the few-shot manifests (``run_on_main``): the unlabeled pool (the train
   split), ``shots`` labeled clips per class for each seed, valid and test;
2. a short MSPM pretraining in an ``MSPMBrain`` on the pool, its curve plotted;
3. fine-tuning in a ``ClassifierBrain``, for each seed, of the encoder shipped in
   ``data/checkpoints`` (pretrained on the same pool by
   ``benchmarks/quickstart_checkpoint.py``) and of its from-scratch twin; the
   YAML is reloaded per run, so each gets fresh objects;
4. the table (mean and standard deviation over seeds, gain in points),
   ``results.md`` and ``results.json``, and ``classify_file`` on a held-out clip
   with the pretrained twin's inference folder.

Rerunning resumes: finished stages are recovered from their checkpoints.

Authors
 * ssast-sb contributors
"""

import json
import statistics
import sys
import time
from pathlib import Path

from speechbrain.utils.distributed import if_main_process, run_on_main

from ssast_sb.brains.common import load_hparams, load_recipe
from ssast_sb.brains.finetune import run_classification
from ssast_sb.brains.pretrain import run_pretraining
from ssast_sb.data.fewshot import prepare_fewshot
from ssast_sb.data.manifest import read_manifest
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


def format_table(results, task):
    """The results table: test accuracy of each twin, mean ± std over seeds, and the gain.

    Example
    -------
    >>> rows = {"pretrained": {"mean": 0.8, "std": 0.01, "per_seed": {0: 0.8}},
    ...         "scratch": {"mean": 0.7, "std": 0.02, "per_seed": {0: 0.7}}}
    >>> print(format_table(rows, "digits, 10 clips per class"))
    | digits, 10 clips per class | test accuracy (1 seeds) |
    |---|---|
    | pretrained | 0.800 ± 0.010 |
    | scratch | 0.700 ± 0.020 |
    | gain | +10.0 points |
    """
    seeds = len(results["pretrained"]["per_seed"])
    lines = [f"| {task} | test accuracy ({seeds} seeds) |", "|---|---|"]
    for twin in TWINS:
        lines.append(f"| {twin} | {results[twin]['mean']:.3f} ± {results[twin]['std']:.3f} |")
    gain = 100 * (results["pretrained"]["mean"] - results["scratch"]["mean"])
    lines.append(f"| gain | {gain:+.1f} points |")
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


def pretraining_demo(hparams, run_opts, manifests, output):
    """The short MSPM pretraining in the Brain loop, and its curve."""
    start = time.time()
    run_pretraining(hparams, run_opts, manifests)
    minutes = (time.time() - start) / 60
    if if_main_process():
        plot_curves(
            read_train_log(hparams["train_log"]),
            ["train loss", "valid loss", "train acc", "valid acc"],
            output / "pretraining_curves.png",
            title="MSPM pretraining (acc = masked patch classification accuracy)",
        )
    return minutes


def finetune_twins(hparams_file, overrides, hparams, run_opts, paths, checkpoint):
    """Fine-tunes both twins for every seed; test accuracies, minutes and the inference folders."""
    accuracies = {twin: {} for twin in TWINS}
    minutes = dict.fromkeys(TWINS, 0.0)
    folders = {}
    for seed in hparams["seeds"]:
        for twin in TWINS:
            start = time.time()
            pretrained = twin == "pretrained"
            run = load_hparams(
                hparams_file,
                overrides,
                twin=twin,
                run_seed=seed,
                finetune_pretrained_path=str(checkpoint) if pretrained else None,
                finetune_lr=hparams[f"{twin}_lr"],
                finetune_layer_decay=hparams[f"{twin}_layer_decay"],
            )["finetune"]
            manifests = {
                "train": paths["train"][seed],
                "valid": paths["valid"],
                "test": paths["test"],
            }
            fold = run_classification(run, run_opts, manifests)
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


if __name__ == "__main__":
    hparams, run_opts, hparams_file, overrides = load_recipe(sys.argv[1:])
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

    pretrain_minutes = pretraining_demo(
        hparams, run_opts, {"train": paths["pool"], "valid": paths["pool_valid"]}, output
    )
    accuracies, finetune_minutes, folders = finetune_twins(
        hparams_file, overrides, hparams, run_opts, paths, checkpoint
    )
    results = {twin: summarize(accuracies[twin]) for twin in TWINS}
    task = f"{hparams['label_column']}, {hparams['shots']} labeled clips per class"
    table = format_table(results, task)
    pretrain_log = read_train_log(hparams["train_log"])
    results.update(
        task=task,
        gain_points=round(100 * (results["pretrained"]["mean"] - results["scratch"]["mean"]), 1),
        checkpoint=str(checkpoint),
        pretraining_valid_acc=[row["valid acc"] for row in pretrain_log if "valid acc" in row],
        minutes={
            "pretraining": round(pretrain_minutes, 2),
            "finetuning_pretrained": round(finetune_minutes["pretrained"], 2),
            "finetuning_scratch": round(finetune_minutes["scratch"], 2),
        },
    )
    if if_main_process():
        start = time.time()
        results["classify_file"] = classify_one(folders["pretrained"], paths["test"], output)
        results["minutes"]["classify_file"] = round((time.time() - start) / 60, 2)
        print(table)
        print(
            "classify_file({file}): {predicted} (p={probability}), label {label}".format(
                **results["classify_file"]
            )
        )
        minutes = results["minutes"]
        print("minutes: " + ", ".join(f"{stage} {value:.1f}" for stage, value in minutes.items()))
        with atomic_open(output / "results.md") as stream:
            stream.write(table + "\n")
        with atomic_open(output / "results.json") as stream:
            stream.write(json.dumps(results, indent=2))
