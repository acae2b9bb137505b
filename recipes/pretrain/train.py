#!/usr/bin/env python3
"""SSAST pretraining with masked spectrogram patch modeling (the paper's main setting).

Joint AudioSet + LibriSpeech pretraining; any folder/CSV/JSON of your own audio can be
added with ``--extra_sources "[/path/a, /path/b.csv]"``:

    python recipes/pretrain/train.py hparams/pretrain_patch.yaml \
        --audioset_folder /data/audioset --librispeech_folder /data
    torchrun --nproc_per_node=4 recipes/pretrain/train.py hparams/pretrain_frame.yaml ...

The flow: load the YAML (its model, optimiser, checkpointer and logger are
HyperPyYAML objects), write the manifests once (``run_on_main``), then fit an
``MSPMBrain`` and export the best model (``ssast_sb.brains.pretrain.run_pretraining``).

Authors
 * ssast-sb contributors
"""

import sys

from speechbrain.utils.distributed import run_on_main

from ssast_sb.brains.common import load_recipe
from ssast_sb.brains.pretrain import DATA_KEYS, run_pretraining
from ssast_sb.brains.process_group import finish_distributed_run
from ssast_sb.data.pretraining import prepare_pretraining_data
from ssast_sb.errors import report_user_errors


def main(argv):
    """Runs the recipe on the command line ``argv`` (the YAML, then its options)."""
    hparams, run_opts, _, _ = load_recipe(argv)
    save_folder = hparams["save_folder"]
    run_on_main(
        prepare_pretraining_data,
        args=[save_folder],
        kwargs={key: hparams[key] for key in DATA_KEYS},
    )
    manifests = {split: f"{save_folder}/pretrain_{split}.csv" for split in ("train", "valid")}
    _, exported = run_pretraining(hparams, run_opts, manifests)
    print(f"Pretrained SSAST: {exported['pth']} ({exported['summary']})")
    finish_distributed_run()


if __name__ == "__main__":
    report_user_errors(main)(sys.argv[1:])
