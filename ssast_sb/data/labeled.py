"""Manifests for your own labeled audio: a folder per class, or a CSV or JSON list.

`prepare_labeled` reads either layout, checks the audio, splits it into
train, valid and test (the list's own ``split`` column when it has one,
otherwise a seeded stratified split, speaker-disjoint when speakers are known)
and writes SpeechBrain manifests with the columns ``ID,duration,wav,label``
(plus ``speaker`` when known). The split is written to ``split.csv`` with a
preparation stamp, so a rerun with the same options reuses it exactly.
`read_labeled` (the clips, their audio checked) and `assign_splits` (their
split) are its two steps, for callers that keep the clips in memory.

Layouts::

    <data>/<label>/**/*.{wav,flac,ogg,mp3}          # one folder per class
    list.csv   path,label[,split][,speaker]          # or a JSON list of such objects

In a list, several labels of one clip are separated by ``;`` (a multi-label task);
relative paths are relative to the list's folder.

Example
-------
>>> import tempfile, os
>>> import numpy as np, soundfile as sf
>>> root = tempfile.mkdtemp()
>>> for label in ("dog", "rain"):
...     os.makedirs(os.path.join(root, "clips", label))
...     for i in range(5):
...         sf.write(os.path.join(root, "clips", label, f"{i}.wav"), np.zeros(1600), 16000)
>>> summary = prepare_labeled(os.path.join(root, "clips"), os.path.join(root, "out"))
>>> summary["classes"], [summary["splits"][split] for split in SPLITS]
(['dog', 'rain'], [6, 2, 2])
"""

import csv
import json
import logging
import random
from collections import defaultdict
from pathlib import Path

from ssast_sb.errors import OptionError

from .generic import AUDIO_EXTENSIONS
from .manifest import (
    BAD_AUDIO_LIST,
    ManifestError,
    PreparationStamp,
    find_files,
    read_manifest,
    resolved_path,
    unique_ids,
    validate_audio_rows,
    write_manifest_atomic,
)
from .options import MissingDataError

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
#: Spellings of the split names accepted in a ``split`` column.
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "validation": "valid",
    "val": "valid",
    "dev": "valid",
    "test": "test",
    "testing": "test",
    "eval": "test",
    "evaluation": "test",
}
#: Default column names of a CSV or JSON list.
DEFAULT_COLUMNS = {"path": "path", "label": "label", "speaker": "speaker", "split": "split"}
FIELDNAMES = ["ID", "duration", "wav", "label"]


def _rows_from_class_folders(folder, extensions):
    """One row per audio file under ``folder/<label>/``; the sub-folder names are the labels."""
    class_folders = sorted(
        path for path in folder.iterdir() if path.is_dir() and not path.name.startswith(".")
    )
    loose = find_files(folder, "*", extensions)
    if loose:
        logger.warning(
            "%d audio file(s) directly in %s are in no class folder and are left out, e.g. %s",
            len(loose),
            folder,
            loose[0].name,
        )
    rows, relative = [], []
    for class_folder in class_folders:
        files = find_files(class_folder, "**/*", extensions)
        if not files:
            logger.warning("Class folder %s holds no audio file; it is no class", class_folder)
        for path in files:
            rows.append({"wav": str(path.absolute()), "label": class_folder.name})
            relative.append(path.relative_to(folder))
    if not rows:
        raise MissingDataError(
            f"No audio in {folder} (--data): expected one sub-folder per class, "
            f"{folder}/<label>/*.{{wav,flac,ogg,mp3}}; or pass as --data a CSV/JSON list of "
            "path,label."
        )
    for row, utt_id in zip(rows, unique_ids(relative)):
        row["ID"] = utt_id
    return rows


def _list_entries(source):
    """The entries of a CSV or JSON list, with the column names found, and where each is."""
    if source.suffix.lower() == ".csv":
        with open(source, newline="", encoding="utf-8-sig") as stream:
            reader = csv.DictReader(stream, skipinitialspace=True)
            entries = list(reader)
            columns = list(reader.fieldnames or [])
        return entries, columns, [f"{source}, line {line}" for line in range(2, len(entries) + 2)]
    if source.suffix.lower() == ".json":
        with open(source, encoding="utf-8-sig") as stream:
            data = json.load(stream)
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]  # the original SSAST layout
        elif isinstance(data, dict):
            data = [dict(entry, ID=key) for key, entry in data.items()]  # SpeechBrain's
        if not isinstance(data, list) or not all(isinstance(entry, dict) for entry in data):
            raise ManifestError(f"{source} must hold a list of objects with a path and a label")
        columns = sorted({key for entry in data for key in entry})
        return data, columns, [f"{source}, entry {index}" for index in range(len(data))]
    raise OptionError(
        f"--data {source} is neither a folder nor a .csv or .json list: pass a folder with one "
        "sub-folder per class, or a CSV/JSON list with a path and a label column."
    )


def _rows_from_list(source, columns, separator):
    """Rows of a CSV/JSON list, with its optional speaker and split columns."""
    entries, found, wheres = _list_entries(source)
    path_column = columns["path"] if columns["path"] in found else "wav"
    missing = [repr(columns["path"])] if path_column not in found else []
    missing += [repr(columns["label"])] if columns["label"] not in found else []
    if missing:
        raise ManifestError(
            f"{source} has no {' and no '.join(missing)} column (columns found: {found}); "
            'name yours with --columns "{path: <column>, label: <column>}"'
        )
    rows, relative = [], []
    for entry, where in zip(entries, wheres):
        value = str(entry.get(path_column) or "").strip()
        labels = [part.strip() for part in str(entry.get(columns["label"]) or "").split(separator)]
        labels = [label for label in labels if label]
        if not value or not labels:
            raise ManifestError(f"{where}: a path and a label are needed, got {entry}")
        path = Path(value) if Path(value).is_absolute() else source.parent / value
        row = {"wav": str(path.absolute()), "label": separator.join(labels)}
        for key in ("speaker", "split"):
            if entry.get(columns[key]) not in (None, ""):
                row[key] = str(entry[columns[key]]).strip()
        if "split" in row:
            if row["split"].lower() not in SPLIT_NAMES:
                raise ManifestError(
                    f"{where}: split {row['split']!r} is none of {sorted(set(SPLIT_NAMES))}"
                )
            row["split"] = SPLIT_NAMES[row["split"].lower()]
        if entry.get("ID") not in (None, ""):
            row["ID"] = str(entry["ID"])
        rows.append(row)
        relative.append(value)
    for row, utt_id in zip(rows, unique_ids(relative)):
        row.setdefault("ID", utt_id)
    if not rows:
        raise ManifestError(f"{source} lists no clips")
    return rows


def _shares(count, valid_ratio, test_ratio):
    """How many of ``count`` items go to valid and test (at least one each when asked for)."""
    valid = max(1, round(count * valid_ratio)) if valid_ratio > 0 else 0
    test = max(1, round(count * test_ratio)) if test_ratio > 0 else 0
    return valid, test


def _split_at(position, valid, test):
    """The split of the ``position``-th shuffled item: the first ``test`` are test, then valid."""
    if position < test:
        return "test"
    return "valid" if position < test + valid else "train"


def _check_class_sizes(counts, valid_ratio, test_ratio, unit="clips"):
    """A class with too few clips (or speakers) for the split is an error naming it."""
    needed = 1 + (valid_ratio > 0) + (test_ratio > 0)
    small = {label: count for label, count in counts.items() if count < needed}
    if small:
        listed = ", ".join(f"{label!r} ({count})" for label, count in sorted(small.items()))
        raise ManifestError(
            f"A train/valid/test split needs at least {needed} {unit} per class; {listed} "
            f"{'has' if len(small) == 1 else 'have'} fewer. Add {unit}, drop the class, give the "
            "list a split column, or lower --valid_ratio/--test_ratio"
        )


def split_rows(rows, valid_ratio=0.1, test_ratio=0.1, seed=0):
    """A seeded stratified split: each class (its first label) split in the same proportions.

    With a ``speaker`` in every row, the split is speaker-disjoint instead: the
    speakers are shuffled and split in the given shares, each clip goes with its
    speaker, and every class must then have clips in every split (an error names
    the classes that do not).

    Arguments
    ---------
    rows : list of dict
        With ``ID`` and ``label`` (and optionally ``speaker``).
    valid_ratio, test_ratio : float
        Shares of valid and test.
    seed : int
        Seed of the shuffle.

    Returns
    -------
    dict
        ``{ID: split}``.

    Raises
    ------
    ManifestError
        When a class has fewer clips (or speakers) than the split needs.

    Example
    -------
    >>> from collections import Counter
    >>> rows = [{"ID": f"{c}{i}", "label": c} for c in "ab" for i in range(10)]
    >>> Counter(split_rows(rows, 0.2, 0.1).values())
    Counter({'train': 14, 'valid': 4, 'test': 2})
    """
    by_speaker = all(row.get("speaker") for row in rows)
    if not by_speaker:
        groups = defaultdict(list)
        for row in rows:
            groups[row["label"].split(";")[0]].append(row["ID"])
        _check_class_sizes(
            {label: len(ids) for label, ids in groups.items()}, valid_ratio, test_ratio
        )
        assignment = {}
        for label in sorted(groups):
            ids = sorted(groups[label])
            random.Random(f"{seed}:{label}").shuffle(ids)
            valid, test = _shares(len(ids), valid_ratio, test_ratio)
            for position, utt_id in enumerate(ids):
                assignment[utt_id] = _split_at(position, valid, test)
        return assignment
    return _speaker_disjoint_split(rows, valid_ratio, test_ratio, seed)


#: Speaker shuffles tried for a split where every class reaches every split.
SPEAKER_SHUFFLES = 200


def _speaker_disjoint_split(rows, valid_ratio, test_ratio, seed):
    """Speakers shuffled and split in the given shares; every clip follows its speaker.

    Shuffles are drawn in a fixed order from ``seed`` until one gives every class
    clips in every split; the first shuffle's gaps are the error when none does.
    """
    speakers = sorted({row["speaker"] for row in rows})
    _check_class_sizes({"(all classes)": len(speakers)}, valid_ratio, test_ratio, "speakers")
    valid, test = _shares(len(speakers), valid_ratio, test_ratio)
    first_gaps = None
    for attempt in range(SPEAKER_SHUFFLES):
        order = list(speakers)
        random.Random(f"{seed}:speakers:{attempt}").shuffle(order)
        split_of = {speaker: _split_at(index, valid, test) for index, speaker in enumerate(order)}
        assignment = {row["ID"]: split_of[row["speaker"]] for row in rows}
        gaps = _coverage_gaps(rows, assignment)
        if not gaps:
            return assignment
        first_gaps = first_gaps or gaps
    listed = ", ".join(
        f"{label!r} (none in {'/'.join(s)})" for label, s in sorted(first_gaps.items())
    )
    raise ManifestError(
        f"No speaker-disjoint split of {len(speakers)} speakers gives every class clips in every "
        f"split ({SPEAKER_SHUFFLES} shuffles tried); e.g. {listed}. Give the list a split "
        "column, add speakers to these classes, or lower --valid_ratio/--test_ratio"
    )


def _coverage_gaps(rows, assignment):
    """``{label: splits without a clip of it}`` of a split, for the classes with gaps."""
    seen = defaultdict(set)
    for row in rows:
        for label in row["label"].split(";"):
            seen[label].add(assignment[row["ID"]])
    used = set(assignment.values())
    return {label: sorted(used - splits) for label, splits in seen.items() if used - splits}


def _given_split(rows, valid_ratio, seed):
    """The list's own split column; a missing valid split is drawn from train (stratified)."""
    assignment = {row["ID"]: row["split"] for row in rows}
    present = set(assignment.values())
    if "train" not in present:
        raise ManifestError("The split column names no training clip (split 'train')")
    if "valid" not in present:
        train_rows = [row for row in rows if row["split"] == "train"]
        ratio = valid_ratio or 0.1
        drawn = split_rows(train_rows, valid_ratio=ratio, test_ratio=0.0, seed=seed)
        assignment.update(drawn)
        logger.info(
            "The split column has no valid split: %d training clips drawn as valid (%.0f%%)",
            sum(split == "valid" for split in drawn.values()),
            100 * ratio,
        )
    return assignment


def read_labeled(
    source,
    columns=None,
    label_separator=";",
    extensions=AUDIO_EXTENSIONS,
    on_bad_audio="error",
    report_path=None,
):
    """The clips of a labeled folder or list, their audio checked, nothing written.

    Arguments
    ---------
    source : str or pathlib.Path
        A folder with one sub-folder per class, or a ``.csv``/``.json`` list.
    columns : dict, optional
        Column names of a list: ``path``, ``label``, ``speaker``, ``split``
        (:data:`DEFAULT_COLUMNS`; a ``wav`` column is taken when there is no ``path``).
    label_separator : str
        Separator of several labels of one clip.
    extensions : sequence of str
        Audio extensions of a folder (matched in any case).
    on_bad_audio : {"error", "skip"}
        What to do with missing, unreadable, truncated or empty files.
    report_path : str or pathlib.Path, optional
        Where every bad file is listed when the error cannot name them all.

    Returns
    -------
    rows : list of dict
        ``ID``, ``wav`` (absolute), ``label``, ``duration`` (seconds), and
        ``speaker`` and ``split`` where the list gives them; in the order of the
        list, or of the sorted class folders.
    checked : dict
        The audio check's counts (:func:`~ssast_sb.data.manifest.validate_audio_rows`).

    Raises
    ------
    ssast_sb.data.options.MissingDataError
        A ``FileNotFoundError`` naming ``--data`` when ``source`` does not exist, or a
        folder holds no audio in class folders.
    ssast_sb.errors.OptionError
        When ``source`` is a file but not a .csv or .json list.
    ManifestError
        When a list lacks a column, a row lacks a path or label, or a split is unknown.

    Example
    -------
    >>> import tempfile, os
    >>> import numpy as np, soundfile as sf
    >>> root = tempfile.mkdtemp()
    >>> for label in ("dog", "rain"):
    ...     os.makedirs(os.path.join(root, label))
    ...     sf.write(os.path.join(root, label, "0.wav"), np.zeros(1600), 16000)
    >>> rows, checked = read_labeled(root)
    >>> [(row["ID"], row["label"], row["duration"]) for row in rows], checked["kept"]
    ([('dog_0', 'dog', 0.1), ('rain_0', 'rain', 0.1)], 2)
    """
    source = Path(source)
    columns = {**DEFAULT_COLUMNS, **(columns or {})}
    if source.is_dir():
        rows = _rows_from_class_folders(source, extensions)
    elif source.is_file():
        rows = _rows_from_list(source, columns, label_separator)
    else:
        raise MissingDataError(
            f"Labeled audio not found: --data {source} does not exist. Pass a folder with one "
            "sub-folder per class, or a .csv or .json list with a path and a label column."
        )
    return validate_audio_rows(rows, on_bad_audio, report_path=report_path)


def assign_splits(rows, valid_ratio=0.1, test_ratio=0.1, seed=0):
    """The split of every clip: the list's own ``split`` column, or a seeded split.

    When every row has a ``split``, it is kept (a missing valid split is drawn
    from train, stratified, ``valid_ratio`` of it); otherwise :func:`split_rows`
    splits all the rows (a warning says so when only some rows have a split).

    Arguments
    ---------
    rows : list of dict
        With ``ID`` and ``label``, optionally ``speaker`` and ``split``
        (as :func:`read_labeled` returns them).
    valid_ratio, test_ratio : float
        Shares of the seeded split.
    seed : int
        Seed of the split.

    Returns
    -------
    dict
        ``{ID: split}``.

    Example
    -------
    >>> rows = [{"ID": f"{c}{i}", "label": c, "split": "train"} for c in "ab" for i in range(9)]
    >>> rows += [{"ID": "t", "label": "a", "split": "test"}]
    >>> assignment = assign_splits(rows, valid_ratio=0.2)
    >>> sorted(assignment.values()).count("valid"), assignment["t"]
    (4, 'test')
    """
    if all("split" in row for row in rows):
        return _given_split(rows, valid_ratio, seed)
    if any("split" in row for row in rows):
        logger.warning("Some rows have a split and some do not: the split column is ignored")
    return split_rows(rows, valid_ratio, test_ratio, seed)


def labeled_manifests(save_folder):
    """Paths of the train, valid and test manifests :func:`prepare_labeled` writes.

    Example
    -------
    >>> labeled_manifests("out")["valid"]
    'out/valid.csv'
    """
    return {split: str(Path(save_folder) / f"{split}.csv") for split in SPLITS}


def prepare_labeled(
    source,
    save_folder,
    columns=None,
    label_separator=";",
    valid_ratio=0.1,
    test_ratio=0.1,
    seed=0,
    extensions=AUDIO_EXTENSIONS,
    on_bad_audio="error",
    force=False,
):
    """Writes train/valid/test manifests and ``split.csv`` for a labeled folder or list.

    Arguments
    ---------
    source : str or pathlib.Path
        A folder with one sub-folder per class, or a ``.csv``/``.json`` list.
    save_folder : str or pathlib.Path
        Where the manifests, ``split.csv`` and the stamp go.
    columns : dict, optional
        Column names of a list: ``path``, ``label``, ``speaker``, ``split``
        (:data:`DEFAULT_COLUMNS`; a ``wav`` column is taken when there is no ``path``).
    label_separator : str
        Separator of several labels of one clip.
    valid_ratio, test_ratio : float
        Shares of the seeded split, when the list has no ``split`` column.
    seed : int
        Seed of the split.
    extensions : sequence of str
        Audio extensions of a folder (matched in any case).
    on_bad_audio : {"error", "skip"}
        What to do with missing, unreadable, truncated or empty files.
    force : bool
        Rebuild even when the stamp matches.

    Returns
    -------
    dict
        ``classes`` (sorted), ``multi_label``, ``splits`` (clips per split),
        ``train_durations`` (seconds) and ``has_speakers``.
    """
    source, save_folder = Path(source), Path(save_folder)
    columns = {**DEFAULT_COLUMNS, **(columns or {})}
    manifests = labeled_manifests(save_folder)
    options = {
        "source": resolved_path(source),
        "columns": columns,
        "label_separator": label_separator,
        "valid_ratio": valid_ratio,
        "test_ratio": test_ratio,
        "seed": seed,
        "extensions": sorted(extensions),
        "on_bad_audio": on_bad_audio,
    }
    split_csv = save_folder / "split.csv"
    stamp = PreparationStamp(
        save_folder,
        "labeled",
        prepare_labeled,
        options,
        [*manifests.values(), split_csv],
        "labeled-audio manifests",
    )
    if stamp.is_current(force):
        return summarize_labeled(save_folder, label_separator)
    stamp.invalidate()
    rows, checked = read_labeled(
        source, columns, label_separator, extensions, on_bad_audio, save_folder / BAD_AUDIO_LIST
    )
    assignment = assign_splits(rows, valid_ratio, test_ratio, seed)
    has_speakers = all(row.get("speaker") for row in rows)
    fieldnames = FIELDNAMES + (["speaker"] if has_speakers else [])
    for split, path in manifests.items():
        chosen = [
            {key: row[key] for key in fieldnames} for row in rows if assignment[row["ID"]] == split
        ]
        write_manifest_atomic(chosen, path, fieldnames)
    split_rows_written = [
        {
            "ID": row["ID"],
            "duration": row["duration"],
            "wav": row["wav"],
            "split": assignment[row["ID"]],
        }
        for row in rows
    ]
    write_manifest_atomic(split_rows_written, split_csv, ["ID", "duration", "wav", "split"])
    summary = summarize_labeled(save_folder, label_separator)
    stamp.write({"audio": checked, "splits": summary["splits"], "classes": len(summary["classes"])})
    logger.info(
        "Labeled audio %s: %d classes, %s clips (train/valid/test) -> %s",
        source,
        len(summary["classes"]),
        "/".join(str(summary["splits"][split]) for split in SPLITS),
        save_folder,
    )
    return summary


def summarize_labeled(save_folder, label_separator=";"):
    """What the manifests of :func:`prepare_labeled` hold (see its Returns).

    Arguments
    ---------
    save_folder : str or pathlib.Path
        Where they are.
    label_separator : str
        Separator of several labels.

    Returns
    -------
    dict
    """
    manifests = {
        split: read_manifest(path) for split, path in labeled_manifests(save_folder).items()
    }
    labels = [row["label"].split(label_separator) for split in SPLITS for row in manifests[split]]
    classes = sorted({label for row in labels for label in row})
    train_classes = {
        label for row in manifests["train"] for label in row["label"].split(label_separator)
    }
    missing = sorted(set(classes) - train_classes)
    if missing:
        raise ManifestError(
            f"Classes {missing} have no training clip in {save_folder}/train.csv; they cannot "
            "be learned. Move some of their clips to train or drop them"
        )
    return {
        "classes": classes,
        "multi_label": any(len(row) > 1 for row in labels),
        "splits": {split: len(manifests[split]) for split in SPLITS},
        "train_durations": [row["duration"] for row in manifests["train"]],
        "has_speakers": bool(manifests["train"]) and "speaker" in manifests["train"][0],
    }
