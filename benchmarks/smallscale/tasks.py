"""The labeled tasks of the small-scale protocol: built-in ones, or your own audio.

A built-in task is a folder of ``../shared/data`` with its ``manifest.csv``
(columns ``path,label,speaker,duration,split``) and a fixed input length. A task
of your own is read as the generic fine-tuning recipe reads it
(:mod:`ssast_sb.data.labeled`): a folder with one sub-folder per class, or a
CSV/JSON list with path and label columns (and optionally speaker and split),
split by its own split column or by a seeded stratified split (speaker-disjoint
when speakers are known); its input length holds 95 % of its training clips whole
(:func:`ssast_sb.data.statistics.input_frames`) unless given.

Authors
 * ssast-sb contributors
"""

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from ssast_sb.data.labeled import DEFAULT_COLUMNS, SPLITS, assign_splits, read_labeled, split_rows
from ssast_sb.data.manifest import ManifestError
from ssast_sb.data.statistics import input_frames

from .clip_bank import ClipBank

#: name -> (dataset folder of ../shared/data, label column, input frames for fine-tuning)
BUILTIN_TASKS = {
    "fsdd_digits": ("kws_sid_fsdd", "label", 128),
    "fsdd_speakers": ("kws_sid_fsdd", "speaker", 128),
    "emodb": ("emotion_emodb", "label", 200),
    "esc10": ("audio_events_esc10", "label", 512),
}
#: Task names: letters, digits, ``_``, ``-`` and ``.`` (they head table rows and log lines).
TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


@dataclass
class LabeledTask:
    """A labeled task: its clips per split, its classes and its fine-tuning input length.

    Arguments
    ---------
    name : str
        The name in the tables.
    source : str
        Where its clips are listed (for messages).
    clips : dict
        ``{split: (paths, labels)}`` for ``train``, ``valid`` and ``test``.
    classes : list of str
        Sorted class names; a label's index in it is its class index.
    frames : int
        Fine-tuning input length (fbank frames).
    notes : list of str
        How the split and the input length were chosen, for the log and the results.

    Example
    -------
    >>> task = LabeledTask("t", "t.csv", {"train": (["a.wav"], ["x"])}, ["x"], 16)
    >>> task.counts()
    {'train': 1}
    """

    name: str
    source: str
    clips: dict
    classes: list
    frames: int
    notes: list = field(default_factory=list)

    def counts(self):
        """Clips per split."""
        return {split: len(paths) for split, (paths, _) in self.clips.items()}

    def describe(self):
        """One line: source, classes, clips per split, input length, and the notes."""
        counts = "/".join(str(count) for count in self.counts().values())
        return (
            f"{self.name}: {self.source}, {len(self.classes)} classes, {counts} clips "
            f"(train/valid/test), {self.frames} input frames"
            + "".join(f"; {note}" for note in self.notes)
        )


def read_rows(data_dir, folder):
    """Rows of ``<data>/<folder>/manifest.csv`` with absolute paths.

    Arguments
    ---------
    data_dir : pathlib.Path
        The shared data folder.
    folder : str
        A dataset folder in it.

    Returns
    -------
    list of dict
        The manifest's rows in its order, ``path`` made absolute.
    """
    manifest = data_dir / folder / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: point --data at the shared data folder")
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["path"] = str(data_dir / folder / row["path"])
    return rows


def builtin_task(data_dir, name, frames=None):
    """A built-in task: its manifest's own splits (ESC-10's valid split also serves as test).

    Arguments
    ---------
    data_dir : pathlib.Path
        The shared data folder.
    name : str
        A key of :data:`BUILTIN_TASKS`.
    frames : int, optional
        Input length instead of the task's own.

    Returns
    -------
    LabeledTask
    """
    if name not in BUILTIN_TASKS:
        raise ValueError(
            f"Unknown task {name!r}: the built-in tasks are {', '.join(BUILTIN_TASKS)}; "
            "name a folder or list of your own with --task NAME=PATH"
        )
    folder, column, own_frames = BUILTIN_TASKS[name]
    rows = read_rows(data_dir, folder)
    clips = {}
    for split in SPLITS:
        chosen = [row for row in rows if row["split"] == split]
        if not chosen:
            # ESC-10 here has no test split: its valid split serves both.
            chosen = [row for row in rows if row["split"] == "valid"]
        clips[split] = ([row["path"] for row in chosen], [row[column] for row in chosen])
    classes = sorted({row[column] for row in rows})
    source = str(data_dir / folder / "manifest.csv")
    notes = [f"input length {frames} frames as given"] if frames else []
    return LabeledTask(name, source, clips, classes, frames or own_frames, notes)


def parse_task_spec(text):
    """``NAME=PATH`` of ``--task``: a task name and its folder of class folders or list.

    Arguments
    ---------
    text : str
        The option's value.

    Returns
    -------
    tuple
        ``(name, pathlib.Path)``.

    Example
    -------
    >>> parse_task_spec("birds=/data/birds.csv")
    ('birds', PosixPath('/data/birds.csv'))
    """
    name, equals, path = text.partition("=")
    if not equals or not path:
        raise ValueError(
            f"--task {text!r}: expected NAME=PATH, PATH a folder of class folders or a "
            ".csv/.json list"
        )
    return _checked_name(name, "--task", text), Path(path)


def parse_columns(text):
    """``[NAME=]{key: column, ...}`` of ``--columns``: column names of one task's list, or all.

    Arguments
    ---------
    text : str
        The option's value: a YAML mapping of ``path``, ``label``, ``speaker``
        and ``split`` to column names, after ``NAME=`` for one task only.

    Returns
    -------
    tuple
        ``(name or None, {key: column})``.

    Example
    -------
    >>> parse_columns("speakers={label: speaker}")
    ('speakers', {'label': 'speaker'})
    >>> parse_columns("{path: file, label: emotion}")
    (None, {'path': 'file', 'label': 'emotion'})
    """
    name, mapping = None, text.strip()
    if not mapping.startswith("{"):
        name, equals, mapping = mapping.partition("=")
        if not equals:
            raise ValueError(
                f"--columns {text!r}: expected [NAME=]{{key: column, ...}}, "
                'e.g. "speakers={label: speaker}"'
            )
        name = _checked_name(name, "--columns", text)
    try:
        columns = yaml.safe_load(mapping)
    except yaml.YAMLError as error:
        raise ValueError(f"--columns {text!r}: not a YAML mapping ({error})") from None
    if not isinstance(columns, dict) or not columns:
        raise ValueError(f"--columns {text!r}: expected a mapping such as {{label: speaker}}")
    unknown = sorted(set(map(str, columns)) - set(DEFAULT_COLUMNS))
    if unknown:
        raise ValueError(
            f"--columns {text!r}: unknown key(s) {unknown}; the keys are {list(DEFAULT_COLUMNS)}"
        )
    return name, {str(key): str(column) for key, column in columns.items()}


def parse_frames(text):
    """``NAME=FRAMES`` of ``--task-frames``: a task's fine-tuning input length.

    Arguments
    ---------
    text : str
        The option's value.

    Returns
    -------
    tuple
        ``(name, frames)``.

    Example
    -------
    >>> parse_frames("birds=512")
    ('birds', 512)
    """
    name, _, frames = text.partition("=")
    if not frames.isdigit() or int(frames) < 1:
        raise ValueError(f"--task-frames {text!r}: expected NAME=FRAMES, FRAMES a positive integer")
    return _checked_name(name, "--task-frames", text), int(frames)


def _checked_name(name, option, text):
    if not TASK_NAME.fullmatch(name):
        raise ValueError(
            f"{option} {text!r}: the task name {name!r} must be letters, digits, '_', '-' or '.'"
        )
    return name


def custom_task(
    name,
    source,
    columns=None,
    frames=None,
    length_percentile=95.0,
    valid_ratio=0.1,
    test_ratio=0.1,
    seed=0,
):
    """A task of your own audio, read and split as the generic fine-tuning recipe does.

    The list's own split column is used when every row has one; a split it lacks
    is drawn from its training clips (valid: ``valid_ratio``, test: ``test_ratio``
    of them, stratified per class, speaker-disjoint when speakers are known).
    Without a split column, a seeded split of all the clips.

    Arguments
    ---------
    name : str
        The task's name.
    source : str or pathlib.Path
        A folder with one sub-folder per class, or a ``.csv``/``.json`` list.
    columns : dict, optional
        Column names of a list (:data:`ssast_sb.data.labeled.DEFAULT_COLUMNS`).
    frames : int, optional
        Input length; by default one that holds ``length_percentile`` % of the
        training clips whole.
    length_percentile : float
        See ``frames``.
    valid_ratio, test_ratio : float
        Shares of the seeded split.
    seed : int
        Seed of the split.

    Returns
    -------
    LabeledTask
        Its ``notes`` say how the split and the input length were chosen.

    Example
    -------
    >>> import os, tempfile, numpy as np, soundfile as sf
    >>> root = tempfile.mkdtemp()
    >>> for label in ("dog", "rain"):
    ...     os.makedirs(os.path.join(root, label))
    ...     for i in range(5):
    ...         sf.write(os.path.join(root, label, f"{i}.wav"), np.zeros(8000), 16000)
    >>> task = custom_task("sounds", root)
    >>> task.classes, task.counts(), task.frames
    (['dog', 'rain'], {'train': 6, 'valid': 2, 'test': 2}, 48)
    """
    rows, _ = read_labeled(source, columns)
    several = next((row for row in rows if ";" in row["label"]), None)
    if several:
        raise ManifestError(
            f"{source}: clip {several['wav']} has several labels ({several['label']!r}); "
            "the small-scale protocol measures single-label accuracy"
        )
    assignment, split_note = _custom_split(rows, valid_ratio, test_ratio, seed)
    clips = {}
    for split in SPLITS:
        chosen = [row for row in rows if assignment[row["ID"]] == split]
        clips[split] = ([row["wav"] for row in chosen], [row["label"] for row in chosen])
    notes = [split_note]
    if frames is None:
        durations = [row["duration"] for row in rows if assignment[row["ID"]] == "train"]
        frames, at = input_frames(durations, length_percentile)
        notes.append(
            f"input length {frames} frames: {length_percentile:g}% of the training clips "
            f"last at most {at:.2f} s (longest {max(durations):.2f} s)"
        )
    else:
        notes.append(f"input length {frames} frames as given")
    classes = sorted({row["label"] for row in rows})
    return LabeledTask(name, str(source), clips, classes, frames, notes)


def _custom_split(rows, valid_ratio, test_ratio, seed):
    """``{ID: split}`` of a task of your own, and a note saying how it was made."""
    kind = "speaker-disjoint" if all(row.get("speaker") for row in rows) else "stratified"
    assignment = assign_splits(rows, valid_ratio, test_ratio, seed)
    if not all("split" in row for row in rows):
        partial = any("split" in row for row in rows)
        reason = "a split on some rows only" if partial else "no split column"
        return assignment, (
            f"{reason}: seeded {kind} split, valid {valid_ratio:g}, test {test_ratio:g}, "
            f"seed {seed}"
        )
    given = {row["split"] for row in rows}
    missing, drawn = [], []
    if "valid" not in given:  # assign_splits drew it from train
        missing.append("valid")
        drawn.append(f"valid {valid_ratio or 0.1:g}")
    if "test" not in given:
        train_rows = [row for row in rows if assignment[row["ID"]] == "train"]
        ratio = test_ratio or 0.1
        assignment.update(split_rows(train_rows, valid_ratio=0.0, test_ratio=ratio, seed=seed))
        missing.append("test")
        drawn.append(f"test {ratio:g}")
    if not missing:
        return assignment, "the list's own split"
    return assignment, (
        f"the list's split has no {' and no '.join(missing)} clip: seeded {kind} draw from its "
        f"training clips, {', '.join(drawn)}, seed {seed}"
    )


def check_task(task, shots):
    """Errors for a task the protocol cannot run: an empty split, too few clips per class.

    Arguments
    ---------
    task : LabeledTask
        The task.
    shots : list of int or None
        The ``k`` values (None: every training clip).

    Raises
    ------
    ValueError
        Naming the task, its source and the problem.

    Example
    -------
    >>> clips = {"train": (["a", "b", "c"], ["x", "x", "y"]), "valid": (["d"], ["x"]),
    ...          "test": (["e"], ["y"])}
    >>> check_task(LabeledTask("t", "t.csv", clips, ["x", "y"], 16), [1, None])
    >>> check_task(LabeledTask("t", "t.csv", clips, ["x", "y"], 16), [2])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Task t (t.csv): k=2 needs 2 training clips per class; 'y' (1) has fewer. ...
    """
    where = f"Task {task.name} ({task.source})"
    empty = [split for split, count in task.counts().items() if not count]
    if empty:
        raise ValueError(f"{where}: no {' and no '.join(empty)} clip")
    if len(task.classes) < 2:
        raise ValueError(f"{where}: one class ({task.classes[0]!r}); at least two are needed")
    per_class = {label: 0 for label in task.classes}
    for label in task.clips["train"][1]:
        per_class[label] += 1
    untrained = sorted(label for label, count in per_class.items() if not count)
    if untrained:
        raise ValueError(f"{where}: classes {untrained} have no training clip")
    for k in sorted({k for k in shots if k is not None}, reverse=True):
        small = {label: count for label, count in per_class.items() if count < k}
        if small:
            listed = ", ".join(f"{label!r} ({count})" for label, count in sorted(small.items()))
            raise ValueError(
                f"{where}: k={k} needs {k} training clips per class; {listed} "
                f"{'has' if len(small) == 1 else 'have'} fewer. Lower --shots, add clips, "
                "or use --shots all"
            )


def task_features(task):
    """Every split's fixed-length features, class indices and real frames.

    Arguments
    ---------
    task : LabeledTask
        The task.

    Returns
    -------
    splits : dict
        ``{split: (features (N, frames, F), labels (N,))}`` and
        ``{split_frames: real frames (N,)}``.
    num_classes : int
    """
    splits = {}
    for split in SPLITS:
        paths, labels = task.clips[split]
        bank = ClipBank.from_files(paths, progress=False)
        indices = list(range(len(bank)))
        features = bank.fixed(indices, task.frames)
        splits[split] = (features, torch.tensor([task.classes.index(label) for label in labels]))
        splits[f"{split}_frames"] = bank.real_frames(indices, task.frames)
    return splits, len(task.classes)
