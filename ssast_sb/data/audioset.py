"""Manifests for AudioSet, the sound-event half of the SSAST pretraining mix.

AudioSet is distributed as lists of YouTube segments, so every user downloads
a different subset of the clips. This module matches the official segment CSVs
against whatever audio files are present and reports what is missing instead of
failing on it.

Expected layout::

    <data_folder>/balanced_train_segments.csv    # official segment lists
    <data_folder>/unbalanced_train_segments.csv
    <data_folder>/eval_segments.csv
    <data_folder>/class_labels_indices.csv
    <data_folder>/audio/**/<YTID>_<start>.<wav|flac|ogg|mp3>   # or Y<YTID>.wav

The start time in a file name may be written in seconds (``30``, ``30.0``,
``30.000``) or in milliseconds (``30000``).

Example
-------
>>> import tempfile, os
>>> import numpy as np, soundfile as sf
>>> root = tempfile.mkdtemp()
>>> with open(os.path.join(root, "class_labels_indices.csv"), "w") as f:
...     _ = f.write('index,mid,display_name\\n0,/m/09x0r,"Speech"\\n')
>>> with open(os.path.join(root, "eval_segments.csv"), "w") as f:
...     _ = f.write("# a\\n# b\\n# YTID, start_seconds, end_seconds, positive_labels\\n")
...     _ = f.write('abcdefghijk, 30.000, 40.000, "/m/09x0r"\\n')
>>> os.makedirs(os.path.join(root, "audio"))
>>> sf.write(os.path.join(root, "audio", "abcdefghijk_30.wav"), np.zeros(1600), 16000)
>>> summary = prepare_audioset(root, os.path.join(root, "out"), segments=["eval"])
>>> summary["eval"]["found"], summary["eval"]["missing"]
(1, 0)
"""

import csv
import json
import logging
import os
import re
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from ssast_sb.errors import OptionError

from .manifest import (
    BAD_AUDIO_LIST,
    ManifestError,
    PreparationStamp,
    atomic_open,
    check_class_coverage,
    find_files,
    resolved_path,
    validate_audio_splits,
    write_manifest_atomic,
)
from .options import MissingDataError, cli_list

logger = logging.getLogger(__name__)

SEGMENT_FILES = {
    "balanced_train": "balanced_train_segments.csv",
    "unbalanced_train": "unbalanced_train_segments.csv",
    "eval": "eval_segments.csv",
}
CLASS_LABELS_FILE = "class_labels_indices.csv"
LABELS_JSON = "audioset_labels.json"
STAMP_NAME = "audioset"
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
DOWNLOAD_HINT = (
    "The segment lists and class_labels_indices.csv are linked from "
    "https://research.google.com/audioset/download.html"
)
FIELDNAMES = ["ID", "duration", "wav", "labels"]

# YouTube IDs are 11 characters; a start time may follow, then optionally an end time.
_TIME = r"\d+(?:\.\d+)?"
_CLIP_NAME = re.compile(rf"(?P<ytid>[A-Za-z0-9_-]{{11}})(?:_(?P<start>{_TIME})(?:_{_TIME})?)?")


def _start_candidates_ms(text):
    """Start times in ms that a written start may mean.

    ``"30.0"`` is in seconds; a bare integer is ambiguous (``"30"`` seconds or
    ``"30000"`` milliseconds), so both readings are returned and the segment
    list decides which one exists.
    """
    if "." in text:
        return [round(float(text) * 1000)]
    return [int(text) * 1000, int(text)]


def clip_keys(stem):
    """Keys under which an audio file name can be matched to a segment.

    Arguments
    ---------
    stem : str
        File name without extension, e.g. ``"abcdefghijk_30.000"`` or ``"Yabcdefghijk"``.

    Returns
    -------
    list of tuple
        ``(ytid, start_ms)`` for names that carry a start time and
        ``(ytid, None)`` for names that carry only the YouTube ID. A name that
        may or may not start with the ``Y`` prefix yields both readings.

    Example
    -------
    >>> clip_keys("abcdefghijk_30.000")
    [('abcdefghijk', 30000)]
    >>> clip_keys("Yabcdefghijk")
    [('abcdefghijk', None)]
    >>> clip_keys("abcdefghijk_30")
    [('abcdefghijk', 30000), ('abcdefghijk', 30)]
    """
    keys = []
    names = [stem[1:], stem] if stem.startswith("Y") else [stem]
    for name in names:
        match = _CLIP_NAME.fullmatch(name)
        if match is None:
            continue
        if match["start"] is None:
            keys.append((match["ytid"], None))
        else:
            keys.extend((match["ytid"], ms) for ms in _start_candidates_ms(match["start"]))
    return keys


def _index_audio(audio_folder):
    """Map every clip key found under ``audio_folder`` to its file (first in sorted order).

    Extensions match in any case (``.WAV``, ``.Flac``); hidden files are left out."""
    index = {}
    files = find_files(audio_folder, "**/*", AUDIO_EXTENSIONS)
    for path in tqdm(files, desc="Indexing AudioSet audio", unit="file"):
        for key in clip_keys(path.stem):
            index.setdefault(key, path)
    return index


def _read_class_labels(path, folder_option="--data_folder"):
    """Read ``class_labels_indices.csv`` into ``{mid: (index, display_name)}``.

    The indices must be 0..N-1, each once: the fine-tuning recipe builds its label
    encoder in this order, so encoder index and ``mid_to_index`` agree by construction.
    A UTF-8 BOM is ignored.
    """
    if not path.is_file():
        raise MissingDataError(
            f"AudioSet class list not found: {path}. {DOWNLOAD_HINT}; put it in the folder "
            f"given as {folder_option}."
        )
    with open(path, newline="", encoding="utf-8-sig") as csv_file:
        reader = csv.DictReader(csv_file, skipinitialspace=True)
        missing = [
            name
            for name in ("index", "mid", "display_name")
            if name not in (reader.fieldnames or [])
        ]
        if missing:
            raise ManifestError(f"{path} lacks the column(s) {missing}; {DOWNLOAD_HINT}")
        classes = {row["mid"]: (int(row["index"]), row["display_name"]) for row in reader}
    indices = sorted(index for index, _ in classes.values())
    if indices != list(range(len(classes))):
        raise ManifestError(
            f"{path}: the class indices must be 0..{len(classes) - 1}, each once (one row per "
            f"mid), got {len(indices)} rows with indices {indices[:5]}...; use the official "
            "class_labels_indices.csv or renumber the rows"
        )
    return classes


def _read_segments(path, classes, folder_option="--data_folder"):
    """Read an official segment CSV into ``(ytid, start_ms, mids)`` tuples."""
    if not path.is_file():
        raise MissingDataError(
            f"AudioSet segment list not found: {path}. {DOWNLOAD_HINT}; put it in the folder "
            f"given as {folder_option}."
        )
    segments = []
    with open(path, newline="", encoding="utf-8-sig") as csv_file:
        lines = (line for line in csv_file if line.strip() and not line.startswith("#"))
        for ytid, start, _end, labels in csv.reader(lines, skipinitialspace=True):
            mids = [mid.strip() for mid in labels.split(",") if mid.strip()]
            unknown = [mid for mid in mids if mid not in classes]
            if unknown:
                raise ManifestError(
                    f"{path}: segment {ytid} uses label(s) {unknown} "
                    f"absent from {CLASS_LABELS_FILE}"
                )
            segments.append((ytid, round(float(start) * 1000), mids))
    return segments


def prepare_audioset(
    data_folder,
    save_folder,
    segments=("balanced_train", "eval"),
    skip_prep=False,
    on_bad_audio="error",
    force=False,
    folder_option="--data_folder",
    segments_option="--train_segments",
):
    """Write AudioSet manifests for the downloaded clips of each segment list.

    For each segment ``<save_folder>/audioset_<segment>.csv`` gets the columns
    ``ID,duration,wav,labels``, where ``ID`` is ``<YTID>_<start seconds>`` and
    ``labels`` the label mids joined by ``;``. ``<save_folder>/audioset_labels.json``
    maps each mid to its class index (the order of ``class_labels_indices.csv``,
    which the fine-tuning recipe's label encoder follows) and display name.
    Listed clips with no audio file are counted as missing and logged, with a
    WARNING giving the clips kept/listed per class; they are not an error. Audio
    files are found whatever the case of their extension. When the stamp
    ``audioset.prepared.json`` matches ``data_folder``, ``segments`` and
    ``on_bad_audio`` nothing is done (see `ssast_sb.data.manifest.PreparationStamp`).
    Under DDP wrap the call in ``speechbrain.utils.distributed.run_on_main``.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        Folder with the official CSVs and the ``audio/`` folder.
    save_folder : str or pathlib.Path
        Where the manifests are written.
    segments : sequence of str
        Any of ``"balanced_train"``, ``"unbalanced_train"``, ``"eval"``.
    skip_prep : bool
        If True, do nothing.
    on_bad_audio : {"error", "skip"}
        What to do with a clip that is unreadable, truncated or empty (see
        `ssast_sb.data.manifest.validate_audio_rows`).
    force : bool
        Rewrite the outputs even when their stamp matches.
    folder_option, segments_option : str
        The recipe options that give ``data_folder`` and ``segments``, named by the
        errors (``--audioset_folder`` and ``--audioset_train_segments`` in pretraining).

    Returns
    -------
    dict or None
        Per segment: ``listed``, ``found``, ``missing`` and ``kept`` clip counts
        plus the ``bad_audio`` counts of `validate_audio_rows`; ``short_classes``
        (per segment, classes with clips missing); None when skipped.

    Raises
    ------
    ssast_sb.data.options.MissingDataError
        A ``FileNotFoundError`` when ``data_folder``, a segment CSV,
        ``class_labels_indices.csv`` or ``audio/`` is absent.
    ssast_sb.errors.OptionError
        When a segment name is unknown.
    ssast_sb.data.manifest.ManifestError
        When ``class_labels_indices.csv`` is not numbered 0..N-1.

    Example
    -------
    >>> import tempfile
    >>> prepare_audioset(tempfile.mkdtemp(), tempfile.mkdtemp(), skip_prep=True) is None
    True
    """
    if skip_prep:
        logger.info("Skipping AudioSet preparation (skip_prep=True)")
        return None
    data_folder, save_folder = Path(data_folder), Path(save_folder)
    segments = list(dict.fromkeys(segments))
    unknown = [segment for segment in segments if segment not in SEGMENT_FILES]
    if unknown or not segments:
        known = [segment for segment in segments if segment in SEGMENT_FILES]
        raise OptionError(
            f"Unknown AudioSet segment list(s) {unknown or segments}: they are "
            f"{', '.join(SEGMENT_FILES)}. Pass e.g. {segments_option} "
            f"{cli_list([s for s in known if s != 'eval'] or ['balanced_train'])}."
        )
    if not data_folder.is_dir():
        raise MissingDataError(
            f"{folder_option} {data_folder} does not exist. Pass the AudioSet folder, which "
            f"holds {', '.join(SEGMENT_FILES.values())}, {CLASS_LABELS_FILE} and audio/. "
            f"{DOWNLOAD_HINT}."
        )
    stamp = _audioset_stamp(data_folder, save_folder, segments, on_bad_audio)
    if stamp.is_current(force):
        return None
    stamp.invalidate()

    classes = _read_class_labels(data_folder / CLASS_LABELS_FILE, folder_option)
    listed = {
        segment: _read_segments(data_folder / SEGMENT_FILES[segment], classes, folder_option)
        for segment in segments
    }
    audio_folder = data_folder / "audio"
    if not audio_folder.is_dir():
        raise MissingDataError(
            f"AudioSet audio folder not found: {audio_folder}. Put the downloaded clips there, "
            f"named <YTID>_<start>.<ext> or Y<YTID>.<ext>, or pass as {folder_option} the "
            "folder that holds audio/."
        )
    index = _index_audio(audio_folder)

    save_folder.mkdir(parents=True, exist_ok=True)
    summary, listed_counts, kept_counts, found, missing = {}, {}, {}, {}, {}
    for segment, clips in listed.items():
        found[segment], missing[segment], listed_counts[segment] = _segment_rows(
            segment, clips, index
        )
    kept, checks = validate_audio_splits(
        found, on_bad_audio, report_path=save_folder / BAD_AUDIO_LIST
    )
    for segment, rows in kept.items():
        missing_ids = missing[segment]
        kept_counts[segment] = Counter(mid for row in rows for mid in row["labels"].split(";"))
        write_manifest_atomic(rows, save_folder / f"audioset_{segment}.csv", FIELDNAMES)
        summary[segment] = {
            "listed": len(found[segment]) + len(missing_ids),
            "found": len(found[segment]),
            "missing": len(missing_ids),
            "kept": len(rows),
            "bad_audio": checks[segment],
        }
        _log_segment(segment, summary[segment], missing_ids, save_folder, audio_folder)
    # Downloads are always partial: classes short of clips are warned about, not an error.
    summary["short_classes"] = check_class_coverage(
        "AudioSet", "the segment lists", listed_counts, kept_counts, required={}
    )
    _write_label_map(classes, save_folder / LABELS_JSON)
    stamp.write(summary)
    return summary


def _audioset_stamp(data_folder, save_folder, segments, on_bad_audio):
    """The stamp of the segment manifests and the label map (last in ``outputs``)."""
    outputs = [save_folder / f"audioset_{segment}.csv" for segment in segments]
    outputs.append(save_folder / LABELS_JSON)
    options = {
        "data_folder": resolved_path(data_folder),
        "segments": segments,
        "on_bad_audio": on_bad_audio,
    }
    return PreparationStamp(
        save_folder, STAMP_NAME, prepare_audioset, options, outputs, "AudioSet manifests"
    )


def _segment_rows(segment, clips, index):
    """Rows (without duration) of the listed clips found on disk, the missing clip IDs, and
    the clips listed per class (each clip once)."""
    rows, missing_ids, seen, listed = [], [], set(), Counter()
    for ytid, start_ms, mids in clips:
        clip_id = f"{ytid}_{start_ms / 1000:.3f}"
        if clip_id in seen:
            logger.debug("Repeated AudioSet segment %s in %s", clip_id, segment)
            continue
        seen.add(clip_id)
        listed.update(mids)
        path = index.get((ytid, start_ms)) or index.get((ytid, None))
        if path is None:
            missing_ids.append(clip_id)
            continue
        rows.append({"ID": clip_id, "wav": os.path.abspath(path), "labels": ";".join(mids)})
    return rows, missing_ids, listed


def _log_segment(segment, counts, missing_ids, save_folder, audio_folder):
    """One line of counts per segment, the first missing clips, and a warning if none is left."""
    logger.info(
        "AudioSet %s: %d listed, %d found, %d missing, %d written -> %s",
        segment,
        counts["listed"],
        counts["found"],
        counts["missing"],
        counts["kept"],
        save_folder / f"audioset_{segment}.csv",
    )
    if missing_ids:
        logger.info("AudioSet %s: first missing clips: %s", segment, missing_ids[:5])
    if not counts["kept"]:
        logger.warning("AudioSet %s: no usable clip found under %s", segment, audio_folder)


def _write_label_map(classes, path):
    """``audioset_labels.json``: each mid's class index (the label encoder's order) and name."""
    label_map = {
        "mid_to_index": {mid: index for mid, (index, _) in classes.items()},
        "display_names": {mid: name for mid, (_, name) in classes.items()},
    }
    with atomic_open(path) as json_file:
        json.dump(label_map, json_file, indent=1, ensure_ascii=False)
