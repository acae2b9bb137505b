"""Times one joint MSPM pretraining step (forward + backward, no optimiser step).

The step is the one the original trainer times in SSAST_SPEC.md section g:
a discriminative and a generative pass with independent masks, ``nce + 10 *
mse``, backward. Prints one line per repetition, the machine's measured
dense-matmul rate for comparison, and as its last line a JSON object with
``median_s``, ``min_s``, ``peak_rss_mb``, ``gflops_per_s`` and the arguments.

Example::

    python benchmarks/bench_pretrain_step.py --size tiny --shape patch --tdim 1024 \
        --batch 2 --threads 2 --reps 7 --mode faithful --precision fp32
"""

import argparse
import contextlib
import json
import resource
import statistics
import time

import torch

from ssast_sb.encoder import EncoderConfig, SSASTEncoder
from ssast_sb.models import SSASTPretrainModel


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="tiny", choices=["tiny", "small", "base"])
    parser.add_argument("--shape", default="patch", choices=["patch", "frame"])
    parser.add_argument("--tdim", type=int, default=1024, help="input frames")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--num-masked",
        type=int,
        default=None,
        help="masked patches (default: 400 of 512, scaled to the grid)",
    )
    parser.add_argument("--mode", default="faithful", choices=["faithful"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def step_flops(config, batch, num_passes=2):
    """Approximate FLOPs of forward + backward (3x the forward matmul FLOPs)."""
    tokens = config.num_patches + 2
    width = config.embed_dim
    per_token_macs = 12 * width * width + 2 * tokens * width  # qkv+proj+mlp, scores+mix
    encoder = config.depth * tokens * per_token_macs
    embed = config.num_patches * width * config.fshape * config.tshape
    return 3 * 2 * (encoder + embed) * batch * num_passes


def matmul_peak_gflops(width, rows, dtype, device, reps=5):
    """Measured rate of a dense ViT-shaped matmul ``(rows, D) @ (D, 4D)``."""
    a = torch.randn(rows, width, device=device, dtype=dtype)
    b = torch.randn(width, 4 * width, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * rows * width * 4 * width / best / 1e9


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = EncoderConfig.from_names(args.size, args.shape, input_tdim=args.tdim)
    num_masked = args.num_masked or max(1, round(400 * config.num_patches / 512))
    model = SSASTPretrainModel(SSASTEncoder(config), num_masked=num_masked).to(args.device)
    spectrogram = torch.randn(args.batch, args.tdim, 128, device=args.device)
    generator = torch.Generator(device=args.device).manual_seed(0)
    device_type = torch.device(args.device).type
    autocast = (
        torch.autocast(device_type, dtype=torch.bfloat16)
        if args.precision == "bf16"
        else contextlib.nullcontext()
    )

    def one_step():
        masks = model.draw_masks(args.batch, generator, args.device)
        with autocast:
            loss = model(spectrogram, *masks)["loss"]
        loss.backward()
        model.zero_grad(set_to_none=True)
        _sync(args.device)

    for _ in range(args.warmup):
        one_step()
    times = []
    for rep in range(args.reps):
        start = time.perf_counter()
        one_step()
        times.append(time.perf_counter() - start)
        print(f"rep {rep}: {times[-1]:.3f} s", flush=True)

    flops = step_flops(config, args.batch)
    median = statistics.median(times)
    peak_dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    peak = matmul_peak_gflops(
        config.embed_dim, 2 * args.batch * (config.num_patches + 2), peak_dtype, args.device
    )
    achieved = flops / median / 1e9
    print(
        f"achieved {achieved:.1f} GFLOP/s; measured {args.precision} matmul peak "
        f"{peak:.1f} GFLOP/s; ratio {achieved / peak:.2f}"
    )
    result = {
        **vars(args),
        "median_s": round(median, 4),
        "min_s": round(min(times), 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "gflops_per_s": round(achieved, 1),
        "matmul_peak_gflops_per_s": round(peak, 1),
        "num_masked": num_masked,
        "torch": torch.__version__,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
