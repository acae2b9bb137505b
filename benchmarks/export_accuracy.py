#!/usr/bin/env python3
"""Accuracy of the exported models on a real fine-tuned task: torch, ONNX fp32, ONNX int8.

    python benchmarks/export_accuracy.py --output benchmarks/results/export

Without ``--model``, it first fine-tunes SSAST-Tiny-Frame (128x2 patches at
stride 2, from scratch) on FSDD speaker identification
(``../shared/data/kws_sid_fsdd``: 6 speakers, 1,200/300/300 clips) with the
package's own command (about 4 minutes on 2 cores)::

    python recipes/custom/train.py hparams/custom.yaml --data <manifest> \\
        --columns "{path: path, label: speaker, split: split}" --model_size tiny \\
        --patch_shape frame --tstride 2 --number_of_epochs 10 --lr 5e-4 \\
        --warmup True --warmup_steps 150 --warmup_interval 1

then exports its inference folder with ``python -m ssast_sb.export --format onnx``
(fp32, and ``--quantize int8``), and classifies every test clip with each
backend through the same interface (``classify_file``:
:class:`ssast_sb.inference.SSASTAudioClassifier` for torch,
:class:`ssast_sb.onnx_inference.ONNXAudioClassifier` for ONNX). It prints, per
backend, the test accuracy, its change from torch in points, the share of
clips whose prediction equals torch's and the largest difference of
log-probabilities, beside the fine-tuning run's own test accuracy (its batched
evaluation: the same figure, since a clip's output does not depend on its batch),
and writes ``accuracy.md`` and ``accuracy.json`` to ``--output``
(the fine-tuning run, the exports and the logs go to ``<output>/work/``).

Authors
 * ssast-sb contributors
"""

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
FSDD = ROOT.parent / "shared" / "data" / "kws_sid_fsdd" / "manifest.csv"
BACKENDS = ("torch", "onnx", "onnx-int8")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="an inference folder (default: fine-tune)")
    parser.add_argument("--manifest", default=str(FSDD), help="path,<label>,split CSV")
    parser.add_argument("--label-column", default="speaker")
    parser.add_argument("--split", default="test")
    parser.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs")
    parser.add_argument("--lr", type=float, default=5e-4, help="fine-tuning learning rate")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default="benchmarks/results/export")
    return parser.parse_args(argv)


def run(command, log):
    """Runs a command of the package with its output in ``log``; returns minutes taken."""
    start = time.time()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    log.write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode:
        raise SystemExit(f"{' '.join(map(str, command))} failed; see {log}")
    return (time.time() - start) / 60


def finetune(args, output):
    """Fine-tunes the default model with the custom recipe; returns its inference folder."""
    folder = output / "work" / "finetune"
    command = [
        sys.executable, "recipes/custom/train.py", "hparams/custom.yaml",
        "--data", args.manifest,
        "--columns", f"{{path: path, label: {args.label_column}, split: split}}",
        "--model_size", "tiny", "--patch_shape", "frame", "--tstride", "2",
        "--number_of_epochs", str(args.epochs), "--lr", str(args.lr),
        "--warmup", "True", "--warmup_steps", "150", "--warmup_interval", "1",
        "--num_workers", "0", "--output_folder", str(folder),
    ]  # fmt: skip
    minutes = run(command, output / "work" / "finetune.log")
    print(f"fine-tuned in {minutes:.1f} min: {' '.join(command[1:])}", flush=True)
    return folder / "inference", " ".join(["python", *command[1:]]), minutes


def test_rows(args):
    """``(path, label)`` of the manifest's ``--split`` clips, paths from the manifest's folder."""
    manifest = Path(args.manifest)
    with open(manifest, encoding="utf-8-sig") as stream:
        rows = [row for row in csv.DictReader(stream) if row["split"] == args.split]
    return [(manifest.parent / row["path"], row[args.label_column]) for row in rows]


def classify_all(classifier, rows):
    """Log-probabilities ``(N, C)`` and labels of every clip, by ``classify_file``."""
    log_probs, labels = [], []
    for path, _ in rows:
        out_prob, _, _, text = classifier.classify_file(path)
        log_probs.append(out_prob[0])
        labels.append(text[0])
    return torch.stack(log_probs), labels


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    output = Path(args.output)
    (output / "work").mkdir(parents=True, exist_ok=True)
    model, command, minutes = Path(args.model) if args.model else None, None, None
    if model is None:
        model, command, minutes = finetune(args, output)
    exports = {name: output / "work" / name for name in ("onnx", "onnx-int8")}
    for backend, folder in exports.items():
        quantize = ["--quantize", "int8"] if backend == "onnx-int8" else []
        run(
            [sys.executable, "-m", "ssast_sb.export", str(model), "--format", "onnx",
             "--output", str(folder), *quantize],
            output / "work" / f"export-{backend}.log",
        )  # fmt: skip
    from ssast_sb.inference import SSASTAudioClassifier
    from ssast_sb.onnx_inference import ONNXAudioClassifier

    classifiers = {
        "torch": SSASTAudioClassifier.from_hparams(
            source=str(model.absolute()), savedir=str(output / "work" / "torch_savedir")
        ),
        **{name: ONNXAudioClassifier.from_folder(folder) for name, folder in exports.items()},
    }
    rows = test_rows(args)
    truth = [label for _, label in rows]
    outputs, results = {}, {}
    for name, classifier in classifiers.items():
        start = time.time()
        outputs[name] = classify_all(classifier, rows)
        seconds = time.time() - start
        predicted = outputs[name][1]
        accuracy = sum(p == t for p, t in zip(predicted, truth)) / len(truth)
        reference_probs, reference_labels = outputs["torch"]
        results[name] = {
            "accuracy": round(accuracy, 4),
            "change_points": round(
                100 * (accuracy - results.get("torch", {}).get("accuracy", accuracy)), 2
            ),
            "same_prediction_as_torch": round(
                sum(p == r for p, r in zip(predicted, reference_labels)) / len(truth), 4
            ),
            "max_abs_log_prob_diff": float((outputs[name][0] - reference_probs).abs().max()),
            "seconds": round(seconds, 1),
        }
        print(f"{name:>9}: {json.dumps(results[name])}", flush=True)
    in_run = None
    if command is not None:  # the fine-tuning run's own test accuracy, from its batched evaluation
        run_results = json.loads((model.parent / "results.json").read_text(encoding="utf-8"))
        in_run = round(run_results["test"]["acc"], 4)
        print(f"   in-run: test accuracy {in_run} (the fine-tuning run's batched test)", flush=True)
    summary = {
        "model": str(model),
        "in_run_test_accuracy": in_run,
        "finetune_command": command,
        "finetune_minutes": None if minutes is None else round(minutes, 1),
        "task": f"{Path(args.manifest).parent.name} {args.label_column}, {args.split} split",
        "clips": len(rows),
        "results": results,
        "command": "python benchmarks/export_accuracy.py " + " ".join(argv or sys.argv[1:]),
    }
    (output / "accuracy.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    lines = [
        f"# Exported models on {summary['task']} ({len(rows)} clips)",
        "",
        f"Command: `{summary['command']}`",
        "",
        "| backend | accuracy | change (points) | same prediction as torch "
        "| max abs log-prob diff |",
        "|---|---|---|---|---|",
    ]
    for name, entry in results.items():
        lines.append(
            f"| {name} | {entry['accuracy']:.4f} | {entry['change_points']:+.2f} | "
            f"{entry['same_prediction_as_torch']:.4f} | {entry['max_abs_log_prob_diff']:.2e} |"
        )
    if in_run is not None:
        lines += [
            "",
            f"The fine-tuning run's own test accuracy (its batched evaluation, in "
            f"`{model.parent}/results.json`): {in_run:.4f}.",
        ]
    (output / "accuracy.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
