#!/usr/bin/env python3
"""Quickstart: does MSPM pretraining pay off? Pretrained vs scratch SSAST-tiny on synthetic audio.

    python recipes/quickstart/train.py hparams/quickstart.yaml

The flow: generate the synthetic corpus once (``run_on_main``), pretrain with an
``MSPMBrain`` on its unlabeled part, plot the curves, then fine-tune the
pretrained model and its from-scratch twin with the same settings (the YAML is
reloaded per twin, so each gets fresh objects), and print the table.

Authors
 * ssast-sb contributors
"""

import json
import sys
import time
from pathlib import Path

from speechbrain.utils.distributed import if_main_process, run_on_main

from ssast_sb.brains.common import load_hparams, load_recipe
from ssast_sb.brains.finetune import run_classification
from ssast_sb.brains.pretrain import run_pretraining
from ssast_sb.data.synthetic import prepare_synthetic_corpus
from ssast_sb.fileio import atomic_open
from ssast_sb.reports import plot_curves, read_train_log


def format_table(results, pretrain_minutes):
    """A plain-text results table.

    Example
    -------
    >>> print(format_table({"scratch": {"test_acc": 0.5, "valid_acc": 0.4, "minutes": 1.0}}, 2.0))
    | model | test accuracy | valid accuracy | fine-tuning minutes |
    |---|---|---|---|
    | scratch | 0.500 | 0.400 | 1.0 |
    pretraining: 2.0 minutes
    """
    lines = [
        "| model | test accuracy | valid accuracy | fine-tuning minutes |",
        "|---|---|---|---|",
    ]
    for name, row in results.items():
        lines.append(
            f"| {name} | {row['test_acc']:.3f} | {row['valid_acc']:.3f} | {row['minutes']:.1f} |"
        )
    lines.append(f"pretraining: {pretrain_minutes:.1f} minutes")
    return "\n".join(lines)


if __name__ == "__main__":
    hparams, run_opts, hparams_file, overrides = load_recipe(sys.argv[1:])
    run_on_main(
        prepare_synthetic_corpus,
        args=[hparams["data_folder"]],
        kwargs={
            "num_unlabeled": hparams["num_unlabeled"],
            "num_labeled_per_class": hparams["num_labeled_per_class"],
            "num_valid_per_class": hparams["num_valid_per_class"],
            "num_test_per_class": hparams["num_test_per_class"],
            "duration_s": hparams["clip_duration_s"],
            "seed": hparams["seed"],
        },
    )
    splits = ("unlabeled", "train", "valid", "test")
    manifests = {split: f"{hparams['data_folder']}/synthetic_{split}.csv" for split in splits}
    output = Path(hparams["output_folder"])

    start = time.time()
    pretraining_manifests = {"train": manifests["unlabeled"], "valid": manifests["valid"]}
    _, exported = run_pretraining(hparams, run_opts, pretraining_manifests)
    pretrain_minutes = (time.time() - start) / 60
    if if_main_process():
        plot_curves(
            read_train_log(hparams["train_log"]),
            ["train loss", "valid loss", "train acc", "valid acc"],
            output / "pretraining_curves.png",
            title="MSPM pretraining (acc = masked patch classification accuracy)",
        )

    results = {}
    labeled = {split: manifests[split] for split in ("train", "valid", "test")}
    for twin, pretrained_path in (("pretrained", exported["pth"]), ("scratch", None)):
        start = time.time()
        twin_hparams = load_hparams(
            hparams_file, overrides, twin=twin, finetune_pretrained_path=pretrained_path
        )
        fold = run_classification(twin_hparams["finetune"], run_opts, labeled)
        results[twin] = {
            "test_acc": fold["test"]["acc"],
            "valid_acc": fold["valid"]["acc"],
            "minutes": (time.time() - start) / 60,
        }
    table = format_table(results, pretrain_minutes)
    print(table)
    results["pretrain_minutes"] = pretrain_minutes
    if if_main_process():
        with atomic_open(output / "results.md") as stream:
            stream.write(table + "\n")
        with atomic_open(output / "results.json") as stream:
            stream.write(json.dumps(results, indent=2))
