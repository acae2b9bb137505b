"""Reproduces the quickstart's shipped checkpoint from the shipped audio.

    python benchmarks/quickstart_checkpoint.py

1. pretrains SSAST-tiny (128x2 frame patches, 128-frame inputs) with the
   small-scale protocol of ``benchmarks/ssl_gain.py`` (padding-aware MSPM on
   random crops, cosine schedule) for ``--steps`` optimiser steps on the train
   split of ``data/kws_sid_fsdd`` (1,200 clips; labels unused), the held-out
   curve on its valid split;
2. writes the encoder in the original SSAST layout, in half precision, to
   ``data/checkpoints/ssast_tiny_frame_fsdd.pth`` (loadable by
   :func:`ssast_sb.checkpoints.encoder_from_original` and by the original code),
   with ``ssast_tiny_frame_fsdd.json`` beside it: the command, the steps, the
   training minutes measured and the held-out curve.

A budget of steps, not minutes, makes the file the same on any machine and
under any load; the minutes it took are recorded. ``--encoder`` converts the
``pretrained_encoder.pt`` of a finished ``ssl_gain.py`` run with the same
arguments instead of pretraining again.

Authors
 * ssast-sb contributors
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from ssast_sb.checkpoints import export_original
from ssast_sb.encoder import EncoderConfig, SSASTEncoder
from ssast_sb.fileio import atomic_open, save_atomic

ROOT = Path(__file__).resolve().parents[1]
NAME = "ssast_tiny_frame_fsdd"
#: The shipped checkpoint's budget and input length.
STEPS, FRAMES = 3000, 128


def pretraining_command(steps, frames, work):
    """The ``ssl_gain.py`` command line that pretrains the encoder (no labeled task)."""
    return [
        sys.executable,
        str(ROOT / "benchmarks" / "ssl_gain.py"),
        "--data",
        str(ROOT / "data"),
        "--steps",
        str(steps),
        "--size",
        "tiny",
        "--shape",
        "frame",
        "--tdim",
        str(frames),
        "--tasks",
        "--output",
        str(work),
    ]


def half_precision_original(saved):
    """The original-layout, half-precision state dict of a saved ``ssl_gain`` encoder.

    Arguments
    ---------
    saved : dict
        ``config`` and ``state`` of ``ssl_gain.save_encoder``.

    Returns
    -------
    dict

    Example
    -------
    >>> cfg = EncoderConfig(embed_dim=16, depth=1, num_heads=2)
    >>> saved = {"config": vars(cfg), "state": SSASTEncoder(cfg).state_dict()}
    >>> state = half_precision_original(saved)
    >>> state["module.v.cls_token"].dtype, state["module.p_input_tdim"].dtype
    (torch.float16, torch.int64)
    """
    encoder = SSASTEncoder(EncoderConfig(**saved["config"]))
    encoder.load_state_dict(saved["state"])
    state = export_original(encoder)
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=STEPS, help="pretraining optimiser steps")
    parser.add_argument(
        "--tdim", type=int, default=FRAMES, help="input frames (the quickstart's target_frames)"
    )
    parser.add_argument(
        "--work", type=Path, default=ROOT / "results" / "quickstart_checkpoint", help="run folder"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "data" / "checkpoints")
    parser.add_argument("--encoder", type=Path, help="convert this ssl_gain encoder instead")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    command = pretraining_command(args.steps, args.tdim, args.work)
    encoder_path = args.encoder
    if encoder_path is None:
        subprocess.run(command, check=True)
        encoder_path = args.work / "pretrained_encoder.pt"
    saved = torch.load(encoder_path, map_location="cpu", weights_only=True)
    recorded = saved.get("args", {})
    for option, value in (("steps", args.steps), ("target_frames", args.tdim)):
        if recorded.get(option) not in (None, str(value)):
            raise SystemExit(f"{encoder_path} ran with {option} {recorded[option]}, not {value}")
    curve = saved.get("curve", [])
    target = args.output / f"{NAME}.pth"
    save_atomic(half_precision_original(saved), target)
    facts = {
        "checkpoint": f"data/checkpoints/{NAME}.pth",
        "command": "python benchmarks/quickstart_checkpoint.py"
        + ("" if args.steps == STEPS else f" --steps {args.steps}")
        + ("" if args.tdim == FRAMES else f" --tdim {args.tdim}"),
        "pretraining": " ".join(["python", *command[1:]]).replace(str(ROOT) + "/", ""),
        "steps": curve[-1]["step"] if curve else None,
        "input_frames": args.tdim,
        "training_minutes": round(curve[-1]["minutes"], 1) if curve else None,
        "held_out_curve": [
            {k: round(v, 4) for k, v in point.items() if k in ("minutes", "step", "acc", "mse")}
            for point in curve
        ],
        "pool": "data/kws_sid_fsdd, train split (1200 clips), labels unused",
        "precision": "float16 (trained in float32)",
    }
    with atomic_open(args.output / f"{NAME}.json") as stream:
        stream.write(json.dumps(facts, indent=2) + "\n")
    print(f"{target}: {facts['steps']} steps, {facts['training_minutes']} training minutes")


if __name__ == "__main__":
    main()
