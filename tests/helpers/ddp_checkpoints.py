"""Run under torchrun: save-and-keep-only under DDP while the main process is slow to rename.

The main process sleeps before renaming each completed checkpoint, so the other
process reaches SpeechBrain's listing of old checkpoints first. Rank 0 writes the
checkpoints left at the end to ``argv[2]``; a disagreement between processes
shows up as a collective that times out.
"""

import datetime
import json
import os
import sys
import time

import torch
import torch.distributed as dist

import ssast_sb.brains.common as common
from ssast_sb.brains.process_group import finish_distributed_run


def slow_replace(source, target, replace=os.replace):
    """``os.replace`` that first waits, as a loaded file system can."""
    time.sleep(0.5)
    replace(source, target)


if __name__ == "__main__":
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    if dist.get_rank() == 0:
        common.os.replace = slow_replace
    layer = torch.nn.Linear(2, 2)
    checkpointer = common.AtomicCheckpointer(sys.argv[1], {"layer": layer})
    for step in range(3):
        checkpointer.save_and_keep_only(meta={"step": step}, num_to_keep=1)
    if dist.get_rank() == 0:
        left = [ckpt.meta["step"] for ckpt in checkpointer.list_checkpoints()]
        with open(sys.argv[2], "w", encoding="utf-8") as stream:
            json.dump({"left": left}, stream)
    finish_distributed_run()
