#!/usr/bin/env python3
"""VoxCeleb1 speaker identification (SUPERB SID) on the official iden_split.txt.

    python recipes/voxceleb/train.py hparams/voxceleb.yaml --data_folder /data/VoxCeleb1 \
        --pretrained_path SSAST-Base-Frame-400.pth

VoxCeleb1 cannot be downloaded automatically: the preparation says where to get it
(docs/fidelity.md d.3).

Authors
 * ssast-sb contributors
"""

import sys
from pathlib import Path

from speechbrain.utils.distributed import run_on_main

from ssast_sb.brains.common import load_recipe
from ssast_sb.brains.finetune import run_folds
from ssast_sb.brains.process_group import finish_distributed_run
from ssast_sb.data.voxceleb import prepare_voxceleb1_identification
from ssast_sb.errors import report_user_errors

SPLITS = ("train", "valid", "test")


def prepare_folds(hparams):
    """Prepares the VoxCeleb1 identification split and returns its one fold.

    Arguments
    ---------
    hparams : dict
        ``data_folder``, ``manifest_folder``, ``skip_prep`` and ``on_bad_audio``.

    Returns
    -------
    dict
        ``{"sid": {"train", "valid", "test"}}``, the speaker in the ``speaker`` column
        (the YAML's ``label_column``).
    """
    manifest_folder = Path(hparams["manifest_folder"])
    run_on_main(
        prepare_voxceleb1_identification,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": manifest_folder,
            "skip_prep": hparams["skip_prep"],
            "on_bad_audio": hparams["on_bad_audio"],
        },
    )
    manifests = {split: str(manifest_folder / f"voxceleb1_sid_{split}.csv") for split in SPLITS}
    return {"sid": manifests}


def main(argv):
    """Runs the recipe on the command line ``argv`` (the YAML, then its options)."""
    hparams, run_opts, hparams_file, overrides = load_recipe(argv)
    folds = prepare_folds(hparams)
    run_folds(hparams, hparams_file, overrides, run_opts, folds)
    finish_distributed_run()


if __name__ == "__main__":
    report_user_errors(main)(sys.argv[1:])
