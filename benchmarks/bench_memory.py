"""Resident memory over a long CPU pretraining loop: it must stay flat.

Runs ``--steps`` joint MSPM steps (masks drawn per step, Adam update) of a tiny
model and samples the process's resident set size (RSS, from /proc) every
``--every`` steps. Prints the samples and, as its last line, a JSON object with
the RSS after warm-up (the allocator settles in the first ~100 steps), at the
end, its range, and the growth per 100 steps (least-squares slope after warm-up).

    python benchmarks/bench_memory.py --steps 300 --size tiny --target-frames 256 --batch 4
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from ssast_sb.encoder import EncoderConfig

if __package__ in (None, ""):  # run as a script: the repository root makes `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import build_model, default_num_masked  # noqa: E402


def rss_mb():
    """Current resident set size of this process in MiB."""
    with open(f"/proc/{os.getpid()}/statm", encoding="utf-8") as stream:
        pages = int(stream.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--shape", default="patch")
    parser.add_argument("--target-frames", "--tdim", dest="target_frames", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = EncoderConfig.from_names(args.size, args.shape, input_tdim=args.target_frames)
    model = build_model("faithful", config, default_num_masked(config))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    samples = {}
    for step in range(1, args.steps + 1):
        spectrogram = torch.randn(args.batch, args.target_frames, 128, generator=generator)
        loss = model(spectrogram, *model.draw_masks(args.batch, generator))["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % args.every == 0:
            samples[step] = rss_mb()
            print(f"step {step}: rss {samples[step]:.1f} MiB loss {loss.item():.3f}", flush=True)
    steady = [(step, rss) for step, rss in samples.items() if step >= args.warmup]
    steps, values = zip(*steady)
    slope = np.polyfit(steps, values, 1)[0] if len(steady) > 1 else 0.0
    result = {
        **vars(args),
        "rss_after_warmup_mb": round(values[0], 1),
        "rss_end_mb": round(values[-1], 1),
        "rss_range_after_warmup_mb": round(max(values) - min(values), 1),
        "growth_mb_per_100_steps": round(100 * float(slope), 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
