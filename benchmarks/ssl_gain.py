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

Example (the table of ``benchmarks/README.md``, about two hours on 2 CPU cores)::

    python benchmarks/ssl_gain.py --minutes 60

Quick look (a few minutes)::

    python benchmarks/ssl_gain.py --minutes 2 --seeds 0 --shots 10 --tasks fsdd_speakers

Tasks. ``--tasks`` names built-in tasks, folders of ``--data``: ``fsdd_digits``,
``fsdd_speakers``, ``emodb`` (the default three) and ``esc10``. ``--task NAME=PATH``
(repeatable) adds a task of your own in the layouts of the generic fine-tuning
recipe (``recipes/custom/train.py``): PATH is a folder with one sub-folder per
class, or a ``.csv``/``.json`` list with ``path`` and ``label`` columns and
optionally ``speaker`` and ``split`` (relative paths are relative to the list).
With ``--task`` and no ``--tasks``, only your tasks run; built-in tasks come first
in the tables. For each task of your own:

* columns: ``--columns "{path: file, label: emotion}"`` renames the columns of
  every list; ``--columns "NAME={label: speaker}"`` those of one task (two tasks
  can read two label columns of one list);
* split: the list's ``split`` column (train/valid/test); a split it lacks is
  drawn from its training clips, and a list without one (or a folder) gets a
  seeded split, ``--valid-ratio`` and ``--test-ratio`` of each class
  (speaker-disjoint when a speaker column exists) with ``--split-seed``; each
  choice is logged and kept in ``results.json``;
* input length: one that holds ``--length-percentile`` (95) % of the training
  clips whole, as the recipe chooses it, unless ``--task-frames NAME=FRAMES``.

Every class needs at least ``k`` training clips for each ``--shots`` value ``k``::

    python benchmarks/ssl_gain.py --pretrained ENCODER --task birds=/data/birds \\
        --task calls=calls.csv --columns "calls={label: species}" --shots 5 10

The unlabeled pool (``--pool``) takes folders (every audio file under them, class
folders included) and CSV manifests with a ``path`` or ``wav`` column.
"""

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from ssast_sb.data.generic import AUDIO_EXTENSIONS
from ssast_sb.data.manifest import ManifestError, find_files
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
from benchmarks.smallscale.tasks import (  # noqa: E402
    BUILTIN_TASKS,
    builtin_task,
    check_task,
    custom_task,
    parse_columns,
    parse_frames,
    parse_task_spec,
    read_rows,
    task_features,
)

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: The built-in tasks of a run without --tasks and --task (the README's table).
DEFAULT_TASKS = ["fsdd_digits", "fsdd_speakers", "emodb"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__[__doc__.index("Tasks.") :].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="../shared/data layout")
    parser.add_argument(
        "--pool",
        nargs="*",
        type=Path,
        default=None,
        help="unlabeled audio: folders (every audio file under them, class folders included) "
        "and/or CSV manifests with a path or wav column (default: the train/unlabeled splits of "
        "--data)",
    )
    parser.add_argument("--output", type=Path, default=Path("results/ssl_gain"))
    parser.add_argument("--shots", nargs="+", default=["5", "10", "all"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    add_task_arguments(parser)
    model = parser.add_argument_group("model")
    model.add_argument("--size", default="tiny", choices=["tiny", "small", "base"])
    model.add_argument("--shape", default="frame", choices=["frame", "patch"])
    pre = parser.add_argument_group("pretraining")
    pre.add_argument("--minutes", type=float, default=60.0, help="pretraining budget (training)")
    pre.add_argument(
        "--steps",
        type=int,
        default=None,
        help="a budget of optimiser steps instead of minutes (the same run on any machine)",
    )
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
        default=None,
        choices=["all", "real"],
        help="classifier pooling: every patch token (the original) or real-audio patches "
        "only (default: real with --padding-aware, all without)",
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
    args = parser.parse_args(argv)
    if args.ft_pooling is None:
        # Measured with the 60-minute encoder: real-audio pooling lifted the gain on
        # digits at every k and left the others level (benchmarks/README.md).
        args.ft_pooling = "real" if args.padding_aware else "all"
    try:
        resolve_task_options(args)
    except ValueError as error:
        parser.error(str(error))
    return args


def add_task_arguments(parser):
    """The options that name the labeled tasks (module docstring, "Tasks")."""
    tasks = parser.add_argument_group("labeled tasks")
    tasks.add_argument(
        "--tasks",
        nargs="*",
        default=None,
        help=f"built-in tasks of --data: {', '.join(BUILTIN_TASKS)} "
        f"(default: {' '.join(DEFAULT_TASKS)}, or none when --task is given)",
    )
    tasks.add_argument(
        "--task",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a task of your own (repeatable): a folder with one sub-folder per class, or a "
        ".csv/.json list with path and label columns, optionally speaker and split",
    )
    tasks.add_argument(
        "--columns",
        action="append",
        default=[],
        metavar="[NAME=]MAPPING",
        help='column names of the lists, e.g. "{path: file, label: emotion}" for every list, '
        '"speakers={label: speaker}" for one task (keys: path, label, speaker, split)',
    )
    tasks.add_argument(
        "--task-frames",
        action="append",
        default=[],
        metavar="NAME=FRAMES",
        help="fine-tuning input length of a task (default for your own: --length-percentile)",
    )
    tasks.add_argument(
        "--length-percentile",
        type=float,
        default=95.0,
        help="the input length of a task of your own holds this %% of its training clips whole",
    )
    tasks.add_argument(
        "--valid-ratio",
        "--valid_ratio",
        dest="valid_ratio",
        type=float,
        default=0.1,
        help="share of each class drawn as valid when a list has no split (or no valid split)",
    )
    tasks.add_argument(
        "--test-ratio",
        "--test_ratio",
        dest="test_ratio",
        type=float,
        default=0.1,
        help="share of each class drawn as test when a list has no split (or no test split)",
    )
    tasks.add_argument("--split-seed", type=int, default=0, help="seed of the drawn splits")


def resolve_task_options(args):
    """Parses ``--task``, ``--columns`` and ``--task-frames``; fills in the default ``--tasks``.

    Sets ``args.custom_tasks`` (``{name: path}``), ``args.task_columns``
    (``{name: columns}``) and ``args.frames_of`` (``{name: frames}``).
    """
    if args.tasks is None:
        args.tasks = [] if args.task else list(DEFAULT_TASKS)
    unknown = [name for name in args.tasks if name not in BUILTIN_TASKS]
    if unknown:
        raise ValueError(
            f"--tasks {' '.join(unknown)}: the built-in tasks are {', '.join(BUILTIN_TASKS)}; "
            "name a folder or list of your own with --task NAME=PATH"
        )
    args.custom_tasks = {}
    for text in args.task:
        name, path = parse_task_spec(text)
        if name in BUILTIN_TASKS or name in args.custom_tasks:
            kind = "a built-in task" if name in BUILTIN_TASKS else "given twice"
            raise ValueError(f"--task {text!r}: the name {name!r} is {kind}; choose another")
        args.custom_tasks[name] = path
    shared, own = {}, {}
    for text in args.columns:
        name, columns = parse_columns(text)
        if name is not None and name not in args.custom_tasks:
            raise ValueError(f"--columns {text!r}: no --task is named {name!r}")
        if name is None:
            shared.update(columns)
        else:
            own.setdefault(name, {}).update(columns)
    args.task_columns = {name: {**shared, **own.get(name, {})} for name in args.custom_tasks}
    args.frames_of = dict(parse_frames(text) for text in args.task_frames)
    stray = sorted(set(args.frames_of) - set(args.tasks) - set(args.custom_tasks))
    if stray:
        raise ValueError(f"--task-frames: no task of this run is named {', '.join(stray)}")


def shot_values(args):
    """The ``k`` of ``--shots``: integers, None for ``all``."""
    return [None if k == "all" else int(k) for k in args.shots]


def load_tasks(args, log):
    """The run's tasks, read and checked before any pretraining (built-in ones first).

    Arguments
    ---------
    args : argparse.Namespace
        The parsed options.
    log : callable
        Takes a line; each task's source, classes, clips, split and input length go there.

    Returns
    -------
    list of LabeledTask
    """
    tasks = [builtin_task(args.data, name, args.frames_of.get(name)) for name in args.tasks]
    for name, source in args.custom_tasks.items():
        try:
            tasks.append(
                custom_task(
                    name,
                    source,
                    columns=args.task_columns[name],
                    frames=args.frames_of.get(name),
                    length_percentile=args.length_percentile,
                    valid_ratio=args.valid_ratio,
                    test_ratio=args.test_ratio,
                    seed=args.split_seed,
                )
            )
        except (FileNotFoundError, ValueError) as error:
            raise type(error)(f"--task {name}={source}: {error}") from error
    for task in tasks:
        check_task(task, shot_values(args))
        log(f"task {task.describe()}")
    return tasks


def pool_source_paths(source):
    """Audio files of one ``--pool`` source: a folder's (recursively) or a CSV's ``path``/``wav``.

    Arguments
    ---------
    source : pathlib.Path
        A folder (class folders included) or a CSV manifest.

    Returns
    -------
    list of str
    """
    if source.is_dir():
        paths = sorted(str(path) for path in find_files(source, "**/*", AUDIO_EXTENSIONS))
        if not paths:
            raise FileNotFoundError(
                f"--pool {source}: no audio file ({', '.join(AUDIO_EXTENSIONS)}) under it"
            )
        return paths
    if not source.is_file():
        raise FileNotFoundError(f"--pool {source} not found (a folder or a CSV manifest)")
    with open(source, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        column = next((name for name in ("path", "wav") if name in (reader.fieldnames or [])), None)
        if column is None:
            raise ManifestError(
                f"--pool {source}: no path or wav column (columns found: {reader.fieldnames})"
            )
        listed = [Path(row[column]) for row in reader if row[column]]
    return [str(path if path.is_absolute() else source.parent / path) for path in listed]


def pool_paths(args):
    """Unlabeled training audio and held-out audio for the pretraining curve."""
    if args.pool:
        paths = [path for source in args.pool for path in pool_source_paths(source)]
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


def pretrain(args, log, pool=None):
    """The encoder pretrained on ``pool`` (``pool_paths``), or loaded from ``--pretrained``."""
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

    train_paths, held_out = pool or pool_paths(args)
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
        max_steps=args.steps,
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


def task_record(task):
    """What ``results.json`` keeps of a task: source, classes, clips per split, frames, notes."""
    return {
        "source": task.source,
        "classes": task.classes,
        "clips": task.counts(),
        "frames": task.frames,
        "notes": task.notes,
    }


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.output.mkdir(parents=True, exist_ok=True)
    started = time.time()

    def log(line):
        print(f"[{(time.time() - started) / 60:6.1f} min] {line}", flush=True)

    try:  # what the run reads is checked before any pretraining
        tasks = load_tasks(args, log)
        pool = None if args.pretrained else pool_paths(args)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"ssl_gain.py: error: {error}") from None
    pretrained, curve = pretrain(args, log, pool)
    write_curve(curve, args.output)
    # The probe's random features: the pretrained encoder's own starting point
    # (pretraining also draws its encoder first after seeding with 0), the same
    # whether this run pretrained or loaded an encoder.
    torch.manual_seed(0)
    random_twin = SSASTEncoder(pretrained.config)
    shots = shot_values(args)
    results = []
    for labeled in tasks:
        task = labeled.name
        splits, num_classes = task_features(labeled)
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
        + "".join(f"\nTask {t.describe()}.\n" for t in tasks if t.name in args.custom_tasks)
    )
    print(summary)
    with atomic_open(args.output / "results.md", "w") as handle:
        handle.write(summary)
    with atomic_open(args.output / "results.json", "w") as handle:
        described = {task.name: task_record(task) for task in tasks}
        saved = {"results": results, "curve": curve, "tasks": described, "args": vars(args)}
        json.dump(saved, handle, default=str)
    return results


if __name__ == "__main__":
    main()
