#!/usr/bin/env python3
"""Speech Commands fine-tuning: the 35-word V2 task (KS2) or SUPERB keyword spotting (KS1).

    python recipes/speech_commands/train.py hparams/speech_commands_v2.yaml \
        --data_folder /data/speech_commands --pretrained_path SSAST-Base-Frame-400.pth
    python recipes/speech_commands/train.py hparams/speech_commands_v1_ks.yaml \
        --data_folder /data/speech_commands --pretrained_path SSAST-Base-Frame-400.pth

The official validation and testing lists give the splits (docs/fidelity.md d.2, d.3); the
corpus is downloaded into ``data_folder`` when it is absent and ``download`` is True.

Authors
 * ssast-sb contributors
"""

import sys
from pathlib import Path

from speechbrain.utils.distributed import run_on_main

from ssast_sb.brains.common import load_recipe
from ssast_sb.brains.finetune import run_folds
from ssast_sb.brains.process_group import finish_distributed_run
from ssast_sb.data.speech_commands import prepare_speech_commands
from ssast_sb.errors import report_user_errors


def prepare_folds(hparams):
    """Prepares Speech Commands (downloading it if allowed) and returns its one fold.

    Arguments
    ---------
    hparams : dict
        ``data_folder``, ``download``, ``version``, ``task``, ``manifest_folder``,
        ``skip_prep`` and ``on_bad_audio``.

    Returns
    -------
    dict
        ``{task: {"train", "valid", "test"}}``: the official splits.
    """
    manifest_folder, task = Path(hparams["manifest_folder"]), hparams["task"]
    run_on_main(
        prepare_speech_commands,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": manifest_folder,
            "version": hparams["version"],
            "task": task,
            "download": hparams["download"],
            "skip_prep": hparams["skip_prep"],
            "on_bad_audio": hparams["on_bad_audio"],
        },
    )
    manifests = {
        split: str(manifest_folder / f"speech_commands_{task}_{split}.csv")
        for split in ("train", "valid", "test")
    }
    return {task: manifests}


def main(argv):
    """Runs the recipe on the command line ``argv`` (the YAML, then its options)."""
    hparams, run_opts, hparams_file, overrides = load_recipe(argv)
    folds = prepare_folds(hparams)
    run_folds(hparams, hparams_file, overrides, run_opts, folds)
    finish_distributed_run()


if __name__ == "__main__":
    report_user_errors(main)(sys.argv[1:])
