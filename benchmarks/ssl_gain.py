"""Does MSPM pretraining pay off at small scale? Pretrained vs scratch twins, measured.

Protocol:

1. **Pretrain** an SSAST encoder on an unlabeled pool for a budget of CPU
   minutes (by default the audio of every ``train``/``unlabeled`` split of
   ``../shared/data``, labels unused), recording the held-out curve (MPC
   accuracy and MSE against minutes) on the audio of the ``valid`` splits.
2. **Fine-tune** twins, one from the pretrained encoder and one from a random
   initialisation, with the same settings, on ``k`` labeled clips per class
   (``--shots``, ``all`` = every training clip), for several seeds; test accuracy.
3. **Linear probe**: logistic regression on the frozen encoder's layers,
   mean-pooled over the patches that hold real audio (``--probe-pooling all``:
   every patch, padding included, as the original's ``ft_avgtok``), layer and
   L2 chosen on the valid split, pretrained vs random encoder, at the same
   ``k``. ``--no-finetune`` runs the probes alone (minutes, not an hour).

Prints a table (mean and standard deviation over seeds, gain in points and
relative gain) and writes ``results.md``, ``results.json``, ``curve.csv`` and
``curve.png`` to ``--output``.

The small-scale defaults depart from the original pretraining on purpose
(README, "Small-scale pretraining"): padding-aware masking and losses, random
crops of ``--target-frames`` frames, a cosine schedule over the budget.

Example (the README's table)::

    python benchmarks/ssl_gain.py --minutes 30 --seeds 0 1 2

Quick look (a few minutes)::

    python benchmarks/ssl_gain.py --minutes 2 --seeds 0 --shots 10 --tasks fsdd_speakers
"""

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from ssast_sb.encoder import EncoderConfig, SSASTEncoder
from ssast_sb.fileio import atomic_open, save_atomic
from ssast_sb.mae import MAEPretrainModel
from ssast_sb.models import SSASTClassifier, SSASTPretrainModel, adapt_encoder

if __package__ in (None, ""):  # run as a script: the repository root makes `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.smallscale.budget_pretrain import pretrain_for_minutes  # noqa: E402
from benchmarks.smallscale.clip_bank import ClipBank  # noqa: E402
from benchmarks.smallscale.fewshot import (  # noqa: E402
    accuracy,
    finetune_classifier,
    k_shot_indices,
    layer_embeddings,
    linear_probe,
)

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: name -> (dataset folder, label column, input frames for fine-tuning)
TASKS = {
    "fsdd_digits": ("kws_sid_fsdd", "label", 128),
    "fsdd_speakers": ("kws_sid_fsdd", "speaker", 128),
    "emodb": ("emotion_emodb", "label", 200),
    "esc10": ("audio_events_esc10", "label", 512),
}

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="../shared/data layout")
    parser.add_argument(
        "--pool",
        nargs="*",
        type=Path,
        default=None,
        help="unlabeled audio: folders and/or CSV manifests with a path or wav column "
        "(default: the train/unlabeled splits of --data)",
    )
    parser.add_argument("--output", type=Path, default=Path("results/ssl_gain"))
    parser.add_argument("--tasks", nargs="*", default=["fsdd_digits", "fsdd_speakers", "emodb"])
    parser.add_argument("--shots", nargs="+", default=["5", "10", "all"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    model = parser.add_argument_group("model")
    model.add_argument("--size", default="tiny", choices=["tiny", "small", "base"])
    model.add_argument("--shape", default="frame", choices=["frame", "patch"])
    pre = parser.add_argument_group("pretraining")
    pre.add_argument("--minutes", type=float, default=30.0, help="pretraining budget (training)")
    pre.add_argument("--pretrained", type=Path, help="reuse a saved encoder; skip pretraining")
    pre.add_argument("--mode", default="faithful", choices=["faithful", "single_pass", "mae"])
    pre.add_argument(
        "--target-frames",
        "--tdim",
        dest="target_frames",
        type=int,
        default=128,
        help="pretraining input frames",
    )
    pre.add_argument("--mask-ratio", type=float, default=0.5, help="masked / all patches")
    pre.add_argument("--masking", default=None, help="random | cluster | unbiased_cluster")
    pre.add_argument(
        "--padding-aware",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="mask and score real-audio patches only (off = the original)",
    )
    pre.add_argument("--batch", type=int, default=32)
    pre.add_argument("--lr", type=float, default=5e-4)
    pre.add_argument("--warmup-steps", type=int, default=100)
    pre.add_argument("--schedule", default="cosine", choices=["cosine", "constant"])
    pre.add_argument("--mpg-weight", type=float, default=10.0)
    pre.add_argument("--eval-every", type=float, default=2.0, help="curve point every N minutes")
    pre.add_argument(
        "--snapshots",
        action="store_true",
        help="save the encoder at every curve point (snapshots/, reusable with --pretrained)",
    )
    ft = parser.add_argument_group("fine-tuning")
    ft.add_argument("--ft-steps", type=int, default=200)
    ft.add_argument("--ft-batch", type=int, default=16)
    ft.add_argument("--ft-lr", type=float, default=5e-4, help="pretrained twin")
    ft.add_argument("--ft-head-lr-scale", type=float, default=10.0)
    ft.add_argument("--layer-decay", type=float, default=0.75, help="pretrained twin")
    ft.add_argument(
        "--scratch-layer-decay",
        type=float,
        default=1.0,
        help="scratch twin (a random encoder has nothing to protect: one rate for all layers)",
    )
    ft.add_argument(
        "--scratch-lr",
        type=float,
        default=2e-4,
        help="scratch twin (its best of 2e-4, 5e-4, 1e-3 on FSDD digits and EmoDB at k=10)",
    )
    ft.add_argument("--ft-tstride", type=int, default=None, help="default: the patch width")
    ft.add_argument("--freqm", type=int, default=24)
    ft.add_argument("--timem", type=int, default=16)
    ft.add_argument(
        "--ft-pooling",
        default="all",
        choices=["all", "real"],
        help="classifier pooling: every patch token (the original) or real-audio patches only",
    )
    ft.add_argument(
        "--finetune",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fine-tune the twins (off: linear probes only, a few minutes)",
    )
    probe = parser.add_argument_group("linear probe")
    probe.add_argument(
        "--probe-pooling",
        default="real",
        choices=["real", "all"],
        help="average the tokens of real-audio patches only, or every patch token (the original)",
    )
    return parser.parse_args(argv)


def read_rows(data_dir, folder):
    """Rows of ``<data>/<folder>/manifest.csv`` with absolute paths."""
    manifest = data_dir / folder / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: point --data at the shared data folder")
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["path"] = str(data_dir / folder / row["path"])
    return rows


def pool_paths(args):
    """Unlabeled training audio and held-out audio for the pretraining curve."""
    if args.pool:
        paths = []
        for source in args.pool:
            if source.is_dir():
                paths += sorted(str(p) for p in source.rglob("*") if p.suffix in AUDIO_SUFFIXES)
            else:
                with open(source, newline="") as handle:
                    for row in csv.DictReader(handle):
                        path = Path(row.get("path") or row["wav"])
                        paths.append(str(path if path.is_absolute() else source.parent / path))
        held_out = []
    else:
        folders = sorted(p.name for p in args.data.iterdir() if (p / "manifest.csv").is_file())
        rows = [row for folder in folders for row in read_rows(args.data, folder)]
        paths = [r["path"] for r in rows if r["split"] in ("train", "unlabeled")]
        held_out = [r["path"] for r in rows if r["split"] == "valid"]
    if not paths:
        raise ValueError("The unlabeled pool is empty")
    # A fixed, spread-out subset keeps the curve cheap.
    return paths, held_out[:: max(1, len(held_out) // 160)]


def build_pretrain_model(args):
    config = EncoderConfig.from_names(args.size, args.shape, input_tdim=args.target_frames)
    encoder = SSASTEncoder(config)
    num_masked = max(1, round(args.mask_ratio * config.num_patches))
    common = dict(
        num_masked=num_masked,
        masking=args.masking,
        mpg_weight=args.mpg_weight,
        padding_aware=args.padding_aware,
    )
    if args.mode == "mae":
        return MAEPretrainModel(encoder, **common)
    return SSASTPretrainModel(encoder, single_pass=args.mode == "single_pass", **common)


def pretrain(args, log):
    if args.pretrained:
        saved = torch.load(args.pretrained, map_location="cpu", weights_only=True)
        encoder = SSASTEncoder(EncoderConfig(**saved["config"]))
        encoder.load_state_dict(saved["state"])
        return encoder, saved.get("curve", [])
    torch.manual_seed(0)
    model = build_pretrain_model(args)
    snapshots = []

    def save_snapshot(point, model):
        snapshots.append(point)
        folder = args.output / "snapshots"
        folder.mkdir(exist_ok=True)
        path = folder / f"encoder_step{point['step']:06d}_{point['minutes']:.2f}min.pt"
        save_encoder(model.encoder, path, snapshots, args)

    train_paths, held_out = pool_paths(args)
    log(f"pool: {len(train_paths)} clips; held-out curve: {len(held_out)} clips")
    bank = ClipBank.from_files(train_paths)
    valid = None
    if held_out:
        valid = (ClipBank.from_files(held_out), list(range(len(held_out))))
    curve = pretrain_for_minutes(
        model,
        bank,
        args.minutes,
        args.target_frames,
        batch_size=args.batch,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        schedule=args.schedule,
        valid=valid,
        eval_every_minutes=args.eval_every,
        log=lambda line: log("pretrain " + line),
        on_record=save_snapshot if args.snapshots else None,
    )
    save_encoder(model.encoder, args.output / "pretrained_encoder.pt", curve, args)
    return model.encoder, curve


def save_encoder(encoder, path, curve, args):
    """The encoder, its config, the curve so far and the arguments, written atomically."""
    save_atomic(
        {
            "config": vars(encoder.config),
            "state": encoder.state_dict(),
            "curve": curve,
            "args": {k: str(v) for k, v in vars(args).items()},
        },
        path,
    )


def load_task(args, name):
    folder, column, tdim = TASKS[name]
    rows = read_rows(args.data, folder)
    classes = sorted({row[column] for row in rows})
    splits = {}
    for split in ("train", "valid", "test"):
        chosen = [r for r in rows if r["split"] == split]
        if not chosen:
            # ESC-10 here has no test split: its valid split serves both.
            chosen = [r for r in rows if r["split"] == "valid"]
        bank = ClipBank.from_files([r["path"] for r in chosen], progress=False)
        features = bank.fixed(list(range(len(bank))), tdim)
        labels = torch.tensor([classes.index(r[column]) for r in chosen])
        splits[split] = (features, labels)
        splits[f"{split}_frames"] = bank.real_frames(list(range(len(bank))), tdim)
    return splits, len(classes)


def task_encoder(args, pretrained, tdim, seed):
    """The fine-tuning encoder: adapted from the pretrained one, or a random twin."""
    tstride = args.ft_tstride or pretrained.config.tshape
    if seed is None:
        return adapt_encoder(pretrained, tstride=tstride, input_tdim=tdim)
    torch.manual_seed(1000 + seed)
    config = EncoderConfig(**{**vars(pretrained.config), "tstride": tstride, "input_tdim": tdim})
    return SSASTEncoder(config)


def finetune_run(args, pretrained, splits, num_classes, k, seed, from_pretrained):
    train_x, train_y = splits["train"]
    real = args.ft_pooling == "real"
    chosen = k_shot_indices(train_y, k, seed)
    tdim = train_x.shape[1]
    encoder = task_encoder(args, pretrained, tdim, None if from_pretrained else seed)
    torch.manual_seed(2000 + seed)
    classifier = SSASTClassifier(encoder, num_classes)
    finetune_classifier(
        classifier,
        train_x[chosen],
        train_y[chosen],
        args.ft_steps,
        batch_size=args.ft_batch,
        lr=args.ft_lr if from_pretrained else args.scratch_lr,
        head_lr_scale=args.ft_head_lr_scale,
        layer_decay=args.layer_decay if from_pretrained else args.scratch_layer_decay,
        freq_width=args.freqm,
        time_width=args.timem,
        seed=seed,
        num_frames=splits["train_frames"][chosen] if real else None,
    )
    return accuracy(classifier, *splits["test"], num_frames=splits["test_frames"] if real else None)


def probe_run(splits, k, seed):
    train_emb, train_y = splits["train_emb"], splits["train"][1]
    chosen = k_shot_indices(train_y, k, seed)
    result = linear_probe(
        (train_emb[:, chosen], train_y[chosen]),
        (splits["valid_emb"], splits["valid"][1]),
        (splits["test_emb"], splits["test"][1]),
    )
    return result["test_acc"]


def summarize(values):
    mean = statistics.mean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, spread


def _pair_cells(base, treated):
    """Mean ± sd of both arms, gain in points, relative gain; dashes when not run."""
    if not base or not treated:
        return ["—"] * 4
    (b_mean, b_sd), (t_mean, t_sd) = summarize(base), summarize(treated)
    relative = f"{(t_mean - b_mean) / b_mean * 100:+.0f}%" if b_mean > 0 else "—"
    return [
        f"{b_mean:.3f} ± {b_sd:.3f}",
        f"{t_mean:.3f} ± {t_sd:.3f}",
        f"{100 * (t_mean - b_mean):+.1f}",
        relative,
    ]


def format_table(results):
    """Markdown table: test accuracy mean ± sd over seeds, gains in points and relative."""
    lines = [
        "| task | k | scratch | pretrained | gain (points) | relative | "
        "probe random | probe pretrained | probe gain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results:
        finetuned = _pair_cells(row["scratch"], row["pretrained"])
        probed = _pair_cells(row["probe_random"], row["probe_pretrained"])[:3]
        lines.append("| " + " | ".join([row["task"], str(row["k"]), *finetuned, *probed]) + " |")
    return "\n".join(lines)


def write_curve(curve, output):
    if not curve:
        return
    keys = list(curve[0])
    with atomic_open(output / "curve.csv", "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(curve)
    if "acc" in curve[0]:
        from ssast_sb.reports import plot_curves

        plot_curves(
            curve,
            ["acc", "mse", "train_loss"],
            str(output / "curve.png"),
            x_key="minutes",
            title="MSPM pretraining (held-out MPC accuracy, MSE; training loss)",
        )


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.output.mkdir(parents=True, exist_ok=True)
    started = time.time()

    def log(line):
        print(f"[{(time.time() - started) / 60:6.1f} min] {line}", flush=True)

    pretrained, curve = pretrain(args, log)
    write_curve(curve, args.output)
    # The probe's random features: the pretrained encoder's own starting point
    # (pretraining also draws its encoder first after seeding with 0), the same
    # whether this run pretrained or loaded an encoder.
    torch.manual_seed(0)
    random_twin = SSASTEncoder(pretrained.config)
    shots = [None if k == "all" else int(k) for k in args.shots]
    results = []
    for task in args.tasks:
        splits, num_classes = load_task(args, task)
        embeddings = {}
        for name, encoder in (("pretrained", pretrained), ("random", random_twin)):
            adapted = adapt_encoder(encoder, input_tdim=splits["train"][0].shape[1])
            embeddings[name] = {
                f"{split}_emb": layer_embeddings(
                    adapted,
                    splits[split][0],
                    num_frames=splits[f"{split}_frames"] if args.probe_pooling == "real" else None,
                )
                for split in ("train", "valid", "test")
            }
        for k in shots:
            row = {"task": task, "k": "all" if k is None else k}
            for key in ("scratch", "pretrained", "probe_random", "probe_pretrained"):
                row[key] = []
            for seed in args.seeds:
                for key, from_pretrained in (("scratch", False), ("pretrained", True)):
                    if args.finetune:
                        row[key].append(
                            finetune_run(
                                args, pretrained, splits, num_classes, k, seed, from_pretrained
                            )
                        )
                for name in ("random", "pretrained"):
                    row[f"probe_{name}"].append(probe_run({**splits, **embeddings[name]}, k, seed))
                log(
                    f"{task} k={row['k']} seed={seed}: "
                    + " ".join(
                        f"{key} {values[-1]:.3f}"
                        for key, values in row.items()
                        if isinstance(values, list) and values
                    )
                )
            results.append(row)
    table = format_table(results)
    command = "python benchmarks/ssl_gain.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    minutes = curve[-1]["minutes"] if curve else 0.0
    summary = (
        f"{table}\n\nPretraining: {minutes:.1f} training minutes"
        + (
            f", held-out MPC accuracy {curve[0]['acc']:.3f} -> {curve[-1]['acc']:.3f}, "
            f"MSE {curve[0]['mse']:.3f} -> {curve[-1]['mse']:.3f}"
            if curve and "acc" in curve[0]
            else ""
        )
        + f". Whole run: {(time.time() - started) / 60:.1f} min.\nCommand: `{command.strip()}`\n"
    )
    print(summary)
    with atomic_open(args.output / "results.md", "w") as handle:
        handle.write(summary)
    with atomic_open(args.output / "results.json", "w") as handle:
        json.dump({"results": results, "curve": curve, "args": vars(args)}, handle, default=str)
    return results


if __name__ == "__main__":
    main()
