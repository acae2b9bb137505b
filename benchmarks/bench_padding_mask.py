"""What the padding mask costs or saves: variable-length batches of speech-length clips.

In variable-length mode a batch is padded to its longest clip, and every token
attends only to its own clip's tokens (``ssast_sb/batch_padding.py``). This
times, on the same batches of real clip lengths (``../shared/data``: the KLettres
recordings, spoken letters and words of 0.2 to 7.6 s, cut at the input length),
the encoder's forward pass:

* ``unmasked``: padded to the longest clip, every token attends to the padding
  (the behaviour before the mask: outputs depend on the batch);
* ``masked``: the same batches with the padding mask (the default);
* ``sorted``: the clips sorted by length before batching, with the mask: less
  padding, and a batch of equal lengths needs no mask at all.

Every repetition times the three on the same clips (the order rotating between
repetitions); the figures are medians, and the last line is a JSON object with
the ratios ``masked / unmasked`` and ``sorted / unmasked``.

Example::

    python benchmarks/bench_padding_mask.py --size base --shape frame --threads 2
"""

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: the repository root makes `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssast_sb.encoder import EncoderConfig, SSASTEncoder  # noqa: E402
from ssast_sb.models import SSASTClassifier  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
#: (fstride, tstride) of the fine-tuning grids.
STRIDES = {"patch": (10, 10), "frame": (128, 1)}
VARIANTS = ("unmasked", "masked", "sorted")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="base", choices=["tiny", "small", "base"])
    parser.add_argument("--shape", default="frame", choices=list(STRIDES))
    parser.add_argument("--target-frames", type=int, default=600, help="input length (6 s)")
    parser.add_argument("--corpus", default="pretrain_klettres", help="a task of ../shared/data")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=4, help="batches per repetition")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def clip_frames(corpus, target_frames, count, seed):
    """Frames of ``count`` clips of the corpus (its manifest's durations), cut at the input."""
    with open(DATA / corpus / "manifest.csv", newline="", encoding="utf-8") as stream:
        durations = [float(row["duration"]) for row in csv.DictReader(stream)]
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randint(len(durations), (count,), generator=generator).tolist()
    return [min(target_frames, 1 + int((durations[i] * 16000 - 400) // 160)) for i in chosen]


def batches_of(frames, batch_size, sort):
    """Lists of clip lengths: in the drawn order, or sorted by length (less padding)."""
    order = sorted(frames) if sort else list(frames)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@torch.inference_mode()
def time_batches(model, batches, masked):
    """Seconds of the forward passes of ``batches`` (random features of those lengths)."""
    inputs = []
    for lengths in batches:
        features = torch.randn(len(lengths), max(lengths), 128)
        inputs.append((features, torch.tensor(lengths) if masked else None))
    start = time.perf_counter()
    for features, num_frames in inputs:
        model(features, num_frames)
    return time.perf_counter() - start


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    fstride, tstride = STRIDES[args.shape]
    config = EncoderConfig.from_names(
        args.size,
        args.shape,
        fstride=fstride,
        tstride=tstride,
        input_tdim=args.target_frames,
        variable_length=True,
    )
    model = SSASTClassifier(SSASTEncoder(config), 7).eval()
    frames = clip_frames(args.corpus, args.target_frames, args.batch_size * args.batches, args.seed)
    plans = {
        "unmasked": (batches_of(frames, args.batch_size, False), False),
        "masked": (batches_of(frames, args.batch_size, False), True),
        "sorted": (batches_of(frames, args.batch_size, True), True),
    }
    time_batches(model, plans["masked"][0][:1], True)  # warm-up
    seconds = {name: [] for name in VARIANTS}
    for rep in range(args.reps):
        for name in VARIANTS[rep % 3 :] + VARIANTS[: rep % 3]:
            seconds[name].append(time_batches(model, *plans[name]))
    median = {name: statistics.median(values) for name, values in seconds.items()}
    padded = {
        name: sum(len(b) * max(b) for b in plans[name][0]) / sum(frames) - 1 for name in VARIANTS
    }
    clips = len(frames)
    print(
        f"SSAST-{args.size} {args.shape}, {args.target_frames}-frame input, {clips} {args.corpus}"
        f" clips ({min(frames)}-{max(frames)} frames), batches of {args.batch_size}, "
        f"{args.threads} threads, median of {args.reps}"
    )
    print("| batches | padding (frames beyond the clips) | ms per clip | vs unmasked |")
    print("|---|---|---|---|")
    for name in VARIANTS:
        ratio = median[name] / median["unmasked"]
        print(
            f"| {name} | {100 * padded[name]:.0f}% | {1000 * median[name] / clips:.1f} | "
            f"{ratio:.2f}x |"
        )
    summary = {
        "config": vars(args),
        "ms_per_clip": {name: round(1000 * median[name] / clips, 2) for name in VARIANTS},
        "masked_vs_unmasked": round(median["masked"] / median["unmasked"], 3),
        "sorted_vs_unmasked": round(median["sorted"] / median["unmasked"], 3),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
