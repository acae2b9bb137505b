"""Run under torchrun: each rank's MSPMBrain draws training masks; rank 0 reports if they differ.

The Brain itself is built and started (``on_fit_start``) as a recipe does, so the
test follows whatever the Brain does to make the ranks mask differently.
"""

import json
import sys

import speechbrain as sb
import torch
import torch.distributed as dist

from ssast_sb.brains.pretrain import MSPMBrain
from ssast_sb.brains.process_group import finish_distributed_run
from ssast_sb.encoder import EncoderConfig, SSASTEncoder
from ssast_sb.models import SSASTPretrainModel

if __name__ == "__main__":
    dist.init_process_group("gloo")
    model = SSASTPretrainModel(
        SSASTEncoder(EncoderConfig.from_names("tiny", "patch", input_tdim=64)), num_masked=20
    )
    hparams = dict(
        model=model,
        seed=0,  # the same on every rank, as SpeechBrain seeds them
        valid_num_masked=20,
        plateau_factor=0.5,
        plateau_patience=1,
        warmup=False,
        epoch_counter=sb.utils.epoch_loop.EpochCounter(1),
    )
    brain = MSPMBrain(
        modules={"model": model},
        opt_class=lambda params: torch.optim.Adam(params, lr=1e-4),
        hparams=hparams,
        run_opts={"device": "cpu", "noprogressbar": True, "distributed_backend": "gloo"},
    )
    brain.on_fit_start()
    mask, _ = brain.draw_masks(2, sb.Stage.TRAIN)
    gathered = [torch.zeros_like(mask) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, mask)
    if dist.get_rank() == 0:
        different = not torch.equal(gathered[0], gathered[1])
        with open(sys.argv[1], "w", encoding="utf-8") as stream:
            json.dump({"world_size": dist.get_world_size(), "different": different}, stream)
    finish_distributed_run()
