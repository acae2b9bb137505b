"""SpeechBrain CSV manifests: writing, reading and checking them.

A manifest is a CSV file with the header ``ID,duration,wav`` followed by any
extra columns (``label``, ``speaker``, ``source``, ...). ``wav`` holds an
absolute path and ``duration`` is in seconds, so the file can be handed to
``speechbrain.dataio.dataset.DynamicItemDataset.from_csv`` as it is.

Example
-------
>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "toy.csv")
>>> rows = [{"ID": "a", "duration": 1.5, "wav": "/data/a.wav"}]
>>> write_manifest_atomic(rows, path, ["ID", "duration", "wav"])
>>> read_manifest(path)
[{'ID': 'a', 'duration': 1.5, 'wav': '/data/a.wav'}]
"""

import csv
import hashlib
import logging
import re
from collections import Counter
from pathlib import Path, PurePath

from tqdm import tqdm

from ssast_sb.fileio import atomic_open

from .audio import (
    AudioDecodeError,
    AudioError,
    AudioFileMissingError,
    EmptyAudioError,
    NonFiniteAudioError,
    audio_info,
    load_audio,
)

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("ID", "duration", "wav")
BAD_AUDIO_POLICIES = ("error", "skip")

# Summary keys of `validate_audio_rows`, one per kind of problem.
_PROBLEM_OF_ERROR = (
    (AudioFileMissingError, "missing"),
    (EmptyAudioError, "empty"),
    (NonFiniteAudioError, "non_finite"),
    (AudioDecodeError, "unreadable"),
)


class ManifestError(ValueError):
    """A manifest (or a row meant for one) is malformed."""


def write_manifest_atomic(rows, path, fieldnames):
    """Write a manifest so that readers only ever see a complete file.

    The CSV is written through `atomic_open`: if anything fails on the way (a bad
    row, a full disk, Ctrl-C) there is no new file and an existing ``path`` is left
    untouched, so an interrupted preparation is simply run again instead of
    training on half a manifest.

    Arguments
    ---------
    rows : iterable of dict
        One dict per utterance; keys must be a subset of ``fieldnames``.
    path : str or pathlib.Path
        Destination CSV file; its folder is created if needed.
    fieldnames : sequence of str
        Column order; must contain ``ID``, ``duration`` and ``wav``.

    Raises
    ------
    ManifestError
        When a required column is absent, a row has unknown keys or an ID repeats.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "m.csv")
    >>> rows = [{"ID": "u1", "duration": 2.0, "wav": "/x/u1.flac", "speaker": "s1"}]
    >>> write_manifest_atomic(rows, path, ["ID", "duration", "wav", "speaker"])
    >>> print(open(path).read().strip())
    ID,duration,wav,speaker
    u1,2.0,/x/u1.flac,s1
    """
    fieldnames = list(fieldnames)
    missing = [name for name in REQUIRED_COLUMNS if name not in fieldnames]
    if missing:
        raise ManifestError(f"Manifest {path} needs the column(s) {missing}; got {fieldnames}")
    with atomic_open(path, newline="") as csv_file:
        writer = csv.DictWriter(csv_file, fieldnames=fieldnames)
        writer.writeheader()
        seen_ids = set()
        for row in rows:
            unknown = set(row) - set(fieldnames)
            if unknown:
                raise ManifestError(
                    f"Row {row.get('ID')!r} has columns {sorted(unknown)} "
                    f"not in the header {fieldnames} of {path}"
                )
            if row["ID"] in seen_ids:
                raise ManifestError(f"Duplicate ID {row['ID']!r} while writing {path}")
            seen_ids.add(row["ID"])
            writer.writerow(row)


def read_manifest(path):
    """Read a manifest written by `write_manifest_atomic`.

    Arguments
    ---------
    path : str or pathlib.Path
        The CSV file.

    Returns
    -------
    list of dict
        One dict per row, in file order; ``duration`` is converted to float,
        every other value stays a string.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ManifestError
        When a required column is absent or a duration is not a number.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "m.csv")
    >>> _ = open(path, "w").write("ID,duration,wav,label\\nu1,0.5,/x/u1.wav,dog\\n")
    >>> read_manifest(path)[0]["duration"]
    0.5
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Manifest not found: {path}")
    with open(path, newline="", encoding="utf-8") as csv_file:
        reader = csv.DictReader(csv_file)
        header = reader.fieldnames or []
        missing = [name for name in REQUIRED_COLUMNS if name not in header]
        if missing:
            raise ManifestError(f"Manifest {path} lacks the column(s) {missing}")
        rows = []
        for line_number, row in enumerate(reader, start=2):
            try:
                row["duration"] = float(row["duration"])
            except (TypeError, ValueError) as err:
                raise ManifestError(
                    f"{path}, line {line_number}: duration {row['duration']!r} is not a number"
                ) from err
            rows.append(row)
    return rows


def manifests_exist(paths):
    """Tell whether every manifest in ``paths`` is already on disk.

    Arguments
    ---------
    paths : iterable of str or pathlib.Path
        The manifest files a preparation step would write.

    Returns
    -------
    bool
        True when all of them exist (an empty list counts as not done).

    Example
    -------
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> manifests_exist([os.path.join(folder, "train.csv")])
    False
    """
    paths = list(paths)
    return bool(paths) and all(Path(path).is_file() for path in paths)


def _problem_name(error):
    """Map an `AudioError` to the summary key it is counted under."""
    for error_type, name in _PROBLEM_OF_ERROR:
        if isinstance(error, error_type):
            return name
    return "unreadable"


def _row_duration_problem(row):
    """Return a message when the row carries a duration that is not a positive number."""
    value = row.get("duration")
    if value is None or value == "":
        return None
    try:
        duration = float(value)
    except (TypeError, ValueError):
        return f"duration {value!r} is not a number"
    if not duration > 0:  # also catches NaN
        return f"duration {value!r} is not positive"
    return None


def validate_audio_rows(rows, on_bad_audio="error", decode_samples=False):
    """Check that every row points to usable audio, and fill in its duration.

    Each file must exist and its header must decode (`audio_info`); a duration
    already in the row must be a positive number. The returned rows carry the
    duration measured from the file, in seconds.

    Arguments
    ---------
    rows : iterable of dict
        Rows with at least ``ID`` and ``wav``; ``duration`` is optional.
    on_bad_audio : {"error", "skip"}
        ``"error"`` raises on the first bad row; ``"skip"`` logs a warning,
        drops the row and counts it in the summary.
    decode_samples : bool
        Also decode every file completely (`load_audio`), which catches truncated
        data and NaN samples but reads the whole corpus: off by default.

    Returns
    -------
    good_rows : list of dict
        Copies of the usable rows with ``duration`` set from the file.
    summary : dict
        ``total`` and ``kept`` counts and one count per problem: ``missing``,
        ``unreadable``, ``empty``, ``non_finite``, ``bad_duration``.

    Raises
    ------
    AudioError or ManifestError
        Under ``on_bad_audio="error"``, naming the row, the file and the problem.

    Example
    -------
    >>> import tempfile, os
    >>> import numpy as np, soundfile as sf
    >>> folder = tempfile.mkdtemp()
    >>> sf.write(os.path.join(folder, "a.wav"), np.zeros(1600, dtype="float32"), 16000)
    >>> rows = [{"ID": "a", "wav": os.path.join(folder, "a.wav")},
    ...         {"ID": "b", "wav": os.path.join(folder, "b.wav")}]
    >>> good, summary = validate_audio_rows(rows, on_bad_audio="skip")
    >>> [row["duration"] for row in good], summary["missing"]
    ([0.1], 1)
    """
    if on_bad_audio not in BAD_AUDIO_POLICIES:
        raise ValueError(f"on_bad_audio must be one of {BAD_AUDIO_POLICIES}, got {on_bad_audio!r}")
    rows = list(rows)
    summary = Counter(
        {key: 0 for key in ("missing", "unreadable", "empty", "non_finite", "bad_duration")}
    )
    good_rows = []
    for row in tqdm(rows, desc="Checking audio", unit="file", disable=len(rows) < 100):
        try:
            duration_problem = _row_duration_problem(row)
            if duration_problem:
                raise ManifestError(f"{duration_problem} (file {row['wav']})")
            info = audio_info(row["wav"])
            if decode_samples:
                load_audio(row["wav"], target_sample_rate=None)
        except (AudioError, ManifestError) as err:
            problem = "bad_duration" if isinstance(err, ManifestError) else _problem_name(err)
            message = f"Row {row['ID']!r}: {err}"
            if on_bad_audio == "error":
                raise type(err)(message) from err
            logger.warning("Skipping bad audio (%s). %s", problem, message)
            summary[problem] += 1
            continue
        good_rows.append({**row, "duration": round(info.duration_s, 6)})

    summary = {"total": len(rows), "kept": len(good_rows), **summary}
    skipped = summary["total"] - summary["kept"]
    if skipped:
        logger.warning("Skipped %d of %d rows with bad audio: %s", skipped, len(rows), summary)
    return good_rows, summary


_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_.\-]+")


def unique_ids(relative_paths):
    """Build stable, unique utterance IDs from paths relative to a data root.

    The ID is the path without its extension, with folder separators and any
    character other than letters, digits, ``_``, ``-`` and ``.`` replaced by
    ``_``. When two paths map to the same ID (``a/b.wav`` and ``a_b.flac``),
    each of them gets a short hash of its full path appended, so the IDs do
    not depend on the order in which files were listed.

    Arguments
    ---------
    relative_paths : sequence of str or pathlib.PurePath
        Paths relative to the data root (POSIX or native separators).

    Returns
    -------
    list of str
        One ID per path, in the same order.

    Example
    -------
    >>> unique_ids(["spk1/utt 1.wav", "spk2/utt1.wav"])
    ['spk1_utt_1', 'spk2_utt1']
    >>> ids = unique_ids(["a/b.wav", "a_b.flac"])
    >>> ids[0] != ids[1] and all(i.startswith("a_b_") for i in ids)
    True
    """
    posix_paths = [PurePath(path).as_posix() for path in relative_paths]
    bases = []
    for posix in posix_paths:
        stem = posix.rsplit(".", 1)[0] if "." in posix.rsplit("/", 1)[-1] else posix
        bases.append(_UNSAFE_ID_CHARS.sub("_", stem).strip("_") or "utt")
    counts = Counter(bases)
    ids = [
        f"{base}_{hashlib.sha1(posix.encode('utf-8')).hexdigest()[:8]}"
        if counts[base] > 1
        else base
        for base, posix in zip(bases, posix_paths)
    ]
    if len(set(ids)) != len(ids):
        duplicates = sorted(name for name, count in Counter(ids).items() if count > 1)
        raise ManifestError(f"Could not make unique IDs; repeated paths? {duplicates[:5]}")
    return ids
