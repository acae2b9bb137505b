#!/usr/bin/env python3
"""SSAST pretraining with masked spectrogram patch modeling (the paper's main setting).

Joint AudioSet + LibriSpeech pretraining; any folder/CSV/JSON of your own audio can be
added with ``--extra_sources "[/path/a, /path/b.csv]"``:

    python recipes/pretrain/train.py hparams/pretrain_patch.yaml \
        --audioset_folder /data/audioset --librispeech_folder /data
    torchrun --nproc_per_node=4 recipes/pretrain/train.py hparams/pretrain_frame.yaml ...

Authors
 * ssast-sb contributors
"""

import sys

from ssast_sb.brains.pretrain import pretraining_main

if __name__ == "__main__":
    exported = pretraining_main(sys.argv[1:])
    print(f"Pretrained SSAST: {exported['pth']}")
