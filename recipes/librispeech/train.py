#!/usr/bin/env python3
"""SSAST pretraining on LibriSpeech only (the paper's ablation): the pretraining recipe.

Reads the official layout LibriSpeech/<split>/<speaker>/<chapter>/<utt>.flac; own audio can be
added with ``--extra_sources "[/path/a, /path/b.csv]"``:

    python recipes/librispeech/train.py hparams/librispeech.yaml --librispeech_folder /data
    torchrun --nproc_per_node=4 recipes/librispeech/train.py hparams/librispeech.yaml ...

This folder exists so that every dataset has its recipe folder; the flow is
``recipes/pretrain/train.py``'s, which runs here unchanged.

Authors
 * ssast-sb contributors
"""

import runpy
from pathlib import Path

if __name__ == "__main__":
    runpy.run_path(
        str(Path(__file__).resolve().parents[1] / "pretrain" / "train.py"), run_name="__main__"
    )
