"""Manifests for any audio collection, and mixing several manifests into one.

`prepare_generic` turns a folder of audio files, a CSV list or a JSON list
(SpeechBrain or original SSAST style) into a SpeechBrain manifest.
`mix_manifests` concatenates prepared manifests into one shuffled pretraining
pool, the way the SSAST paper pretrains on AudioSet and LibriSpeech together.

Example
-------
>>> import tempfile, os
>>> import numpy as np, soundfile as sf
>>> root = tempfile.mkdtemp()
>>> os.makedirs(os.path.join(root, "clips", "dogs"))
>>> sf.write(os.path.join(root, "clips", "dogs", "bark.wav"), np.zeros(800), 16000)
>>> out = os.path.join(root, "manifests")
>>> summary = prepare_generic(os.path.join(root, "clips"), out, name="dogs")
>>> [row["ID"] for row in read_manifest(os.path.join(out, "dogs.csv"))]
['dogs_bark']
"""

import csv
import hashlib
import json
import logging
import os
import random
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from .manifest import (
    BAD_AUDIO_LIST,
    REQUIRED_COLUMNS,
    ManifestError,
    PreparationStamp,
    check_class_coverage,
    find_files,
    read_manifest,
    resolved_path,
    unique_ids,
    validate_audio_rows,
    write_manifest_atomic,
)

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
# Columns copied from a CSV or JSON source when present.
OPTIONAL_COLUMNS = ("label", "labels", "speaker")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


class PathEscapeError(ManifestError):
    """A listed audio path lies outside the data root."""


def _absolute(path):
    """Absolute, normalised path (``..`` removed) without resolving symlinks.

    Symlinks are kept so that a data root that links to another disk still
    counts as the root.
    """
    return Path(os.path.abspath(path))


def _resolve_under(value, root, where):
    """Resolve a listed path against ``root`` and refuse it if it leaves ``root``."""
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{where}: expected an audio path, got {value!r}")
    path = _absolute(root / value)  # an absolute ``value`` replaces ``root``
    if not path.is_relative_to(root):
        raise PathEscapeError(
            f"{where}: audio path {value!r} resolves to {path}, outside the data root {root}"
        )
    return path


def _entry_row(entry, root, where):
    """Row (without ID) for one CSV row or JSON entry, with its path relative to ``root``."""
    if not isinstance(entry, dict):
        raise ManifestError(f"{where}: expected an object with a 'wav' or 'path', got {entry!r}")
    value = entry.get("wav") or entry.get("path")
    path = _resolve_under(value, root, where)
    row = {"wav": str(path)}
    for column in OPTIONAL_COLUMNS:
        if entry.get(column) not in (None, ""):
            row[column] = str(entry[column])
    if "labels" in row:  # SSAST lists labels with commas; AudioSet manifests use ';'
        row["labels"] = ";".join(label.strip() for label in row["labels"].split(","))
    if entry.get("duration") not in (None, ""):
        row["duration"] = entry["duration"]
    return row, path.relative_to(root)


def _rows_from_folder(folder, extensions):
    """One row per audio file found recursively under ``folder``, sorted by path.

    Extensions match in any case (``.WAV``, ``.Flac``); hidden files are left out."""
    extensions = sorted({ext.lower() for ext in extensions})
    files = find_files(folder, "**/*", extensions, progress=f"Scanning {folder.name}")
    if not files:
        raise FileNotFoundError(f"No audio files with extensions {sorted(extensions)} in {folder}")
    relative = [path.relative_to(folder) for path in files]
    return [
        {"ID": utt_id, "wav": str(_absolute(path))}
        for utt_id, path in zip(unique_ids(relative), files)
    ]


def _rows_from_entries(entries, root):
    """Rows from ``(where, given_id, entry)`` triples; IDs come from the paths when not given."""
    rows, wheres, relative_of_unnamed = [], [], {}
    for where, given_id, entry in entries:
        row, relative = _entry_row(entry, root, where)
        if given_id in (None, ""):
            relative_of_unnamed[len(rows)] = relative
        else:
            row["ID"] = str(given_id)
        rows.append(row)
        wheres.append(where)
    for position, utt_id in zip(relative_of_unnamed, unique_ids(relative_of_unnamed.values())):
        rows[position]["ID"] = utt_id

    first_use = {}
    for row, where in zip(rows, wheres):
        if row["ID"] in first_use:
            raise ManifestError(f"{where}: ID {row['ID']!r} already used at {first_use[row['ID']]}")
        first_use[row["ID"]] = where
    return [{"ID": row.pop("ID"), **row} for row in rows]


def _csv_entries(csv_path):
    """``(where, ID, row)`` triples of a CSV source with a ``wav`` or ``path`` column.

    A UTF-8 byte-order mark (as spreadsheet programs write) is ignored."""
    with open(csv_path, newline="", encoding="utf-8-sig") as csv_file:
        reader = csv.DictReader(csv_file, skipinitialspace=True)
        header = reader.fieldnames or []
        if "wav" not in header and "path" not in header:
            raise ManifestError(f"{csv_path} needs a 'wav' or 'path' column; found {header}")
        return [
            (f"{csv_path}, line {line}", row.get("ID"), row)
            for line, row in enumerate(reader, start=2)
        ]


def _json_entries(json_path):
    """``(where, ID, entry)`` triples of a SpeechBrain-style or SSAST-style JSON source."""
    with open(json_path, encoding="utf-8-sig") as json_file:
        data = json.load(json_file)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        # Original SSAST: {"data": [{"wav": ..., "labels": ...}, ...]}
        return [(f"{json_path}, entry {i}", None, entry) for i, entry in enumerate(data["data"])]
    if isinstance(data, dict) and all(isinstance(entry, dict) for entry in data.values()):
        # SpeechBrain: {utt_id: {"wav": ..., "duration": ...}, ...}
        return [(f"{json_path}, entry {key!r}", key, entry) for key, entry in data.items()]
    raise ManifestError(
        f"{json_path} is neither SpeechBrain style ({{id: {{'wav': ...}}}}) "
        "nor SSAST style ({'data': [{'wav': ...}]})"
    )


def prepare_generic(
    source,
    save_folder,
    name,
    skip_prep=False,
    extensions=AUDIO_EXTENSIONS,
    on_bad_audio="error",
    data_root=None,
    force=False,
):
    """Write ``<save_folder>/<name>.csv`` for a folder, CSV or JSON of audio files.

    * A folder is scanned recursively for ``extensions``; IDs come from the
      paths relative to it (see `ssast_sb.data.manifest.unique_ids`).
    * A CSV needs a ``wav`` or ``path`` column and may have ``ID``,
      ``duration``, ``label``, ``labels`` and ``speaker`` columns.
    * A JSON is either SpeechBrain style ``{id: {"wav" or "path": ..., ...}}``
      or SSAST style ``{"data": [{"wav": ..., "labels": "m1,m2"}, ...]}``.

    Relative paths in a CSV or JSON are resolved against ``data_root`` (by
    default the folder of that file), and every path must stay under it: a
    path that escapes through ``..`` or points elsewhere is refused, so a
    manifest cannot pull in files from outside the dataset. Durations are always
    measured from the audio. The manifest is reused when its stamp
    ``<name>.prepared.json`` matches the source (for a CSV or JSON, its content
    too), ``extensions``, ``data_root`` and ``on_bad_audio`` (see
    `ssast_sb.data.manifest.PreparationStamp`); files added to a source folder
    need ``force=True``. Under DDP wrap the call in
    ``speechbrain.utils.distributed.run_on_main``.

    Arguments
    ---------
    source : str or pathlib.Path
        A folder, a ``.csv`` file or a ``.json`` file.
    save_folder : str or pathlib.Path
        Where the manifest is written.
    name : str
        Manifest name (file name without ``.csv``); letters, digits, ``_.-``.
    skip_prep : bool
        If True, do nothing.
    extensions : sequence of str
        File extensions picked up when ``source`` is a folder, in any case.
    on_bad_audio : {"error", "skip"}
        What to do with a file that is missing, unreadable, truncated or empty
        (see `ssast_sb.data.manifest.validate_audio_rows`).
    data_root : str or pathlib.Path or None
        Root for paths in a CSV or JSON source; default: the file's folder.
    force : bool
        Rewrite the manifest even when its stamp matches.

    Returns
    -------
    dict or None
        The counts of `validate_audio_rows`; None when skipped.

    Raises
    ------
    PathEscapeError
        When a listed path lies outside the data root, naming the row.

    Example
    -------
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> _ = open(os.path.join(folder, "list.csv"), "w").write("wav\\n../../etc/passwd\\n")
    >>> try:
    ...     prepare_generic(os.path.join(folder, "list.csv"), folder, name="bad")
    ... except PathEscapeError as err:
    ...     print("outside the data root" in str(err))
    True
    """
    if skip_prep:
        logger.info("Skipping preparation of %s (skip_prep=True)", name)
        return None
    if not _SAFE_NAME.fullmatch(name):
        raise ValueError(f"Manifest name {name!r} must use only letters, digits and _.-")
    source, save_folder = _absolute(source), Path(save_folder)
    output = save_folder / f"{name}.csv"
    stamp = _generic_stamp(source, output, name, extensions, on_bad_audio, data_root)
    if stamp.is_current(force):
        return None
    stamp.invalidate()

    rows = _source_rows(source, extensions, data_root)
    listed = Counter(row["label"] for row in rows if "label" in row)
    rows, summary = validate_audio_rows(
        rows, on_bad_audio, report_path=save_folder / BAD_AUDIO_LIST
    )
    if listed:  # a labelled list: which labels lost files
        check_class_coverage(
            name,
            str(source),
            {name: listed},
            {name: Counter(row["label"] for row in rows if "label" in row)},
            required={},
        )
    extra = [column for column in OPTIONAL_COLUMNS if any(column in row for row in rows)]
    write_manifest_atomic(rows, output, [*REQUIRED_COLUMNS, *extra])
    hours = sum(row["duration"] for row in rows) / 3600
    logger.info("%s: %d files, %.2f h -> %s", name, len(rows), hours, output)
    stamp.write(summary)
    return summary


def _sha256_of_file(path):
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _generic_stamp(source, output, name, extensions, on_bad_audio, data_root):
    """The stamp of one manifest; a CSV or JSON source is recorded with its content digest."""
    options = {
        "source": resolved_path(source),
        "source_sha256": _sha256_of_file(source) if source.is_file() else None,
        "extensions": sorted({ext.lower() for ext in extensions}) if source.is_dir() else None,
        "data_root": resolved_path(data_root) if data_root is not None else None,
        "on_bad_audio": on_bad_audio,
    }
    return PreparationStamp(
        output.parent, name, prepare_generic, options, [output], f"{name} manifest"
    )


def _source_rows(source, extensions, data_root):
    """Rows (without measured duration) of a folder, CSV or JSON source."""
    if source.is_dir():
        return _rows_from_folder(source, extensions)
    if not source.is_file():
        raise FileNotFoundError(f"Source not found: {source}")
    root = _absolute(data_root) if data_root is not None else source.parent
    if source.suffix.lower() == ".csv":
        entries = _csv_entries(source)
    elif source.suffix.lower() == ".json":
        entries = _json_entries(source)
    else:
        raise ValueError(f"Source {source} must be a folder, a .csv or a .json file")
    if not entries:
        raise ManifestError(f"{source} lists no audio files")
    return _rows_from_entries(entries, root)


def _named_sources(manifest_paths):
    """``[(name, path)]`` of the sources of a mix; names must be unique."""
    if isinstance(manifest_paths, Mapping):
        named_paths = list(manifest_paths.items())
    else:
        named_paths = [(Path(path).stem, path) for path in manifest_paths]
    names = [name for name, _ in named_paths]
    if not names:
        raise ValueError("mix_manifests needs at least one manifest")
    if len(set(names)) != len(names):
        raise ValueError(f"Source names must be unique; got {names}. Pass a {{name: path}} dict.")
    return named_paths


def _mix_stamp(named_paths, output_path, seed):
    """The stamp of a mix: each source's path and content digest, and the seed."""
    sources = {
        name: {"path": resolved_path(path), "sha256": _sha256_of_file(path)}
        for name, path in named_paths
    }
    output_path = Path(output_path)
    return PreparationStamp(
        output_path.parent,
        output_path.stem,
        mix_manifests,
        {"sources": sources, "seed": seed},
        [output_path],
        f"mixed manifest {output_path.name}",
    )


def mix_manifests(manifest_paths, output_path, seed=0, force=False):
    """Concatenate prepared manifests into one shuffled manifest.

    Each source is named after its file (``librispeech.csv`` -> ``librispeech``)
    unless a mapping ``{name: path}`` is given. IDs become ``<name>__<ID>`` so
    they stay unique, a ``source`` column records the origin, and the rows are
    shuffled with ``random.Random(seed)``, so the same inputs and seed always
    give the same file. Extra columns missing from a source are left empty. The
    output is written atomically, with the stamp ``<output stem>.prepared.json``;
    it is reused when the stamp matches the sources (paths and content) and the
    seed.

    Arguments
    ---------
    manifest_paths : sequence of paths or mapping of name -> path
        The manifests to mix.
    output_path : str or pathlib.Path
        The mixed manifest.
    seed : int
        Seed of the shuffle.
    force : bool
        Rewrite the output even when its stamp matches.

    Returns
    -------
    dict
        Number of rows taken from each source.

    Example
    -------
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> for name in ("speech", "events"):
    ...     rows = [{"ID": str(i), "duration": 1.0, "wav": f"/{name}/{i}.wav"} for i in range(2)]
    ...     write_manifest_atomic(rows, os.path.join(folder, f"{name}.csv"), REQUIRED_COLUMNS)
    >>> mix_manifests([os.path.join(folder, "speech.csv"), os.path.join(folder, "events.csv")],
    ...               os.path.join(folder, "mix.csv"))
    {'speech': 2, 'events': 2}
    >>> sorted(row["ID"] for row in read_manifest(os.path.join(folder, "mix.csv")))[:2]
    ['events__0', 'events__1']
    """
    named_paths = _named_sources(manifest_paths)
    for _, path in named_paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"Manifest not found: {path}")
    stamp = _mix_stamp(named_paths, output_path, seed)
    if stamp.is_current(force):
        return stamp.recorded_counts()
    stamp.invalidate()

    rows, extra, counts = [], [], {}
    for name, path in named_paths:
        source_rows = read_manifest(path)
        for row in source_rows:
            extra.extend(col for col in row if col not in REQUIRED_COLUMNS and col not in extra)
            rows.append({**row, "ID": f"{name}__{row['ID']}", "source": name})
        counts[name] = len(source_rows)
    random.Random(seed).shuffle(rows)
    fieldnames = [*REQUIRED_COLUMNS, *(col for col in extra if col != "source"), "source"]
    write_manifest_atomic(rows, output_path, fieldnames)
    logger.info("Mixed %d rows from %s -> %s", len(rows), counts, output_path)
    stamp.write(counts)
    return counts
