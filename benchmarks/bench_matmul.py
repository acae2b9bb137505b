"""The dense-matmul rates that bound every other benchmark here, per precision.

Prints the CPU's relevant instruction-set features (as torch sees them) and the
measured rate of a ViT-shaped matmul ``(rows, D) @ (D, 4D)`` in fp32, bf16 and
fp16, and the ratios of the low precisions to fp32. On a CPU without AMX tiles,
bf16 GEMMs run through AVX512-BF16 dot products whose throughput can be below
fp32 FMA throughput: then ``--precision bf16`` cannot speed anything up there.

Example::

    python benchmarks/bench_matmul.py --width 768 --rows 2048 --threads 2
"""

import argparse
import json
import time

import torch


def matmul_rate(rows, width, dtype, device="cpu", reps=10):
    """Best-of-``reps`` GFLOP/s of ``(rows, width) @ (width, 4 * width)`` in ``dtype``."""
    a = torch.randn(rows, width, device=device).to(dtype)
    b = torch.randn(width, 4 * width, device=device).to(dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(reps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * rows * width * 4 * width / best / 1e9


def cpu_features():
    """The instruction-set features that decide low-precision GEMM speed."""
    capability = torch._C._cpu._get_cpu_capability()
    keys = ("cpu_name", "avx512_f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")
    return {key: capability.get(key) for key in keys}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rates = {
        name: round(matmul_rate(args.rows, args.width, dtype, args.device), 1)
        for name, dtype in (
            ("fp32", torch.float32),
            ("bf16", torch.bfloat16),
            ("fp16", torch.float16),
        )
    }
    features = cpu_features() if args.device == "cpu" else {"device": args.device}
    print(f"features: {features}")
    for name, rate in rates.items():
        print(f"{name}: {rate:.1f} GFLOP/s ({rate / rates['fp32']:.2f}x fp32)")
    result = {**vars(args), **features, "gflops_per_s": rates, "torch": torch.__version__}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
