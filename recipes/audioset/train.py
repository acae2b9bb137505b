#!/usr/bin/env python3
"""AudioSet fine-tuning: AS-20K (balanced_train) or AS-2M (unbalanced + balanced train).

    python recipes/audioset/train.py hparams/audioset.yaml --data_folder /data/audioset \
        --pretrained_path SSAST-Base-Patch-400.pth
    python recipes/audioset/train.py hparams/audioset_full.yaml ...

Validation and test use the eval segments (docs/fidelity.md d.2). AudioSet cannot be
downloaded automatically: the preparation matches the official segment lists against
the clips found under ``<data_folder>/audio`` and says what is missing.

Authors
 * ssast-sb contributors
"""

import json
import sys
from pathlib import Path

from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.utils.distributed import run_on_main

from ssast_sb.brains.common import load_recipe
from ssast_sb.brains.finetune import run_folds
from ssast_sb.brains.process_group import finish_distributed_run
from ssast_sb.data.audioset import FIELDNAMES, LABELS_JSON, prepare_audioset
from ssast_sb.data.manifest import read_manifest, write_manifest_atomic
from ssast_sb.errors import report_user_errors


def write_joined_manifest(segment_manifests, path):
    """Concatenates segment manifests into ``path``, each clip once."""
    rows, seen = [], set()
    for manifest in segment_manifests:
        for row in read_manifest(manifest):
            if row["ID"] not in seen:
                seen.add(row["ID"])
                rows.append(row)
    write_manifest_atomic(rows, path, FIELDNAMES)


def write_label_encoder(labels_json, path):
    """Saves the runner's label encoder: every AudioSet class, in the official order.

    The head thus has the 527 outputs of ``class_labels_indices.csv`` even when some
    classes are absent from the downloaded training clips (their eval labels still
    encode). An encoder already at ``path`` is kept.
    """
    if Path(path).exists():
        return
    mid_to_index = json.loads(Path(labels_json).read_text(encoding="utf-8"))["mid_to_index"]
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(sorted(mid_to_index, key=mid_to_index.get))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    encoder.save(path)


def prepare_folds(hparams):
    """Prepares the AudioSet manifests and returns the one fold.

    Arguments
    ---------
    hparams : dict
        ``data_folder``, ``manifest_folder``, ``train_segments``, ``skip_prep``,
        ``on_bad_audio`` and ``output_folder`` (where the label encoder is written).

    Returns
    -------
    dict
        ``{"audioset": {"train", "valid", "test"}}``; valid and test are the eval set.
    """
    manifest_folder = Path(hparams["manifest_folder"])
    segments = [*hparams["train_segments"], "eval"]
    run_on_main(
        prepare_audioset,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": manifest_folder,
            "segments": segments,
            "skip_prep": hparams["skip_prep"],
            "on_bad_audio": hparams["on_bad_audio"],
        },
    )
    train = manifest_folder / "finetune_train.csv"
    evaluation = manifest_folder / "finetune_eval.csv"
    train_segments = [manifest_folder / f"audioset_{s}.csv" for s in hparams["train_segments"]]
    run_on_main(write_joined_manifest, args=[train_segments, train])
    run_on_main(write_joined_manifest, args=[[manifest_folder / "audioset_eval.csv"], evaluation])
    # The runner reads a label encoder already in the fold's folder (the output folder).
    run_on_main(
        write_label_encoder,
        args=[manifest_folder / LABELS_JSON, Path(hparams["output_folder"]) / "label_encoder.txt"],
    )
    return {"audioset": {"train": str(train), "valid": str(evaluation), "test": str(evaluation)}}


def main(argv):
    """Runs the recipe on the command line ``argv`` (the YAML, then its options)."""
    hparams, run_opts, hparams_file, overrides = load_recipe(argv)
    folds = prepare_folds(hparams)
    run_folds(hparams, hparams_file, overrides, run_opts, folds)
    finish_distributed_run()


if __name__ == "__main__":
    report_user_errors(main)(sys.argv[1:])
