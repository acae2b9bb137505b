"""Run under torchrun: a rank with a live DDP wrapper prints a line, then finishes the run.

A statement after :func:`finish_distributed_run` must never run.
"""

import torch
import torch.distributed as dist

from ssast_sb.brains.process_group import finish_distributed_run

if __name__ == "__main__":
    dist.init_process_group("gloo")
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 2))
    model(torch.ones(3, 4)).sum().backward()
    print(f"rank {dist.get_rank()} trained")
    finish_distributed_run()
    raise SystemExit(3)  # never reached: the run left with status 0
