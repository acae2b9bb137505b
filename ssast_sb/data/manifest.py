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
import json
import logging
import os
import re
import tempfile
from collections import Counter
from pathlib import Path, PurePath, PurePosixPath

from tqdm import tqdm

from ssast_sb.errors import OptionError, UserError
from ssast_sb.fileio import atomic_open

from .audio import (
    AudioDecodeError,
    AudioError,
    AudioFileMissingError,
    EmptyAudioError,
    NonFiniteAudioError,
    TruncatedAudioError,
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
    (TruncatedAudioError, "truncated"),  # before its base class AudioDecodeError
    (AudioDecodeError, "unreadable"),
)
PROBLEMS = ("missing", "unreadable", "truncated", "empty", "non_finite", "bad_duration")


class ManifestError(UserError, ValueError):
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

    A UTF-8 byte-order mark (as spreadsheet programs write) is ignored, and so
    are spaces after the commas, as SpeechBrain's own CSV reader does.

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
    with open(path, newline="", encoding="utf-8-sig") as csv_file:
        reader = csv.DictReader(csv_file, skipinitialspace=True)
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

    Existence says nothing about the options that made them: the preparation
    functions use `PreparationStamp` instead.

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


# ---------------------------------------------------------------- preparation stamps

STAMP_SUFFIX = ".prepared.json"
STAMP_FORMAT = 1
_MAX_SHOWN = 20


def resolved_path(path):
    """Absolute path with ``~`` expanded and symlinks resolved, as a string (for stamps).

    Arguments
    ---------
    path : str or pathlib.Path
        Any path, existing or not.

    Returns
    -------
    str

    Example
    -------
    >>> import os
    >>> resolved_path("a/../b") == os.path.join(os.path.realpath(os.getcwd()), "b")
    True
    """
    return str(Path(path).expanduser().resolve())


def _as_json(value):
    """``value`` as it reads back from JSON (tuples become lists, paths strings)."""
    return json.loads(json.dumps(value, default=str))


def _short(value, limit=160):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _flatten(options, prefix=""):
    """Nested dicts as one level with dotted keys (``sources.speech.sha256``)."""
    flat = {}
    for key, value in options.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _option_changes(old, new):
    """``"key: old -> new"`` for every (dotted) key whose value differs, in key order."""
    old, new = _flatten(old), _flatten(new)
    changes = []
    for key in sorted(set(old) | set(new)):
        if old.get(key, "(absent)") != new.get(key, "(absent)"):
            before = _short(old[key]) if key in old else "(absent)"
            after = _short(new[key]) if key in new else "(absent)"
            changes.append(f"{key}: {before} -> {after}")
    return changes


def describe_options(options):
    """``key=value`` list of preparation options, for log lines.

    Arguments
    ---------
    options : dict

    Returns
    -------
    str

    Example
    -------
    >>> describe_options({"on_bad_audio": "skip", "data_folder": "/data/esc50"})
    "data_folder='/data/esc50', on_bad_audio='skip'"
    """
    return ", ".join(f"{key}={_short(options[key])}" for key in sorted(options))


class PreparationStamp:
    """What made a set of manifests, recorded next to them in ``<name>.prepared.json``.

    A preparation function builds one with the options that determine its
    outputs (paths resolved, see `resolved_path`), asks `is_current` whether the
    outputs on disk were made by the same function with the same options, and
    if not, calls `invalidate`, writes the outputs and finally `write`, so
    that the stamp appears, atomically, only once every output is complete. A
    mismatch is logged as a WARNING naming each changed option (old -> new);
    outputs without a stamp (from before stamps existed, or made by hand) are
    rebuilt with a WARNING too.

    Arguments
    ---------
    save_folder : str or pathlib.Path
        Folder of the outputs and the stamp.
    name : str
        Stamp name: the file is ``<save_folder>/<name>.prepared.json``.
    function : callable
        The preparation function (its module and name are recorded).
    options : dict
        JSON-serialisable options that determine the outputs.
    outputs : sequence of str or pathlib.Path
        The files the stamp vouches for.
    what : str
        What the outputs are, for log lines, e.g. ``"ESC-50 manifests"``.

    Example
    -------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> def prepare_toy(): pass
    >>> stamp = PreparationStamp(folder, "toy", prepare_toy, {"seed": 0}, [folder / "toy.csv"],
    ...                          "toy manifests")
    >>> stamp.is_current()
    False
    >>> _ = (folder / "toy.csv").write_text("ID,duration,wav\\n")
    >>> stamp.write({"rows": 0})
    >>> stamp.is_current()
    True
    >>> PreparationStamp(folder, "toy", prepare_toy, {"seed": 1}, [folder / "toy.csv"],
    ...                  "toy manifests").is_current()
    False
    """

    def __init__(self, save_folder, name, function, options, outputs, what):
        self.folder = Path(save_folder)
        self.path = self.folder / f"{name}{STAMP_SUFFIX}"
        self.function = f"{function.__module__}.{function.__qualname__}"
        self.options = _as_json(options)
        self.outputs = [Path(output) for output in outputs]
        self.what = what

    def _recorded(self):
        """The function and options of the stamp on disk (``ValueError`` when unreadable)."""
        with open(self.path, encoding="utf-8") as stamp_file:
            stamp = json.load(stamp_file)
        if not isinstance(stamp, dict) or stamp.get("format") != STAMP_FORMAT:
            raise ValueError(f"not a format-{STAMP_FORMAT} stamp")
        return {"function": stamp.get("function"), **stamp.get("options", {})}

    def _stale_reason(self):
        """Why the outputs on disk cannot be reused, or None when they can."""
        if not self.path.is_file():
            existing = [output.name for output in self.outputs if output.is_file()]
            if not existing:
                return None, False
            return (
                f"found {', '.join(existing[:3])}{' ...' if len(existing) > 3 else ''} but no "
                f"stamp {self.path.name} (made before stamps existed, or by hand), so the "
                "options that made them are unknown"
            ), True
        try:
            recorded = self._recorded()
        except (OSError, ValueError) as err:
            return f"the stamp {self.path} is unreadable ({err})", True
        changes = _option_changes(recorded, {"function": self.function, **self.options})
        if changes:
            return "made with other options: " + "; ".join(changes), True
        missing = [output.name for output in self.outputs if not output.is_file()]
        if missing:
            return f"{', '.join(missing)} missing although the stamp lists it", True
        return None, True

    def is_current(self, force=False):
        """Tell whether the outputs can be reused; log why they cannot.

        Arguments
        ---------
        force : bool
            Rebuild whatever the stamp says.

        Returns
        -------
        bool
            True when the stamp matches and every output exists.
        """
        if force:
            logger.info("Rebuilding the %s in %s (force=True)", self.what, self.folder)
            return False
        reason, had_outputs = self._stale_reason()
        if reason is None and had_outputs:
            logger.info(
                "%s in %s already prepared (by %s with %s), skipping preparation; "
                "pass force=True to rebuild",
                self.what,
                self.folder,
                self.function,
                describe_options(self.options),
            )
            return True
        if reason is not None:
            logger.warning("Rebuilding the %s in %s: %s.", self.what, self.folder, reason)
        return False

    def recorded_counts(self):
        """The ``counts`` the stamp on disk holds (call after `is_current` said True).

        Returns
        -------
        dict
        """
        with open(self.path, encoding="utf-8") as stamp_file:
            return json.load(stamp_file).get("counts", {})

    def invalidate(self):
        """Remove the stamp before the outputs are rewritten (an interrupted run is redone)."""
        self.path.unlink(missing_ok=True)

    def write(self, counts=None):
        """Record the function, options, outputs and ``counts``, atomically and last.

        Arguments
        ---------
        counts : dict, optional
            JSON-serialisable counts to keep with the stamp (clips, classes, ...).
        """
        stamp = {
            "format": STAMP_FORMAT,
            "function": self.function,
            "options": self.options,
            "outputs": [
                str(output.relative_to(self.folder))
                if output.is_relative_to(self.folder)
                else str(output)
                for output in self.outputs
            ],
            "counts": _as_json(counts or {}),
        }
        with atomic_open(self.path) as stamp_file:
            json.dump(stamp, stamp_file, indent=1, sort_keys=True, ensure_ascii=False)


def remove_obsolete(path, reason):
    """Delete a file that earlier versions wrote and that must no longer be trusted.

    Arguments
    ---------
    path : str or pathlib.Path
        The file; nothing happens when it is absent.
    reason : str
        Why it goes, for the log line.

    Example
    -------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "old_labels.json"
    >>> _ = path.write_text("[]")
    >>> remove_obsolete(path, "its order is not the model's")
    >>> path.exists()
    False
    """
    path = Path(path)
    if path.is_file():
        path.unlink()
        logger.warning("Removed %s, written by an earlier version: %s", path, reason)


# ---------------------------------------------------------------- finding listed files


def audio_suffix(path, extensions):
    """Tell whether ``path`` ends in one of ``extensions``, in any case (``.WAV`` is ``.wav``).

    Arguments
    ---------
    path : str or pathlib.Path
    extensions : iterable of str
        E.g. ``(".wav", ".flac")``.

    Returns
    -------
    bool

    Example
    -------
    >>> audio_suffix("a/B.WAV", [".wav"]), audio_suffix("a/b.txt", [".wav"])
    (True, False)
    """
    return PurePath(path).suffix.lower() in {extension.lower() for extension in extensions}


def find_files(folder, pattern, extensions, progress=None):
    """Files matching ``pattern`` under ``folder`` whose extension is one of ``extensions``.

    The extension is matched in any case (``.WAV``, ``.Flac`` count), hidden files
    (``._x.wav`` resource forks) are left out, and the result is sorted.

    Arguments
    ---------
    folder : str or pathlib.Path
        Where to look.
    pattern : str
        ``pathlib`` glob pattern without the extension part, e.g. ``"*/*"`` or
        ``"**/*"`` (recursive).
    extensions : iterable of str
        E.g. ``(".wav",)``.
    progress : str, optional
        Show a progress bar with this description while scanning.

    Returns
    -------
    list of pathlib.Path

    Example
    -------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("a.wav", "b.WAV", "c.txt", "._d.wav"):
    ...     _ = (folder / name).write_bytes(b"")
    >>> [path.name for path in find_files(folder, "*", [".wav"])]
    ['a.wav', 'b.WAV']
    """
    paths = Path(folder).glob(pattern)
    if progress is not None:
        paths = tqdm(paths, desc=progress, unit="file")
    return sorted(
        path
        for path in paths
        if audio_suffix(path, extensions) and not path.name.startswith(".") and path.is_file()
    )


def listing_key(relative_path):
    """Key of a listed relative path: POSIX separators, extension in lower case.

    Arguments
    ---------
    relative_path : str or pathlib.PurePath

    Returns
    -------
    str

    Example
    -------
    >>> listing_key("yes/0a7c2a8d_nohash_0.WAV")
    'yes/0a7c2a8d_nohash_0.wav'
    """
    posix = PurePath(relative_path).as_posix()
    suffix = PurePosixPath(posix).suffix
    return posix[: len(posix) - len(suffix)] + suffix.lower() if suffix else posix


class ListedFiles:
    """Finds the files a listing names, matching their extension in any case.

    A metadata file that names ``1-100032-A-0.wav`` finds ``1-100032-A-0.WAV``
    on disk. Each folder is listed once, so looking up a whole corpus stays cheap.

    Example
    -------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "clip.WAV").write_bytes(b"")
    >>> finder = ListedFiles()
    >>> finder.find(folder / "clip.wav").name, finder.find(folder / "other.wav")
    ('clip.WAV', None)
    """

    def __init__(self):
        self._folders = {}

    def _index(self, folder):
        """``{(stem, lower-case suffix): path}`` of the files in ``folder`` (first when sorted)."""
        index = {}
        try:
            names = sorted(entry.name for entry in os.scandir(folder) if entry.is_file())
        except (FileNotFoundError, NotADirectoryError):
            names = []
        for name in names:
            key = (PurePath(name).stem, PurePath(name).suffix.lower())
            index.setdefault(key, Path(folder) / name)
        return index

    def find(self, path):
        """The file on disk for a listed ``path``, or None when there is none.

        Arguments
        ---------
        path : str or pathlib.Path

        Returns
        -------
        pathlib.Path or None
        """
        path = Path(path)
        if path.is_file():
            return path
        if path.parent not in self._folders:
            self._folders[path.parent] = self._index(path.parent)
        return self._folders[path.parent].get((path.stem, path.suffix.lower()))


# ---------------------------------------------------------------- class coverage


class ClassLostError(ManifestError):
    """Every clip of a class is gone from a split that needs the class."""


def _per_class_text(shortfall):
    """``"dog 6/8, rain 7/8"`` (kept/listed), at most `_MAX_SHOWN` classes."""
    items = [
        f"{label} {kept}/{listed}" + (" (no clip in this split)" if listed == 0 else "")
        for label, (kept, listed) in sorted(shortfall.items())
    ]
    more = len(items) - _MAX_SHOWN
    return ", ".join(items[:_MAX_SHOWN]) + (f" ... and {more} more" if more > 0 else "")


def _split_shortfall(listed, kept):
    """``{label: (kept, listed)}`` of the classes with fewer clips kept than listed, or none."""
    return {
        label: (kept.get(label, 0), count)
        for label, count in listed.items()
        if kept.get(label, 0) < count or count == kept.get(label, 0) == 0
    }


def check_class_coverage(dataset, listing, listed, kept, required=None):
    """Compare the clips a listing names with the clips kept, per split and class.

    Every dataset module calls this after checking the audio. A split whose
    classes lost clips (not on disk, or unusable and skipped) gets one WARNING
    with the counts per class (kept/listed). A class that has no clip left in a
    split that needs it is an error: the model would be trained or evaluated
    without it.

    Arguments
    ---------
    dataset : str
        Name for the messages, e.g. ``"ESC-50"``.
    listing : str
        What lists the clips (a metadata file, the word folders), for the messages.
    listed : dict
        ``{split: {label: clips listed}}``; a count of 0 means the listing has the
        class (a word folder, say) but no clip of it was found.
    kept : dict
        ``{split: {label: clips kept}}``, as written to the manifests.
    required : dict, optional
        ``{split: labels}`` each split needs at least one clip of. Default: every
        class listed in the split.

    Returns
    -------
    dict
        ``{split: {label: [kept, listed]}}`` of the classes short of clips.

    Raises
    ------
    ClassLostError
        When a required class has no clip left in a split, naming the split,
        the classes, the listing and what to check.

    Example
    -------
    >>> listed = {"train": {"dog": 8, "rain": 8}}
    >>> check_class_coverage("toy", "meta.csv", listed, {"train": {"dog": 6, "rain": 8}})
    {'train': {'dog': [6, 8]}}
    >>> try:
    ...     check_class_coverage("toy", "meta.csv", listed, {"train": {"rain": 8}})
    ... except ClassLostError as err:
    ...     print(str(err)[:52])
    toy train: no clip is left of 1 class(es) (dog 0/8),
    """
    report, lost = {}, {}
    for split, split_listed in listed.items():
        split_kept = kept.get(split, {})
        needed = set(split_listed) if required is None else set(required.get(split, ()))
        # A needed class the split does not even list counts as listed with no clip.
        split_listed = {**{label: 0 for label in needed - set(split_listed)}, **split_listed}
        shortfall = _split_shortfall(split_listed, split_kept)
        if not shortfall:
            continue
        report[split] = {label: list(counts) for label, counts in sorted(shortfall.items())}
        gone = {label: c for label, c in shortfall.items() if c[0] == 0 and label in needed}
        if gone:
            lost[split] = gone
        missing = sum(listed_n - kept_n for kept_n, listed_n in shortfall.values())
        logger.warning(
            "%s %s: %d of the %d clip(s) listed in %s are not in the manifest (not on disk, "
            "or unusable and skipped); per class, kept/listed: %s",
            dataset,
            split,
            missing,
            sum(split_listed.values()),
            listing,
            _per_class_text(shortfall),
        )
    if lost:
        split, gone = next(iter(lost.items()))
        raise ClassLostError(
            f"{dataset} {split}: no clip is left of {len(gone)} class(es) "
            f"({_per_class_text(gone)}), which {listing} has and the {split} split needs"
            + (f" (also lost in {', '.join(list(lost)[1:])})" if len(lost) > 1 else "")
            + ". The manifests would train or evaluate without them. Check that their files "
            "are on disk under the listed names (the extension's case does not matter), and "
            "see the warnings above for files that were skipped."
        )
    return report


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


#: Bad files named in one error message; the others are counted and listed in a file.
SHOWN_BAD_FILES = 20
#: That file's name, in a preparation's save folder.
BAD_AUDIO_LIST = "bad_audio.txt"


class BadAudioError(AudioError, ManifestError):
    """Several rows whose audio cannot be used, of different kinds (listed in the message)."""


def bad_audio_error(problems, total, skip_option="--on_bad_audio skip", report_path=None):
    """One error naming every unusable file, the option that skips them, where all are listed.

    Arguments
    ---------
    problems : list of tuple
        ``(message, error)`` per bad file, in the order found.
    total : int
        Files checked.
    skip_option : str
        The command line's way to leave such files out.
    report_path : str or pathlib.Path, optional
        Where the full list is written when it is longer than :data:`SHOWN_BAD_FILES`
        (default: a file in the system's temporary folder).

    Returns
    -------
    Exception
        The error to raise: the class of the problems when they share one, else
        :class:`BadAudioError`.

    Example
    -------
    >>> problems = [("Row 'a': Audio file a.wav not found", AudioFileMissingError("a")),
    ...             ("Row 'b': Audio file b.wav is empty (0 bytes)", EmptyAudioError("b"))]
    >>> error = bad_audio_error(problems, 10)
    >>> type(error).__name__
    'BadAudioError'
    >>> print(error)
    2 of 10 audio files cannot be used:
      Row 'a': Audio file a.wav not found
      Row 'b': Audio file b.wav is empty (0 bytes)
    Fix or remove them, or pass --on_bad_audio skip to leave them out (listed in warnings).
    """
    kinds = {type(error) for _, error in problems}
    error_class = kinds.pop() if len(kinds) == 1 else BadAudioError
    lines = [f"{len(problems)} of {total} audio files cannot be used:"]
    lines += [f"  {message}" for message, _ in problems[:SHOWN_BAD_FILES]]
    if len(problems) > SHOWN_BAD_FILES:
        if report_path is None:
            handle, report_path = tempfile.mkstemp(prefix="ssast_bad_audio_", suffix=".txt")
            os.close(handle)
        with atomic_open(report_path) as stream:
            stream.write("\n".join(message for message, _ in problems) + "\n")
        lines.append(
            f"  ... and {len(problems) - SHOWN_BAD_FILES} more: all {len(problems)} are listed "
            f"in {report_path}"
        )
    them = "them" if len(problems) > 1 else "it"
    lines.append(
        f"Fix or remove {them}, or pass {skip_option} to leave {them} out (listed in warnings)."
    )
    return error_class("\n".join(lines))


def validate_audio_rows(
    rows,
    on_bad_audio="error",
    decode_samples=False,
    report_path=None,
    skip_option="--on_bad_audio skip",
):
    """Check that every row points to usable audio, and fill in its duration.

    Each file must exist, its header must decode and the file must hold the
    length its header declares (`audio_info`); a duration already in the row
    must be a positive number. The returned rows carry the
    duration measured from the file, in seconds.

    Arguments
    ---------
    rows : iterable of dict
        Rows with at least ``ID`` and ``wav``; ``duration`` is optional.
    on_bad_audio : {"error", "skip"}
        ``"error"`` checks every row, then raises one error naming every bad row
        (:func:`bad_audio_error`); ``"skip"`` logs a warning, drops the row and
        counts it in the summary.
    decode_samples : bool
        Also decode every file completely (`load_audio`), which catches truncated
        data and NaN samples but reads the whole corpus: off by default.
    report_path : str or pathlib.Path, optional
        Where the full list of bad rows goes when it is too long for the message.
    skip_option : str
        How the error message names the ``skip`` policy for its command line.

    Returns
    -------
    good_rows : list of dict
        Copies of the usable rows with ``duration`` set from the file.
    summary : dict
        ``total`` and ``kept`` counts and one count per problem: ``missing``,
        ``unreadable``, ``truncated``, ``empty``, ``non_finite``, ``bad_duration``.

    Raises
    ------
    AudioError or ManifestError
        Under ``on_bad_audio="error"``, naming every bad row, its file and problem.

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
    kept, summaries = validate_audio_splits(
        {"rows": rows}, on_bad_audio, decode_samples, report_path, skip_option
    )
    return kept["rows"], summaries["rows"]


def validate_audio_splits(
    splits,
    on_bad_audio="error",
    decode_samples=False,
    report_path=None,
    skip_option="--on_bad_audio skip",
):
    """:func:`validate_audio_rows` of several splits, with one error naming every bad row of all.

    Arguments
    ---------
    splits : dict
        Split (fold, session, segment...) name to its rows.
    on_bad_audio, decode_samples, report_path, skip_option
        See :func:`validate_audio_rows`.

    Returns
    -------
    tuple
        ``(kept, summaries)``: per split, its usable rows and its summary.

    Example
    -------
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> splits = {"train": [{"ID": "a", "wav": os.path.join(folder, "a.wav")}],
    ...           "test": [{"ID": "b", "wav": os.path.join(folder, "b.wav")}]}
    >>> try:
    ...     validate_audio_splits(splits)
    ... except AudioFileMissingError as error:
    ...     print(str(error).splitlines()[0])
    2 of 2 audio files cannot be used:
    """
    if on_bad_audio not in BAD_AUDIO_POLICIES:
        raise OptionError(
            f"--on_bad_audio {on_bad_audio} is not a policy: pass --on_bad_audio error (stop, "
            "naming every bad file) or --on_bad_audio skip (leave them out)."
        )
    splits = {name: list(rows) for name, rows in splits.items()}
    total = sum(len(rows) for rows in splits.values())
    kept, summaries, problems = {}, {}, []
    with tqdm(total=total, desc="Checking audio", unit="file", disable=total < 100) as bar:
        for name, rows in splits.items():
            summary = Counter({key: 0 for key in PROBLEMS})
            kept[name] = []
            for row in rows:
                bar.update(1)
                try:
                    duration_problem = _row_duration_problem(row)
                    if duration_problem:
                        raise ManifestError(f"{duration_problem} (file {row['wav']})")
                    info = audio_info(row["wav"])
                    if decode_samples:
                        load_audio(row["wav"], target_sample_rate=None)
                except (AudioError, ManifestError) as err:
                    kind = "bad_duration" if isinstance(err, ManifestError) else _problem_name(err)
                    message = f"Row {row['ID']!r}: {err}"
                    if on_bad_audio == "error":
                        problems.append((message, err))
                    else:
                        logger.warning("Skipping bad audio (%s). %s", kind, message)
                        summary[kind] += 1
                    continue
                kept[name].append({**row, "duration": round(info.duration_s, 6)})
            summaries[name] = {"total": len(rows), "kept": len(kept[name]), **summary}
            skipped = len(rows) - len(kept[name])
            if skipped and not problems:
                logger.warning(
                    "Skipped %d of %d rows with bad audio: %s", skipped, len(rows), summaries[name]
                )
    if problems:
        raise bad_audio_error(problems, total, skip_option, report_path)
    return kept, summaries


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
