"""How far mixed precision moves the MSPM losses, gradients and embeddings from fp32.

One SSAST pretraining model (the faithful joint step), one batch of real clips
(by default the ESC-10 clips of ``../shared/data``, 5 s each, padded or cut to
``--target-frames`` frames as the original loader does) and one fixed pair of masks.
The step runs once in fp32 and once under ``torch.autocast`` for every
``--precision``; the losses are computed in fp32 in both (SpeechBrain's
``--precision bf16|fp16`` wraps the same autocast around ``compute_forward``).

Printed per precision:

* the relative deviation of ``loss``, ``nce`` and ``mse`` from fp32, and the
  MPC accuracy of both;
* the gradients: relative L2 error over all parameters, ``||g - g32|| / ||g32||``,
  and their cosine similarity;
* the mean-pooled encoder output of the unmasked clips (what a classifier or
  the embedding interface reads): relative L2 error and cosine.

The last line is a JSON object with every figure and the arguments.

Example::

    python benchmarks/precision_deviation.py --size base --precision bf16 fp16
"""

import argparse
import csv
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from ssast_sb.data.audio import load_audio
from ssast_sb.encoder import EncoderConfig, pool_tokens
from ssast_sb.frontend import SAMPLE_RATE, SSASTFbank

DEFAULT_AUDIO = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "audio_events_esc10"
)

if __package__ in (None, ""):  # run as a script: the repository root makes `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import build_model, default_num_masked  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="tiny", choices=["tiny", "small", "base"])
    parser.add_argument("--shape", default="patch", choices=["patch", "frame"])
    parser.add_argument("--target-frames", "--tdim", dest="target_frames", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--precision", nargs="+", default=["bf16"], choices=sorted(DTYPES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--audio",
        type=Path,
        default=DEFAULT_AUDIO,
        help="a folder with manifest.csv (path column) or of audio files",
    )
    return parser.parse_args(argv)


def clip_paths(folder, count):
    """The first ``count`` clips of a dataset folder (its manifest) or of a folder of files."""
    manifest = folder / "manifest.csv"
    if manifest.is_file():
        with open(manifest, newline="") as handle:
            paths = [folder / row["path"] for row in csv.DictReader(handle)]
    else:
        paths = sorted(p for p in folder.rglob("*") if p.suffix in (".wav", ".flac", ".ogg"))
    if len(paths) < count:
        raise ValueError(f"{folder} holds {len(paths)} clips; {count} are needed")
    # Spread over the folder rather than the first speaker only.
    return [paths[i * len(paths) // count] for i in range(count)]


def real_batch(folder, count, tdim):
    """``(count, tdim, 128)`` normalised fbank of real clips, as the original's loader."""
    frontend = SSASTFbank(target_frames=tdim)
    clips = [load_audio(str(path), SAMPLE_RATE) for path in clip_paths(folder, count)]
    return torch.cat([frontend(clip.unsqueeze(0)) for clip in clips])


def gradients(model):
    """All parameter gradients as one flat fp32 vector (zeros where a parameter got none)."""
    return torch.cat(
        [
            (p.grad if p.grad is not None else torch.zeros_like(p)).float().flatten()
            for p in model.parameters()
        ]
    )


def run_step(model, spectrogram, masks, device, dtype=None):
    """Losses, gradients and pooled embeddings of one step, under autocast when ``dtype``."""
    model.zero_grad(set_to_none=True)
    autocast = torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype is not None)
    with autocast:
        out = model(spectrogram, *masks)
    out["loss"].backward()
    with torch.no_grad(), autocast:
        embedding = pool_tokens(model.encoder(spectrogram), "mean").float()
    figures = {key: float(out[key].detach()) for key in ("loss", "nce", "mse", "acc")}
    return figures, gradients(model), embedding


def compare(reference, other):
    """Relative L2 error and cosine similarity of two tensors (in float64)."""
    reference, other = reference.double().flatten(), other.double().flatten()
    error = float((other - reference).norm() / reference.norm().clamp_min(1e-30))
    cosine = float(F.cosine_similarity(other, reference, dim=0))
    return error, cosine


def measure(args):
    """Every figure of the run, keyed by precision (``fp32`` holds the reference)."""
    torch.manual_seed(0)
    config = EncoderConfig.from_names(args.size, args.shape, input_tdim=args.target_frames)
    model = build_model("faithful", config, default_num_masked(config)).to(args.device)
    spectrogram = real_batch(args.audio, args.batch, args.target_frames).to(args.device)
    generator = torch.Generator(device=args.device).manual_seed(0)
    masks = model.draw_masks(args.batch, generator, args.device)
    figures, grads32, emb32 = run_step(model, spectrogram, masks, args.device)
    results = {"fp32": figures}
    for name in args.precision:
        figures, grads, emb = run_step(model, spectrogram, masks, args.device, DTYPES[name])
        for key in ("loss", "nce", "mse"):
            reference = results["fp32"][key]
            figures[f"{key}_rel_dev"] = abs(figures[key] - reference) / abs(reference)
        figures["grad_rel_err"], figures["grad_cosine"] = compare(grads32, grads)
        figures["embedding_rel_err"], figures["embedding_cosine"] = compare(emb32, emb)
        results[name] = figures
    return results


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    results = measure(args)
    reference = results["fp32"]
    print(
        f"fp32: loss {reference['loss']:.6f} nce {reference['nce']:.6f} "
        f"mse {reference['mse']:.6f} acc {reference['acc']:.4f}"
    )
    for name in args.precision:
        r = results[name]
        print(
            f"{name}: loss {r['loss']:.6f} ({100 * r['loss_rel_dev']:.3f}% from fp32), "
            f"nce {100 * r['nce_rel_dev']:.3f}%, mse {100 * r['mse_rel_dev']:.3f}%, "
            f"acc {r['acc']:.4f}; gradients rel. error {r['grad_rel_err']:.4f} "
            f"cosine {r['grad_cosine']:.5f}; pooled embedding rel. error "
            f"{r['embedding_rel_err']:.4f} cosine {r['embedding_cosine']:.5f}"
        )
    print(json.dumps({"results": results, "args": {k: str(v) for k, v in vars(args).items()}}))
    return results


if __name__ == "__main__":
    main()
