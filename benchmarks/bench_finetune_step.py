"""Times one fine-tuning step of SSASTClassifier (forward + backward, no optimiser step).

The classifier is the encoder at a fine-tuning grid (overlapping patches,
e.g. stride 10 for 16x16 patches: 1214 tokens at 1024 frames), mean pooling
and the ``LayerNorm -> Linear`` head (docs/fidelity.md b.5), trained with a
binary cross-entropy on random multi-hot labels (AudioSet's loss). Prints one
line per repetition, the achieved GFLOP/s next to the machine's dense-matmul
rate of the same precision measured in the same run, and as its last line a
JSON object with ``median_s``, ``min_s``, ``peak_rss_mb``, ``gflops_per_s`` and
the arguments.

Example::

    python benchmarks/bench_finetune_step.py --size tiny --shape patch --target-frames 1024 \
        --fstride 10 --tstride 10 --batch 2 --threads 2 --reps 7 --precision fp32
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ssast_sb.encoder import SSASTEncoder
from ssast_sb.models import SSASTClassifier

if __package__ in (None, ""):  # run as a script: the repository root makes `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    DEFAULT_STRIDES,
    MemoryWatch,
    add_model_arguments,
    autocast_context,
    classifier_forward_flops,
    finetune_config,
    matmul_peak_gflops,
    sync,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_arguments(parser, size="tiny")
    parser.add_argument("--fstride", type=int, default=None, help="default: 10 patch, 128 frame")
    parser.add_argument("--tstride", type=int, default=None, help="default: 10 patch, 1 frame")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--classes", type=int, default=527, help="label count (AudioSet: 527)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    default_f, default_t = DEFAULT_STRIDES[args.shape]
    args.fstride = args.fstride or default_f
    args.tstride = args.tstride or default_t
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = finetune_config(args)
    model = SSASTClassifier(SSASTEncoder(config), args.classes).to(args.device)
    spectrogram = torch.randn(args.batch, args.target_frames, 128, device=args.device)
    labels = (torch.rand(args.batch, args.classes, device=args.device) < 0.02).float()
    memory = MemoryWatch(args.device)

    def one_step():
        sync(args.device)
        start = time.perf_counter()
        with autocast_context(args.precision, args.device):
            logits = model(spectrogram)
        F.binary_cross_entropy_with_logits(logits.float(), labels).backward()
        model.zero_grad(set_to_none=True)
        sync(args.device)
        return time.perf_counter() - start

    for _ in range(args.warmup):
        one_step()
    times = []
    for rep in range(args.reps):
        times.append(one_step())
        print(f"rep {rep}: {times[-1]:.3f} s", flush=True)

    flops = 3 * classifier_forward_flops(config, args.batch, args.classes)
    median = statistics.median(times)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    peak = matmul_peak_gflops(
        config.embed_dim, args.batch * (config.num_patches + 2), dtype, args.device
    )
    achieved = flops / median / 1e9
    print(
        f"{config.num_patches + 2} tokens: achieved {achieved:.1f} GFLOP/s; measured "
        f"{args.precision} matmul peak {peak:.1f} GFLOP/s; ratio {achieved / peak:.2f}"
    )
    result = {
        **vars(args),
        "median_s": round(median, 4),
        "min_s": round(min(times), 4),
        **memory.report(),
        "gflops_per_s": round(achieved, 1),
        "matmul_peak_gflops_per_s": round(peak, 1),
        "tokens": config.num_patches + 2,
        "torch": torch.__version__,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
