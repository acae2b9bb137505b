#!/usr/bin/env python3
"""ESC-50 fine-tuning: five-fold cross-validation in one command (docs/fidelity.md d.2).

    python recipes/esc50/train.py hparams/esc50.yaml --data_folder /data/esc50 \
        --pretrained_path SSAST-Base-Patch-400.pth
    python recipes/esc50/train.py hparams/esc50_frame.yaml ...   # the frame model

Fold k trains on the four other official folds and validates and tests on fold k, as
the original. Besides the per-fold table (each fold at its own best epoch), the
original protocol's figure is printed: the epoch with the best fold-averaged validation
accuracy, and that accuracy (esc50/get_esc_result.py).

Authors
 * ssast-sb contributors
"""

import sys
from pathlib import Path

from speechbrain.utils.distributed import if_main_process, run_on_main

from ssast_sb.brains.common import load_recipe
from ssast_sb.brains.finetune import run_folds
from ssast_sb.brains.process_group import finish_distributed_run
from ssast_sb.data.esc50 import cross_validation_manifests, prepare_esc50
from ssast_sb.errors import report_user_errors
from ssast_sb.reports import read_train_log


def prepare_folds(hparams):
    """Prepares ESC-50 (downloading it if allowed) and returns the folds' manifests.

    Arguments
    ---------
    hparams : dict
        ``data_folder``, ``download``, ``manifest_folder``, ``skip_prep``,
        ``on_bad_audio`` and ``folds`` (the test folds to run).

    Returns
    -------
    dict
        ``fold<k>``: ``train`` (the other four folds), ``valid`` and ``test`` (fold k).
    """
    run_on_main(
        prepare_esc50,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["manifest_folder"],
            "folds": hparams["folds"],
            "download": hparams["download"],
            "skip_prep": hparams["skip_prep"],
            "on_bad_audio": hparams["on_bad_audio"],
        },
    )
    return {
        f"fold{fold}": cross_validation_manifests(hparams["manifest_folder"], fold)
        for fold in hparams["folds"]
    }


def fold_averaged_best_epoch(output_folder, fold_names):
    """The original's ESC-50 figure: the best epoch of the fold-averaged validation accuracy.

    Arguments
    ---------
    output_folder : str
        The recipe's output folder (one sub-folder per fold).
    fold_names : list of str
        The folds to average (those of the fold table).

    Returns
    -------
    tuple
        ``(epoch, mean accuracy)``, read from the train logs (3 significant digits).
    """
    output_folder = Path(output_folder)
    curves = []
    for name in fold_names:
        log = read_train_log(output_folder / name / "train_log.txt")
        curves.append({row["epoch"]: row["valid acc"] for row in log if "valid acc" in row})
    epochs = sorted(set.intersection(*(set(curve) for curve in curves)))
    means = {epoch: sum(curve[epoch] for curve in curves) / len(curves) for epoch in epochs}
    best = max(epochs, key=means.get)
    return int(best), means[best]


def main(argv):
    """Runs the recipe on the command line ``argv`` (the YAML, then its options)."""
    hparams, run_opts, hparams_file, overrides = load_recipe(argv)
    folds = prepare_folds(hparams)
    results = run_folds(hparams, hparams_file, overrides, run_opts, folds)
    if if_main_process():
        epoch, accuracy = fold_averaged_best_epoch(hparams["output_folder"], list(results))
        line = (
            f"Original protocol (one epoch for every fold): epoch {epoch}, "
            f"fold-averaged acc {accuracy:.3f}"
        )
        print(line)
        with open(Path(hparams["output_folder"]) / "results.md", "a", encoding="utf-8") as out:
            out.write(line + "\n")
    finish_distributed_run()


if __name__ == "__main__":
    report_user_errors(main)(sys.argv[1:])
