#!/usr/bin/env python3
"""VoxCeleb1 speaker identification (SUPERB SID) on the official iden_split.txt.

    python recipes/voxceleb/train.py hparams/voxceleb.yaml --data_folder /data/VoxCeleb1 \
        --pretrained_path SSAST-Base-Frame-400.pth

VoxCeleb1 cannot be downloaded automatically: the preparation says where to get it
(SSAST_SPEC.md d.3).

Authors
 * ssast-sb contributors
"""

import sys
from pathlib import Path

from speechbrain.utils.distributed import run_on_main

from ssast_sb.brains.finetune_runner import finetuning_main
from ssast_sb.data.manifest import read_manifest, write_manifest_atomic
from ssast_sb.data.voxceleb import prepare_voxceleb1_identification

SPLITS = ("train", "valid", "test")
LABELLED_FIELDNAMES = ["ID", "duration", "wav", "label", "video"]


def write_labelled_manifests(manifest_folder):
    """Copies of the SID manifests with the speaker as the ``label`` column."""
    for split in SPLITS:
        rows = read_manifest(Path(manifest_folder) / f"voxceleb1_sid_{split}.csv")
        for row in rows:
            row["label"] = row.pop("speaker")
        write_manifest_atomic(rows, Path(manifest_folder) / f"sid_{split}.csv", LABELLED_FIELDNAMES)


def prepare_folds(hparams):
    """Prepares the VoxCeleb1 identification split and returns its one fold.

    Arguments
    ---------
    hparams : dict
        ``data_folder``, ``manifest_folder``, ``skip_prep`` and ``on_bad_audio``.

    Returns
    -------
    dict
        ``{"sid": {"train", "valid", "test"}}`` with a ``label`` (speaker) column.
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
    run_on_main(write_labelled_manifests, args=[manifest_folder])
    return {"sid": {split: str(manifest_folder / f"sid_{split}.csv") for split in SPLITS}}


if __name__ == "__main__":
    finetuning_main(sys.argv[1:], prepare_folds)
