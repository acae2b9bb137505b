#!/usr/bin/env python3
"""Quickstart: MSPM pretraining pays off? Pretrained vs scratch SSAST-tiny on synthetic audio.

    python recipes/quickstart/train.py hparams/quickstart.yaml

Authors
 * ssast-sb contributors
"""

import sys

from speechbrain.utils.distributed import run_on_main

from ssast_sb.brains.common import load_recipe
from ssast_sb.brains.quickstart import run_quickstart
from ssast_sb.data.synthetic import prepare_synthetic_corpus

if __name__ == "__main__":
    hparams, run_opts = load_recipe(sys.argv[1:])
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
    run_quickstart(hparams, run_opts, manifests)
