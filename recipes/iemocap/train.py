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

import sys

from speechbrain.utils.distributed import run_on_main

from ssast_sb.brains.common import load_recipe
from ssast_sb.brains.finetune import run_folds
from ssast_sb.brains.process_group import finish_distributed_run
from ssast_sb.data.iemocap import fold_manifests, prepare_iemocap
from ssast_sb.errors import report_user_errors


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
    run_on_main(
        prepare_iemocap,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["manifest_folder"],
            "folds": hparams["folds"],
            "valid_ratio": hparams["valid_ratio"],
            "seed": hparams["seed"],
            "skip_prep": hparams["skip_prep"],
            "on_bad_audio": hparams["on_bad_audio"],
        },
    )
    return {f"fold{k}": fold_manifests(hparams["manifest_folder"], k) for k in hparams["folds"]}


def main(argv):
    """Runs the recipe on the command line ``argv`` (the YAML, then its options)."""
    hparams, run_opts, hparams_file, overrides = load_recipe(argv)
    folds = prepare_folds(hparams)
    run_folds(hparams, hparams_file, overrides, run_opts, folds)
    finish_distributed_run()


if __name__ == "__main__":
    report_user_errors(main)(sys.argv[1:])
