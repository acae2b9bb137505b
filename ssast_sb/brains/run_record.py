"""What made a run, recorded beside its checkpoints, and the guard that keeps reruns honest.

A recipe rerun into a folder that already holds checkpoints resumes them (or, when
the run had finished, reloads its best model and trains nothing). That is right
only when the rerun asks for the same run. Every Brain run therefore writes a
``run_record.json`` into its checkpoint folder, holding:

* ``settings``: the YAML's values resolved with the command line's overrides
  (objects as their tags and arguments), plus the SpeechBrain run options that
  shape training (:data:`TRAINING_RUN_OPTIONS`), without the settings of
  :data:`EXEMPT_SETTINGS` and without paths inside the output folder (outputs,
  not settings);
* ``inputs``: the files named by a checkpoint option (``pretrained_path``,
  ``checkpoint``), by path, size and SHA-256;
* ``manifests``: the rows and SHA-256 of each manifest the run trained and
  evaluated on.

:func:`guard_output_folder` compares every record under the output folder with
what the command line asks for before any work (preparation included), and
:func:`open_run` compares the whole record, manifests included, before a Brain
fits. A difference stops the run with the differences listed (``lr: 0.0001 ->
0.0005``) and the two remedies: another ``--output_folder``, or ``--fresh_run True``,
which moves the old run aside (:func:`move_aside`, never a deletion).

Authors
 * ssast-sb contributors
"""

import dataclasses
import datetime
import functools
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable, Optional

from ruamel.yaml.comments import TaggedScalar
from speechbrain.utils.distributed import ddp_barrier, if_main_process
from speechbrain.utils.run_opts import RunOptions

from ssast_sb.checkpoints import PRETRAINED_FILE
from ssast_sb.fileio import atomic_open
from ssast_sb.released import cache_folder, find_release

logger = logging.getLogger(__name__)

RECORD_NAME = "run_record.json"
RECORD_FORMAT = 1

#: Settings left out of the record, with the reason: they do not change the trained model.
EXEMPT_SETTINGS = {
    "output_folder": "where the run writes (paths inside it are outputs, not settings)",
    "num_workers": "the number of loader processes",
    "ckpt_interval_minutes": "when intra-epoch checkpoints are written",
    "ckpt_interval_steps": "when intra-epoch checkpoints are written",
    "keep_checkpoints": "how many checkpoints are kept",
    "folds": "which folds one invocation runs: each fold has its own folder and record",
    "skip_prep": "whether the preparation runs (the manifests themselves are recorded)",
    "download": "whether a missing dataset is downloaded (the manifests are recorded)",
    "task_name": "the heading of the quickstart's table",
}

#: SpeechBrain run options that change training, recorded with the value the Brain uses.
#: The others (device, DDP backend, progress bars, debug, checkpoint intervals) do not.
TRAINING_RUN_OPTIONS = ("precision", "eval_precision", "grad_accumulation_factor", "max_grad_norm")

#: Settings whose value names a file whose identity (size, SHA-256) is recorded.
INPUT_SETTINGS = ("pretrained_path", "checkpoint")


class RunMismatchError(SystemExit):
    """A rerun that would reuse a run made with other settings (exits with the message)."""


# ---------------------------------------------------------------- what the settings are


def _is_output(value, output_folder):
    if not isinstance(value, str) or not output_folder:
        return False
    root = output_folder.rstrip("/")
    return value == root or value.startswith(root + "/")


def plain_settings(node, output_folder=None, _seen=None, _path=""):
    """A resolved YAML tree as plain JSON values: exempt keys and output paths left out.

    Objects (``!new:``, ``!apply:``, ``!name:``) become their arguments with the tag
    under ``"!"``; a second reference to the same object becomes ``"=<first key>"``,
    so that one change is listed once.

    Arguments
    ---------
    node : object
        The tree (from :func:`ssast_sb.brains.common.resolved_yaml`) or a value.
    output_folder : str, optional
        Values inside it are outputs and are left out.

    Returns
    -------
    object

    Example
    -------
    >>> import io
    >>> from ruamel.yaml import YAML
    >>> tree = YAML(typ="rt").load(io.StringIO(
    ...     "lr: 0.1\\nnum_workers: 4\\nsave: out/save\\n"
    ...     "opt: !name:torch.optim.Adam\\n  lr: 0.1\\n"))
    >>> plain_settings(tree, "out")
    {'lr': 0.1, 'opt': {'!': '!name:torch.optim.Adam', 'lr': 0.1}}
    """
    seen = {} if _seen is None else _seen
    tag = getattr(getattr(node, "tag", None), "value", None)
    if isinstance(node, (dict, list)) or isinstance(node, TaggedScalar):
        if id(node) in seen:
            return f"={seen[id(node)]}"
        seen[id(node)] = _path or "."
    if isinstance(node, TaggedScalar):
        return {"!": tag, "value": plain_settings(node.value, output_folder, seen, _path)}
    if isinstance(node, dict):
        result = {"!": tag} if tag else {}
        for key, value in node.items():
            key = str(key)
            if key in EXEMPT_SETTINGS or _is_output(value, output_folder):
                continue
            result[key] = plain_settings(value, output_folder, seen, f"{_path}.{key}".lstrip("."))
        return result
    if isinstance(node, (list, tuple)):
        items = [plain_settings(value, output_folder, seen, _path) for value in node]
        return {"!": tag, "args": items} if tag else items
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return str(node)


def training_run_options(run_opts, values):
    """The run options of :data:`TRAINING_RUN_OPTIONS` as the Brain will use them.

    SpeechBrain takes a run option from the command line, else from the YAML,
    else its default; so does this.

    Arguments
    ---------
    run_opts : speechbrain.utils.run_opts.RunOptions or dict
    values : dict
        The resolved YAML.

    Returns
    -------
    dict

    Example
    -------
    >>> opts = RunOptions.from_dictionary({"precision": "bf16"})
    >>> training_run_options(opts, {"max_grad_norm": 1.0})["precision"]
    'bf16'
    >>> training_run_options({}, {"max_grad_norm": 1.0})["max_grad_norm"]
    1.0
    """
    if isinstance(run_opts, dict):
        run_opts = RunOptions.from_dictionary(run_opts)
    options = {}
    for name in TRAINING_RUN_OPTIONS:
        if name in run_opts.overridden_args or name not in values:
            value = run_opts[name]
        else:
            value = values[name]
        options[name] = plain_settings(value)
    return options


def recipe_settings(hparams_file, overrides, run_opts, section=None, exclude=()):
    """What a recipe's command line asks for: the run's ``settings`` (see the module docstring).

    Arguments
    ---------
    hparams_file : str
        The YAML.
    overrides : dict
        The command line's YAML overrides (not values a recipe decides later).
    run_opts : RunOptions or dict
        SpeechBrain run options.
    section : str, optional
        A sub-tree of the YAML that is the hparams of this run (the quickstart's
        ``finetune``).
    exclude : sequence of str
        Top-level keys this run does not use.

    Returns
    -------
    dict
    """
    from ssast_sb.brains.common import resolved_yaml  # common imports this module

    values = resolved_yaml(hparams_file, overrides)
    output_folder = str(values.get("output_folder") or "")
    tree = values[section] if section else values
    settings = plain_settings(tree, output_folder)
    for key in exclude:
        settings.pop(key, None)
    for name, value in training_run_options(run_opts, tree).items():
        settings[name] = value
    return settings


# ---------------------------------------------------------------- identities of files


def file_identity(path):
    """Path, size and SHA-256 of a file (hashed once per process while it is unchanged).

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.bin")
    >>> _ = open(path, "wb").write(b"abc")
    >>> identity = file_identity(path)
    >>> identity["bytes"], identity["sha256"][:12]
    (3, 'ba7816bf8f01')
    """
    resolved = Path(path).resolve()
    status = resolved.stat()
    return dict(_hashed(str(resolved), status.st_size, status.st_mtime_ns))


@functools.lru_cache(maxsize=64)
def _hashed(path, size, mtime_ns):
    del mtime_ns  # part of the cache key: a rewritten file is hashed again
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return {"path": path, "bytes": size, "sha256": digest.hexdigest()}


def _leaves(tree, prefix=""):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, f"{prefix}{key}." if key != "!" else prefix)
    else:
        yield prefix.rstrip("."), tree


def input_identities(settings):
    """The identity of every file named by a setting of :data:`INPUT_SETTINGS`.

    A folder stands for the ``ssast_pretrained.pth`` inside it (a pretraining
    run's export folder), and a released model's name for its cached download,
    as the checkpoint loaders read them.

    Arguments
    ---------
    settings : dict
        From :func:`recipe_settings`.

    Returns
    -------
    dict
        Per dotted setting, :func:`file_identity`; unset or absent paths are left out
        (loading them fails with its own error).
    """
    identities, seen = {}, set()
    for key, value in _leaves(settings):
        if key.rsplit(".", 1)[-1] not in INPUT_SETTINGS or not isinstance(value, str):
            continue
        release = find_release(value)
        path = cache_folder() / release.filename if release else Path(value).expanduser()
        if path.is_dir():
            path = path / PRETRAINED_FILE
        if not path.is_file():
            continue
        resolved = str(path.resolve())
        if resolved not in seen:  # one file named by several settings is listed once
            seen.add(resolved)
            identities[key] = file_identity(path)
    return identities


def manifest_identities(manifests):
    """Rows and SHA-256 of each manifest CSV.

    Arguments
    ---------
    manifests : dict
        Split name to CSV path.

    Returns
    -------
    dict

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "train.csv")
    >>> _ = open(path, "w").write("ID,wav\\na,a.wav\\nb,b.wav\\n")
    >>> manifest_identities({"train": path})["train"]["rows"]
    2
    """
    identities = {}
    for split, path in sorted(manifests.items()):
        data = Path(path).read_bytes()
        rows = max(data.count(b"\n") - 1, 0) + (0 if data.endswith(b"\n") or not data else 1)
        identities[split] = {"rows": rows, "sha256": hashlib.sha256(data).hexdigest()}
    return identities


# ---------------------------------------------------------------- comparing two runs


def _flatten(tree, prefix=""):
    if isinstance(tree, dict) and tree:
        flat = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): tree}


def _shown(value, limit=120):
    text = "null" if value is None else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_changes(old, new):
    """``key: old -> new`` for every value that differs; one change is listed once.

    A nested value that changed exactly as a top-level one of the same name
    (``dataloader_opts.batch_size`` with ``batch_size``) is left out: the
    top-level one says it.

    Arguments
    ---------
    old, new : dict
        Two records' parts (settings, inputs, manifests).

    Returns
    -------
    list of str

    Example
    -------
    >>> describe_changes({"lr": 1e-4, "opts": {"lr": 1e-4}, "seed": 0},
    ...                  {"lr": 5e-4, "opts": {"lr": 5e-4}, "seed": 0})
    ['lr: 0.0001 -> 0.0005']
    >>> describe_changes({"pretrained_path": "runs/pt"}, {"pretrained_path": None})
    ["pretrained_path: 'runs/pt' -> null"]
    """
    old, new = _flatten(old), _flatten(new)
    absent = object()
    changed = {
        key: (old.get(key, absent), new.get(key, absent))
        for key in sorted(set(old) | set(new))
        if old.get(key, absent) != new.get(key, absent)
    }
    lines = []
    for key, (before, after) in changed.items():
        leaf = key.rsplit(".", 1)[-1]
        if "." in key and changed.get(leaf) == (before, after):
            continue
        before = "(absent)" if before is absent else _shown(before)
        after = "(absent)" if after is absent else _shown(after)
        lines.append(f"{key}: {before} -> {after}")
    return lines


# ---------------------------------------------------------------- the command line


@dataclasses.dataclass(frozen=True)
class CommandLine:
    """What a recipe was asked, to compute the settings of each of its runs.

    Arguments
    ---------
    hparams_file : str
        The YAML.
    overrides : dict
        The command line's YAML overrides.
    output_folder : str
        The resolved output folder.
    stage_settings : callable, optional
        ``stage_settings(command_line, run_opts, stage) -> settings`` for recipes
        whose runs use parts of the YAML (the quickstart); by default every run
        of the recipe has the settings of the whole YAML (:func:`recipe_settings`).
    """

    hparams_file: str
    overrides: dict
    output_folder: str
    stage_settings: Optional[Callable] = None

    def settings(self, run_opts, stage):
        """The settings of the run ``stage`` (a dict with at least ``name``)."""
        if self.stage_settings is not None:
            return self.stage_settings(self, run_opts, stage)
        return recipe_settings(self.hparams_file, self.overrides, run_opts)


def _checkpoint_folders(folder):
    return sorted(path for path in Path(folder).glob("CKPT+*") if path.is_dir())


def read_record(folder):
    """The run record in ``folder``, or None; an unreadable one is a ``RunMismatchError``."""
    path = Path(folder) / RECORD_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("format") != RECORD_FORMAT:
            raise ValueError(f"format {record.get('format')!r}, expected {RECORD_FORMAT}")
        return record
    except (OSError, ValueError, AttributeError) as error:
        raise RunMismatchError(
            f"The run record {path} is unreadable ({error}), so the settings of the checkpoints "
            f"beside it are unknown. {remedies(None)}"
        ) from None


def remedies(output_folder):
    """The two ways out of a mismatch, as one sentence."""
    folder = str(output_folder).rstrip("/") if output_folder else "<output_folder>"
    return (
        "Nothing was changed. Write this run to another folder (--output_folder ...), or start "
        f"it afresh in this one with --fresh_run True: the existing run is moved aside to "
        f"{folder}.previous-<date>-<time>, nothing is deleted."
    )


def _record_changes(record, current):
    lines = []
    for part in ("settings", "inputs", "manifests"):
        if part in current:
            lines += [
                f"{part}: {line}" if part != "settings" else line
                for line in describe_changes(record.get(part, {}), current[part])
            ]
    return lines


def guard_output_folder(command_line, run_opts, fresh_run=False):
    """Before any work: every run under the output folder must be the one asked for.

    Every ``run_record.json`` below the output folder is compared with the
    settings and input files the command line gives its run; checkpoints without
    a record (an older version, or another tool) count as a difference. On a
    difference the run stops with every difference listed and the remedies;
    with ``fresh_run`` an existing output folder is moved aside instead (also when
    nothing differs: the run starts afresh).

    Arguments
    ---------
    command_line : CommandLine
    run_opts : RunOptions
    fresh_run : bool
        ``--fresh_run True``.

    Raises
    ------
    RunMismatchError
    """
    output = Path(command_line.output_folder)
    if fresh_run:
        if output.exists() and any(output.iterdir()):
            moved = move_aside(output)
            logger.warning("--fresh_run: the run in %s was moved to %s", output, moved)
        return
    if not output.is_dir():
        return
    problems = []
    records = sorted(output.rglob(RECORD_NAME))
    recorded_folders = {path.parent for path in records}
    for path in records:
        record = read_record(path.parent)
        settings = command_line.settings(run_opts, record.get("stage", {}))
        current = {"settings": settings, "inputs": input_identities(settings)}
        lines = _record_changes(record, current)
        if lines:
            problems.append((path.parent, record.get("stage", {}), lines))
    for ckpt_dir in sorted({path.parent for path in output.rglob("CKPT+*")}):
        if ckpt_dir not in recorded_folders:
            problems.append((ckpt_dir, {}, ["checkpoints without a run record (settings unknown)"]))
    if problems:
        raise RunMismatchError(mismatch_message(output, problems))


def _stage_text(stage):
    return ", ".join(f"{key} {value}" for key, value in stage.items() if key != "name")


def mismatch_message(output, problems, limit=30):
    """The message that stops a rerun: what differs in which run, and the remedies."""
    lines = [
        f"{output} holds {'a run' if len(problems) == 1 else 'runs'} made with other settings; "
        "resuming would report that model as this run's result:"
    ]
    for folder, stage, changes in problems:
        name = stage.get("name", "run")
        detail = _stage_text(stage)
        lines.append(f"  {folder} ({name}{', ' + detail if detail else ''}):")
        lines += [f"    {change}" for change in changes[:limit]]
        if len(changes) > limit:
            lines.append(f"    ... and {len(changes) - limit} more")
    lines.append(remedies(output))
    return "\n".join(lines)


def move_aside(folder):
    """Renames ``folder`` to ``<folder>.previous-<time>`` (never deletes); returns the new path.

    Under DDP the main process renames and every process waits for it.

    Example
    -------
    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> run.mkdir()
    >>> moved = move_aside(run)
    >>> run.exists(), moved.name.startswith("run.previous-")
    (False, True)
    """
    folder = Path(folder)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = folder.with_name(f"{folder.name}.previous-{stamp}")
    suffix = 1
    while target.exists():
        suffix += 1
        target = folder.with_name(f"{folder.name}.previous-{stamp}-{suffix}")
    if if_main_process():
        os.replace(folder, target)
    ddp_barrier()
    return target


def open_run(checkpoints_dir, stage, run_opts, manifests):
    """Before a Brain fits: the record in ``checkpoints_dir`` must be this run's; then written.

    Does nothing for run options without a command line (a Brain used from Python).
    With checkpoints present, the record on disk must match the settings, input
    files and manifests of this run; a difference, or checkpoints without a
    record, stop the run (:class:`RunMismatchError`). Otherwise the record is
    written (atomically, by the main process).

    Arguments
    ---------
    checkpoints_dir : str or pathlib.Path
        The checkpointer's folder.
    stage : dict
        The run within its recipe (``name`` and e.g. ``fold``, ``twin``, ``seed``).
    run_opts : RunOptions
        A recipe's run options (:class:`~ssast_sb.brains.common.RecipeOptions`).
    manifests : dict
        Split name to manifest CSV.

    Returns
    -------
    dict or None
        The record, or None without a command line.
    """
    command_line = getattr(run_opts, "command_line", None)
    if command_line is None:
        return None
    folder = Path(checkpoints_dir)
    settings = command_line.settings(run_opts, stage)
    current = {
        "settings": settings,
        "inputs": input_identities(settings),
        "manifests": manifest_identities(manifests),
    }
    checkpoints = _checkpoint_folders(folder)
    record = read_record(folder)
    if checkpoints:
        if record is None:
            changes = ["checkpoints without a run record (settings unknown)"]
        else:
            changes = _record_changes(record, current)
        if changes:
            raise RunMismatchError(
                mismatch_message(command_line.output_folder, [(folder, stage, changes)])
            )
    record = {"format": RECORD_FORMAT, "stage": stage, **current}
    if if_main_process():
        with atomic_open(folder / RECORD_NAME) as stream:
            json.dump(record, stream, indent=1, sort_keys=True)
    ddp_barrier()
    return record
