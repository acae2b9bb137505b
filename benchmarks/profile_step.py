"""Where the time of one faithful MSPM pretraining step goes (torch.profiler, CPU).

Prints the share of the step spent in matrix products (linear layers,
attention, the patch convolution) against everything else (LayerNorm, GELU,
softmax, element-wise work, masking), and the top operators by self time.
The matrix products run at the machine's dense-matmul rate
(``bench_matmul.py``); the rest is what keeps a step below that rate.

Example::

    python benchmarks/profile_step.py --size base --target-frames 1024 --batch 2 --threads 2
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from ssast_sb.encoder import EncoderConfig

if __package__ in (None, ""):  # run as a script: the repository root makes `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import build_model, default_num_masked  # noqa: E402

#: Operator names that are matrix products.
MATMUL_KEYS = ("addmm", "mm", "bmm", "matmul", "linear", "scaled_dot_product", "flash", "conv")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="base", choices=["tiny", "small", "base"])
    parser.add_argument("--shape", default="patch", choices=["patch", "frame"])
    parser.add_argument("--target-frames", "--tdim", dest="target_frames", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = EncoderConfig.from_names(args.size, args.shape, input_tdim=args.target_frames)
    model = build_model("faithful", config, default_num_masked(config))
    spectrogram = torch.randn(args.batch, args.target_frames, 128)
    generator = torch.Generator().manual_seed(0)

    def step():
        out = model(spectrogram, *model.draw_masks(args.batch, generator))
        out["loss"].backward()
        model.zero_grad(set_to_none=True)

    step()  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        step()
    events = profiler.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    matmul = sum(
        event.self_cpu_time_total
        for event in events
        if any(key in event.key for key in MATMUL_KEYS)
    )
    print(f"step self time {total / 1e6:.2f} s; matrix products {matmul / total:.1%}")
    top = sorted(events, key=lambda event: -event.self_cpu_time_total)[: args.top]
    for event in top:
        print(f"{event.key:45s} {event.self_cpu_time_total / total:6.1%}")
    result = {
        **vars(args),
        "self_s": round(total / 1e6, 3),
        "matmul_share": round(matmul / total, 3),
        "top": {event.key: round(event.self_cpu_time_total / total, 3) for event in top},
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
