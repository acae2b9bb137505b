"""CPU inference throughput per backend, with Hugging Face's AST timed in the same run.

Backends: ``torch`` (our ``SSASTClassifier``, fp32, ``torch.inference_mode``),
``torch-bf16`` (the same under ``torch.autocast`` bfloat16), ``onnx`` (the
``python -m ssast_sb.export --format onnx`` graph in ONNX Runtime, fp32),
``onnx-int8`` (the same with ``--quantize int8``) and ``hf`` (the
``--format hf`` export loaded by ``transformers.ASTForAudioClassification``
with ``attn_implementation="sdpa"``, fp32: the reference).

Configurations: ``audioset`` (SSAST-Base, 16x16 patches at stride 10, 1024
frames = 10.24 s, 1214 tokens, 527 classes, cls pooling so that Hugging Face
runs the same model) and ``speech`` (SSAST-Base-Frame, 128x2 frames at stride
1, 1 s = 100 frames, 101 tokens, 35 classes). ``ASTConfig`` cannot express a
frame model, so the ``hf`` row of ``speech`` is Hugging Face's nearest model:
SSAST-Base patches at stride 10 over the same second (110 tokens).

Every repetition times each backend once on the same random features (the
order rotating between repetitions, so all see the same machine load); the
figures are medians. Clips per second and the real-time factor (compute
seconds per second of audio) are printed per backend, batch size and
configuration, and as the last line a JSON object whose ``clips_per_s`` and
``ratio_vs_hf`` give, per backend, the AudioSet configuration at the largest
batch (``runs`` holds every configuration and batch size).

Example::

    python benchmarks/bench_inference.py --threads 2 --reps 3
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: the repository root makes `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import autocast_context, peak_rss_mb  # noqa: E402
from ssast_sb.encoder import EncoderConfig, SSASTEncoder  # noqa: E402
from ssast_sb.export.source import ExportSource  # noqa: E402
from ssast_sb.models import SSASTClassifier  # noqa: E402

BACKENDS = ("torch", "torch-bf16", "onnx", "onnx-int8", "hf")
#: name -> (patch shape, fstride, tstride, frames, classes) of each configuration.
CONFIGS = {
    "audioset": ("patch", 10, 10, 1024, 527),
    "speech": ("frame", 128, 1, 100, 35),
}
#: Hugging Face's model for a configuration whose model it cannot express.
HF_STAND_IN = {"speech": ("patch", 10, 10, 100, 35)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--size", choices=["tiny", "small", "base"], default="base")
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--output", default=None, help="folder for inference.json and the table inference.md"
    )
    return parser.parse_args(argv)


def results_table(result, command):
    """The runs of ``result`` as a Markdown table (clips/s, RTF and ratio to Hugging Face)."""
    backends = list(result["clips_per_s"])
    lines = [
        f"Command: `{command}` ({result['threads']} threads, median of {result['reps']} "
        f"repetitions; torch {result['torch']})",
        "",
        "| configuration | batch | " + " | ".join(backends) + " |",
        "|---|---|" + "---|" * len(backends),
    ]
    for entry in result["runs"].values():
        cells = []
        for backend in backends:
            cell = f"{entry['clips_per_s'][backend]:.2f} clips/s, RTF {entry['rtf'][backend]:.4f}"
            ratio = entry.get("ratio_vs_hf", {}).get(backend)
            cells.append(cell + (f", **{ratio:.2f}x**" if ratio is not None else ""))
        lines.append(f"| {entry['config']} | {entry['batch']} | " + " | ".join(cells) + " |")
    notes = {note for entry in result["runs"].values() for key, note in entry["notes"].items()
             if key == "hf"}  # fmt: skip
    lines += ["", *(f"hf: {note}." for note in sorted(notes))]
    return "\n".join(lines) + "\n"


def build_classifier(size, shape, fstride, tstride, frames, classes):
    """A randomly initialised cls-pooled classifier (timing does not depend on the weights)."""
    config = EncoderConfig.from_names(
        size, shape, fstride=fstride, tstride=tstride, input_tdim=frames
    )
    model = SSASTClassifier(SSASTEncoder(config), classes, pooling="cls").eval()
    labels = [f"class_{index}" for index in range(classes)]
    return model, ExportSource("benchmark", model.encoder, model, labels=labels)


def backend_runners(backends, name, size, folder, threads):
    """``{backend: callable(features, num_frames)}`` for one configuration."""
    shape, fstride, tstride, frames, classes = CONFIGS[name]
    model, source = build_classifier(size, shape, fstride, tstride, frames, classes)
    runners, notes = {}, {}
    if "torch" in backends:
        runners["torch"] = lambda x, n: model(x)
    if "torch-bf16" in backends:

        def bf16(x, n):
            with autocast_context("bf16", "cpu"):
                return model(x)

        runners["torch-bf16"] = bf16
    if {"onnx", "onnx-int8"} & set(backends):
        from ssast_sb.export.onnx import export_onnx
        from ssast_sb.onnx_inference import ONNXModel

        for backend, quantize in (("onnx", None), ("onnx-int8", "int8")):
            if backend in backends:
                out = folder / f"{name}-{backend}"
                export_onnx(source, out, quantize=quantize)
                session = ONNXModel(out / "model.onnx", threads)
                runners[backend] = lambda x, n, session=session: session(x, n)["logits"]
    if "hf" in backends:
        from transformers import ASTForAudioClassification

        from ssast_sb.export.hf import export_hf

        hf_source = source
        if name in HF_STAND_IN:
            _, hf_source = build_classifier(size, *HF_STAND_IN[name])
            notes["hf"] = "Hugging Face cannot express a frame model: SSAST patches at stride 10"
        out = folder / f"{name}-hf"
        export_hf(hf_source, out)
        hf = ASTForAudioClassification.from_pretrained(out, attn_implementation="sdpa").eval()
        notes["hf_attention"] = hf.config._attn_implementation
        runners["hf"] = lambda x, n: hf(input_values=x).logits
    return runners, frames, notes


def time_backends(runners, batch, frames, reps, warmup):
    """Median seconds per batch of each runner, the order rotating between repetitions."""
    features = torch.randn(batch, frames, 128)
    num_frames = torch.full((batch,), frames)
    names = list(runners)
    times = {name: [] for name in names}
    with torch.inference_mode():
        for _ in range(warmup):
            for name in names:
                runners[name](features, num_frames)
        for rep in range(reps):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for name in order:
                start = time.perf_counter()
                runners[name](features, num_frames)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    runs = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.configs:
            runners, frames, notes = backend_runners(
                args.backend, name, args.size, Path(scratch), args.threads
            )
            clip_s = frames / 100
            for batch in args.batch:
                medians = time_backends(runners, batch, frames, args.reps, args.warmup)
                entry = {
                    "config": name,
                    "batch": batch,
                    "clip_s": clip_s,
                    "median_s": {k: round(v, 4) for k, v in medians.items()},
                    "clips_per_s": {k: round(batch / v, 3) for k, v in medians.items()},
                    "rtf": {k: round(v / (batch * clip_s), 4) for k, v in medians.items()},
                    "notes": notes,
                }
                if "hf" in medians:
                    entry["ratio_vs_hf"] = {
                        k: round(medians["hf"] / v, 3) for k, v in medians.items()
                    }
                runs[f"{name}/batch_{batch}"] = entry
                for backend in medians:
                    ratio = entry.get("ratio_vs_hf", {}).get(backend)
                    print(
                        f"{name} batch {batch} {backend:>10}: "
                        f"{entry['clips_per_s'][backend]:8.3f} clips/s, "
                        f"RTF {entry['rtf'][backend]:.4f}"
                        + (f", {ratio:.2f}x Hugging Face" if ratio is not None else ""),
                        flush=True,
                    )
    first = "audioset" if "audioset" in args.configs else args.configs[0]
    headline = runs[f"{first}/batch_{max(args.batch)}"]
    result = {
        "headline": f"{headline['config']}/batch_{headline['batch']}",
        "clips_per_s": headline["clips_per_s"],
        "ratio_vs_hf": headline.get("ratio_vs_hf", {}),
        "runs": runs,
        "size": args.size,
        "threads": args.threads,
        "reps": args.reps,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "torch": torch.__version__,
    }
    if args.output:
        output = Path(args.output)
        output.mkdir(parents=True, exist_ok=True)
        command = "python benchmarks/bench_inference.py " + " ".join(argv or sys.argv[1:])
        (output / "inference.json").write_text(json.dumps(result, indent=2) + "\n")
        (output / "inference.md").write_text(results_table(result, command))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
