"""Run under torchrun: each rank draws masks as MSPMBrain does; rank 0 reports if they differ."""

import json
import sys

import torch
import torch.distributed as dist

from ssast_sb.brains.common import SeededGenerator, process_rank
from ssast_sb.masking import cluster_mask

if __name__ == "__main__":
    dist.init_process_group("gloo")
    generator = SeededGenerator(seed=0, rank=process_rank()).generator
    mask = cluster_mask(2, (8, 64), 400, generator=generator)
    gathered = [torch.zeros_like(mask) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, mask)
    if dist.get_rank() == 0:
        different = not torch.equal(gathered[0], gathered[1])
        with open(sys.argv[1], "w", encoding="utf-8") as stream:
            json.dump({"world_size": dist.get_world_size(), "different": different}, stream)
    dist.destroy_process_group()
