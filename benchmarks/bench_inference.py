"""Inference throughput of SSASTClassifier in fp32 and bf16, measured in one run.

By default the AudioSet fine-tuning configuration: SSAST-Base, 16x16 patches,
1024 frames, stride 10 (12 x 101 patches + 2 class tokens = 1214 tokens),
batch 2, ``model.eval()`` under ``torch.inference_mode``. Every repetition
times fp32 then bf16 (``torch.autocast``), alternating which goes first, so
that both see the same machine load and their ratio comes from one run.
Prints one line per repetition, per precision the achieved GFLOP/s next to
the dense-matmul rate of that precision measured in the same run, and as its
last line a JSON object: ``median_s``, ``min_s``, ``clips_per_s`` and
``gflops_per_s`` under ``fp32`` and ``bf16`` (the top-level ``median_s``,
``min_s`` and ``gflops_per_s`` repeat fp32's), ``bf16_speedup``,
``peak_rss_mb`` and the arguments.

Example::

    python benchmarks/bench_inference.py --size base --shape patch --target-frames 1024 --batch 2 \
        --threads 2 --reps 5
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from ssast_sb.encoder import SSASTEncoder
from ssast_sb.models import SSASTClassifier

if __package__ in (None, ""):  # run as a script: the repository root makes `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    DEFAULT_STRIDES,
    add_model_arguments,
    autocast_context,
    classifier_forward_flops,
    finetune_config,
    matmul_peak_gflops,
    peak_rss_mb,
    sync,
)

PRECISIONS = ("fp32", "bf16")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_arguments(parser, size="base")
    parser.add_argument("--fstride", type=int, default=None, help="default: 10 patch, 128 frame")
    parser.add_argument("--tstride", type=int, default=None, help="default: 10 patch, 1 frame")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--classes", type=int, default=527, help="label count (AudioSet: 527)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
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
    model = SSASTClassifier(SSASTEncoder(config), args.classes).to(args.device).eval()
    spectrogram = torch.randn(args.batch, args.target_frames, 128, device=args.device)

    @torch.inference_mode()
    def one_batch(precision):
        sync(args.device)
        start = time.perf_counter()
        with autocast_context(precision, args.device):
            model(spectrogram)
        sync(args.device)
        return time.perf_counter() - start

    for _ in range(args.warmup):
        for precision in PRECISIONS:
            one_batch(precision)
    times = {precision: [] for precision in PRECISIONS}
    for rep in range(args.reps):
        order = PRECISIONS if rep % 2 == 0 else PRECISIONS[::-1]
        for precision in order:
            times[precision].append(one_batch(precision))
        line = " | ".join(
            f"{p} {times[p][-1]:.3f} s ({args.batch / times[p][-1]:.2f} clips/s)"
            for p in PRECISIONS
        )
        print(f"rep {rep}: {line}", flush=True)

    flops = classifier_forward_flops(config, args.batch, args.classes)
    rows = args.batch * (config.num_patches + 2)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    results = {}
    for precision in PRECISIONS:
        median = statistics.median(times[precision])
        peak = matmul_peak_gflops(config.embed_dim, rows, dtypes[precision], args.device)
        achieved = flops / median / 1e9
        results[precision] = {
            "median_s": round(median, 4),
            "min_s": round(min(times[precision]), 4),
            "clips_per_s": round(args.batch / median, 3),
            "gflops_per_s": round(achieved, 1),
            "matmul_peak_gflops_per_s": round(peak, 1),
        }
        print(
            f"{precision}: {args.batch / median:.2f} clips/s; achieved {achieved:.1f} GFLOP/s; "
            f"measured {precision} matmul peak {peak:.1f} GFLOP/s; ratio {achieved / peak:.2f}"
        )
    speedup = results["fp32"]["median_s"] / results["bf16"]["median_s"]
    print(f"bf16 / fp32 throughput: {speedup:.2f}x ({config.num_patches + 2} tokens)")
    result = {
        **vars(args),
        # The common keys of the benchmarks describe fp32; each precision has its own entry.
        **{key: results["fp32"][key] for key in ("median_s", "min_s", "gflops_per_s")},
        **results,
        "bf16_speedup": round(speedup, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "tokens": config.num_patches + 2,
        "torch": torch.__version__,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
