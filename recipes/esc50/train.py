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
from ssast_sb.data.esc50 import (
    META_FILE,
    RELEASE_FOLDER,
    download_esc50,
    prepare_esc50,
)
from ssast_sb.data.manifest import read_manifest, write_manifest_atomic
from ssast_sb.reports import read_train_log

FOLD_FIELDNAMES = ["ID", "duration", "wav", "label", "fold"]


def write_fold_manifests(manifest_folder, test_fold, paths):
    """Writes fold ``test_fold``'s ``train`` (the other four folds) and ``test`` manifests.

    The official ``target`` index column is left out: its name is taken by the runner's
    encoded label.
    """
    for split, folds in (("train", set(range(1, 6)) - {test_fold}), ("test", {test_fold})):
        rows = []
        for fold in sorted(folds):
            rows.extend(read_manifest(Path(manifest_folder) / f"esc50_fold{fold}.csv"))
        rows = [{key: row[key] for key in FOLD_FIELDNAMES} for row in rows]
        write_manifest_atomic(rows, paths[split], FOLD_FIELDNAMES)


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
    data_folder = Path(hparams["data_folder"])
    release_found = any(
        (folder / META_FILE).is_file() for folder in (data_folder, data_folder / RELEASE_FOLDER)
    )
    if hparams["download"] and not release_found and not hparams["skip_prep"]:
        run_on_main(download_esc50, args=[data_folder])
    manifest_folder = Path(hparams["manifest_folder"])
    run_on_main(
        prepare_esc50,
        kwargs={
            "data_folder": data_folder,
            "save_folder": manifest_folder,
            "skip_prep": hparams["skip_prep"],
            "on_bad_audio": hparams["on_bad_audio"],
        },
    )
    folds = {}
    for fold in hparams["folds"]:
        paths = {
            split: str(manifest_folder / f"esc50_fold{fold}_{split}.csv")
            for split in ("train", "test")
        }
        run_on_main(write_fold_manifests, args=[manifest_folder, fold, paths])
        # The held-out fold validates (picks the epoch) and tests, as the original.
        folds[f"fold{fold}"] = dict(paths, valid=paths["test"])
    return folds


def fold_averaged_best_epoch(output_folder, fold_names):
    """The original's ESC-50 figure: the best epoch of the fold-averaged validation accuracy.

    Arguments
    ---------
    output_folder : str
        The recipe's output folder (one sub-folder per fold when there are several).
    fold_names : list of str
        The folds that ran.

    Returns
    -------
    tuple
        ``(epoch, mean accuracy)``, read from the train logs (3 significant digits).
    """
    output_folder = Path(output_folder)
    curves = []
    for name in fold_names:
        folder = output_folder / name if len(fold_names) > 1 else output_folder
        log = read_train_log(folder / "train_log.txt")
        curves.append({row["epoch"]: row["valid acc"] for row in log if "valid acc" in row})
    epochs = sorted(set.intersection(*(set(curve) for curve in curves)))
    means = {epoch: sum(curve[epoch] for curve in curves) / len(curves) for epoch in epochs}
    best = max(epochs, key=means.get)
    return int(best), means[best]


if __name__ == "__main__":
    hparams, run_opts, hparams_file, overrides = load_recipe(sys.argv[1:])
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
