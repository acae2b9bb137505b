#!/usr/bin/env python3
"""SSAST pretraining on LibriSpeech only (the paper's ablation).

Reads the official layout LibriSpeech/<split>/<speaker>/<chapter>/<utt>.flac; own audio can be
added with ``--extra_sources "[/path/a, /path/b.csv]"``:

    python recipes/librispeech/train.py hparams/librispeech.yaml --librispeech_folder /data
    torchrun --nproc_per_node=4 recipes/librispeech/train.py hparams/librispeech.yaml ...

Authors
 * ssast-sb contributors
"""

import sys

from ssast_sb.brains.pretrain import pretraining_main

if __name__ == "__main__":
    exported = pretraining_main(sys.argv[1:])
    print(f"Pretrained SSAST: {exported['pth']}")
