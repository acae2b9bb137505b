#!/usr/bin/env python3
"""Your own data, the way a user runs it: the README figures of "Your own data".

    python benchmarks/own_data.py --output benchmarks/results/own_data

From the real audio of ``../shared/data``, with the package's commands only:

1. EmoDB laid out as one folder per emotion (``<output>/emodb/<emotion>/*.flac``), fine-tuned
   with ``recipes/custom/train.py hparams/custom.yaml --data <output>/emodb`` (SSAST-tiny,
   frame patches) from scratch;
2. a short pretraining with ``recipes/pretrain/train.py hparams/pretrain_small.yaml`` on the
   KLettres and FSDD pools, and the same fine-tuning from its ``pretrained/`` folder;
3. FSDD speaker verification from that frozen checkpoint and from the same model at its random
   initialisation (``python -m ssast_sb.verify --model ... --layer all``), on every pair of
   FSDD's 300 test clips (the pretraining pool holds FSDD's training clips only).

It prints a table per part and writes ``results.md`` and ``results.json`` to ``--output``. The
folder layout gives no speakers, so the custom recipe splits EmoDB's clips at random (stratified
by emotion): its test speakers are also training speakers.

Authors
 * ssast-sb contributors
"""

import argparse
import csv
import itertools
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ssast_sb.reports import read_train_log

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def run(command, log):
    """Runs a command of the package, its output in ``log``; returns (stdout, minutes)."""
    start = time.time()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    log.write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode:
        raise SystemExit(f"{' '.join(map(str, command))} failed; see {log}")
    return result.stdout + result.stderr, (time.time() - start) / 60


def shared_rows(task):
    """Rows of ``shared/data/<task>/manifest.csv`` with absolute paths."""
    folder = SHARED / task
    with open(folder / "manifest.csv", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    for row in rows:
        row["path"] = folder / row["path"]
    return rows


def emodb_class_folders(folder):
    """EmoDB as ``folder/<emotion>/<clip>.flac``."""
    for row in shared_rows("emotion_emodb"):
        destination = folder / row["label"]
        destination.mkdir(parents=True, exist_ok=True)
        shutil.copy(row["path"], destination / row["path"].name)
    return folder


def finetune(args, data, output, pretrained=None):
    """One custom-recipe run; returns test accuracy and minutes."""
    command = [sys.executable, "recipes/custom/train.py", "hparams/custom.yaml"]
    command += ["--data", str(data), "--output_folder", str(output), "--noprogressbar"]
    command += ["--number_of_epochs", str(args.epochs), "--lr", str(args.lr)]
    command += ["--num_workers", "0", "--target_frames", str(args.target_frames)]
    if pretrained:
        command += ["--pretrained_path", str(pretrained)]
    else:
        command += ["--model_size", "tiny", "--patch_shape", "frame"]
    _, minutes = run(command, output.parent / f"{output.name}.log")
    results = json.loads((output / "results.json").read_text(encoding="utf-8"))
    return {"accuracy": results["metrics"]["accuracy"], "minutes": round(minutes, 1)}


def pretrain(args, output):
    """A short run of the small-scale pretraining recipe; returns its export folder."""
    # The FSDD training clips join the pool; its test clips stay unseen for verification.
    pools = {"valid": output / "valid_clips", "train": output / "fsdd_train_clips"}
    for split, folder in pools.items():
        folder.mkdir(parents=True, exist_ok=True)
        rows = [row for row in shared_rows("kws_sid_fsdd") if row["split"] == split]
        for row in rows[::10] if split == "valid" else rows:
            shutil.copy(row["path"], folder / row["path"].name)
    valid = pools["valid"]
    sources = [SHARED / "pretrain_klettres" / "audio", pools["train"]]
    command = [sys.executable, "recipes/pretrain/train.py", "hparams/pretrain_small.yaml"]
    command += ["--extra_sources", f"[{sources[0]}, {sources[1]}]", "--valid_source", str(valid)]
    command += ["--output_folder", str(output / "run"), "--noprogressbar"]
    command += ["--number_of_epochs", str(args.pretrain_epochs), "--num_workers", "0"]
    _, minutes = run(command, output / "pretrain.log")
    log = read_train_log(output / "run" / "train_log.txt")
    accuracies = [round(row["valid acc"], 3) for row in log if "valid acc" in row]
    return output / "run" / "pretrained", round(minutes, 1), accuracies


def fsdd_trials(folder, per_speaker=50, seed=0):
    """Same/different-speaker trials: every pair of ``per_speaker`` FSDD test clips per speaker."""
    rows = [row for row in shared_rows("kws_sid_fsdd") if row["split"] == "test"]
    by_speaker = {}
    for row in rows:
        by_speaker.setdefault(row["speaker"], []).append(row)
    chosen = []
    for speaker in sorted(by_speaker):
        chosen += random.Random(seed).sample(by_speaker[speaker], per_speaker)
    data = folder / "fsdd_test"
    data.mkdir(parents=True, exist_ok=True)
    for row in chosen:
        shutil.copy(row["path"], data / row["path"].name)
    lines = [
        f"{int(a['speaker'] == b['speaker'])} {a['path'].name} {b['path'].name}"
        for a, b in itertools.combinations(chosen, 2)
    ]
    (folder / "trials.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "trials.txt", data, len(lines)


def verify_layers(model, trials, data, log):
    """EER and normalised minDCF of every block (one ``python -m ssast_sb.verify --layer all``)."""
    command = [sys.executable, "-m", "ssast_sb.verify", "--model", str(model)]
    command += ["--trials", str(trials), "--data", str(data), "--layer", "all"]
    text, _ = run(command, log)
    pattern = r"layer (\d+): .*?EER ([\d.]+)%, .*?normalised\) ([\d.]+)"
    return [
        {"layer": int(layer), "EER_percent": float(eer), "minDCF": float(dcf)}
        for layer, eer, dcf in re.findall(pattern, text)
    ]


def random_init_checkpoint(folder):
    """The original code's tiny frame model at its random initialisation, as a released .pth."""
    import torch

    path = folder / "SSAST-Tiny-Frame-random-init.pth"
    dump = torch.load(SHARED.parent / "reference" / "tiny_frame_seed0.pt", weights_only=False)
    torch.save(dump["pretrain_state_dict"], path)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default="benchmarks/results/own_data")
    parser.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--target-frames", type=int, default=128)
    parser.add_argument("--pretrain-epochs", type=int, default=4, help="of 200 steps each")
    args = parser.parse_args(argv)
    output = Path(args.output).absolute()
    work = output / "work"  # copies of the audio, logs and runs (not in the repository)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)

    data = emodb_class_folders(work / "emodb")
    scratch = finetune(args, data, work / "emodb_scratch")
    print(f"EmoDB from scratch: accuracy {scratch['accuracy']:.3f} in {scratch['minutes']} min")
    pretrained, pretrain_minutes, valid_acc = pretrain(args, work / "pretrain")
    print(f"Pretraining: {pretrain_minutes} min, valid MPC accuracy {valid_acc}")
    tuned = finetune(args, data, work / "emodb_pretrained", pretrained)
    print(f"EmoDB from pretraining: accuracy {tuned['accuracy']:.3f} in {tuned['minutes']} min")
    trials, clips, count = fsdd_trials(work / "verify")
    verification = {
        "pretrained": verify_layers(pretrained, trials, clips, work / "verify" / "pretrained.log"),
        "random_init": verify_layers(
            random_init_checkpoint(work / "verify"), trials, clips, work / "verify" / "random.log"
        ),
    }

    results = {
        "emodb": {"scratch": scratch, "pretrained": tuned, "epochs": args.epochs},
        "pretraining": {"minutes": pretrain_minutes, "valid_mpc_accuracy": valid_acc},
        "verification": {"trials": count, "layers": verification},
        "command": " ".join(["python benchmarks/own_data.py", *(argv or sys.argv[1:])]),
    }
    lines = [
        "| EmoDB, one folder per emotion (7 classes, chance 0.143) | test accuracy | minutes |",
        "|---|---|---|",
        f"| from scratch | {scratch['accuracy']:.3f} | {scratch['minutes']} |",
        f"| from our pretraining ({pretrain_minutes} min) | {tuned['accuracy']:.3f} | "
        f"{tuned['minutes']} |",
        "",
        f"| FSDD speaker verification ({count} trials), frozen encoder, EER % (minDCF) "
        "| our pretraining | random init |",
        "|---|---|---|",
        *[
            f"| layer {ours['layer']} | {ours['EER_percent']:.2f} ({ours['minDCF']:.3f}) | "
            f"{base['EER_percent']:.2f} ({base['minDCF']:.3f}) |"
            for ours, base in zip(verification["pretrained"], verification["random_init"])
        ],
    ]
    table = "\n".join(lines)
    print(table)
    (output / "results.md").write_text(table + "\n", encoding="utf-8")
    (output / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
