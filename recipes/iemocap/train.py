#!/usr/bin/env python3
"""IEMOCAP emotion recognition (SUPERB ER): leave-one-session-out in one command.

    python recipes/iemocap/train.py hparams/iemocap.yaml --data_folder /data/IEMOCAP \
        --pretrained_path SSAST-Base-Frame-400.pth

Fold k tests on session k; a seeded random ``valid_ratio`` of the other four sessions'
utterances validates and the rest trains, as s3prl's emotion downstream (docs/fidelity.md
d.3). IEMOCAP cannot be downloaded automatically: the preparation says where to get it.

Authors
 * ssast-sb contributors
"""

import random
import sys
from pathlib import Path

from speechbrain.utils.distributed import run_on_main

from ssast_sb.brains.common import load_recipe
from ssast_sb.brains.finetune import run_folds
from ssast_sb.data.iemocap import FIELDNAMES, SESSIONS, prepare_iemocap
from ssast_sb.data.manifest import read_manifest, write_manifest_atomic


def write_fold_manifests(manifest_folder, test_session, valid_ratio, seed, paths):
    """Splits the sessions other than ``test_session`` into ``paths["train"]``/``["valid"]``."""
    rows = []
    for session in SESSIONS:
        if session != test_session:
            rows.extend(read_manifest(Path(manifest_folder) / f"iemocap_session{session}.csv"))
    random.Random(seed).shuffle(rows)
    num_valid = int(round(valid_ratio * len(rows)))
    write_manifest_atomic(rows[num_valid:], paths["train"], FIELDNAMES)
    write_manifest_atomic(rows[:num_valid], paths["valid"], FIELDNAMES)


def prepare_folds(hparams):
    """Prepares the five IEMOCAP sessions and returns the requested folds' manifests.

    Arguments
    ---------
    hparams : dict
        ``data_folder``, ``manifest_folder``, ``skip_prep``, ``on_bad_audio``,
        ``folds`` (the test sessions to run), ``valid_ratio`` and ``seed``.

    Returns
    -------
    dict
        ``fold<k>``: ``train`` and ``valid`` (from the other sessions) and ``test`` (session k).
    """
    manifest_folder = Path(hparams["manifest_folder"])
    run_on_main(
        prepare_iemocap,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": manifest_folder,
            "skip_prep": hparams["skip_prep"],
            "on_bad_audio": hparams["on_bad_audio"],
        },
    )
    folds = {}
    for session in hparams["folds"]:
        paths = {
            split: str(manifest_folder / f"iemocap_fold{session}_{split}.csv")
            for split in ("train", "valid")
        }
        run_on_main(
            write_fold_manifests,
            args=[manifest_folder, session, hparams["valid_ratio"], hparams["seed"], paths],
        )
        paths["test"] = str(manifest_folder / f"iemocap_session{session}.csv")
        folds[f"fold{session}"] = paths
    return folds


if __name__ == "__main__":
    hparams, run_opts, hparams_file, overrides = load_recipe(sys.argv[1:])
    folds = prepare_folds(hparams)
    run_folds(hparams, hparams_file, overrides, run_opts, folds)
