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
from pathlib import Path

from tqdm import tqdm

from .manifest import (
    ManifestError,
    atomic_open,
    manifests_exist,
    validate_audio_rows,
    write_manifest_atomic,
)

logger = logging.getLogger(__name__)

SEGMENT_FILES = {
    "balanced_train": "balanced_train_segments.csv",
    "unbalanced_train": "unbalanced_train_segments.csv",
    "eval": "eval_segments.csv",
}
CLASS_LABELS_FILE = "class_labels_indices.csv"
LABELS_JSON = "audioset_labels.json"
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
    """Map every clip key found under ``audio_folder`` to its file (first in sorted order)."""
    index = {}
    files = (
        path
        for path in audio_folder.rglob("*")
        if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file()
    )
    for path in sorted(tqdm(files, desc="Indexing AudioSet audio", unit="file")):
        for key in clip_keys(path.stem):
            index.setdefault(key, path)
    return index


def _read_class_labels(path):
    """Read ``class_labels_indices.csv`` into ``{mid: (index, display_name)}``."""
    if not path.is_file():
        raise FileNotFoundError(f"AudioSet class list not found: {path}. {DOWNLOAD_HINT}")
    with open(path, newline="", encoding="utf-8") as csv_file:
        reader = csv.DictReader(csv_file, skipinitialspace=True)
        return {row["mid"]: (int(row["index"]), row["display_name"]) for row in reader}


def _read_segments(path, classes):
    """Read an official segment CSV into ``(ytid, start_ms, mids)`` tuples."""
    if not path.is_file():
        raise FileNotFoundError(f"AudioSet segment list not found: {path}. {DOWNLOAD_HINT}")
    segments = []
    with open(path, newline="", encoding="utf-8") as csv_file:
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
):
    """Write AudioSet manifests for the downloaded clips of each segment list.

    For each segment ``<save_folder>/audioset_<segment>.csv`` gets the columns
    ``ID,duration,wav,labels``, where ``ID`` is ``<YTID>_<start seconds>`` and
    ``labels`` the label mids joined by ``;``. ``<save_folder>/audioset_labels.json``
    maps each mid to its class index and display name. Listed clips with no
    audio file are counted as missing and logged; they are not an error. When all
    outputs exist nothing is done. Under DDP wrap the call in
    ``speechbrain.utils.distributed.run_on_main``.

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
        What to do with a clip that is unreadable or empty (see
        `ssast_sb.data.manifest.validate_audio_rows`).
    force : bool
        Rewrite the outputs even when they all exist.

    Returns
    -------
    dict or None
        Per segment: ``listed``, ``found``, ``missing`` and ``kept`` clip counts
        plus the ``bad_audio`` counts of `validate_audio_rows`; None when skipped.

    Raises
    ------
    FileNotFoundError
        When a segment CSV, ``class_labels_indices.csv`` or ``audio/`` is absent.

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
        raise ValueError(
            f"Unknown AudioSet segment(s) {unknown}; choose from {list(SEGMENT_FILES)}"
        )
    segment_csvs = {segment: save_folder / f"audioset_{segment}.csv" for segment in segments}
    labels_json = save_folder / LABELS_JSON
    if not force and manifests_exist([*segment_csvs.values(), labels_json]):
        logger.info("AudioSet manifests already in %s, skipping preparation", save_folder)
        return None

    classes = _read_class_labels(data_folder / CLASS_LABELS_FILE)
    listed = {
        segment: _read_segments(data_folder / SEGMENT_FILES[segment], classes)
        for segment in segments
    }
    audio_folder = data_folder / "audio"
    if not audio_folder.is_dir():
        raise FileNotFoundError(
            f"AudioSet audio folder not found: {audio_folder}. Put the downloaded clips there, "
            "named <YTID>_<start>.<ext> or Y<YTID>.<ext>."
        )
    index = _index_audio(audio_folder)

    save_folder.mkdir(parents=True, exist_ok=True)
    summary = {}
    for segment, clips in listed.items():
        rows, missing_ids, seen = [], [], set()
        for ytid, start_ms, mids in clips:
            clip_id = f"{ytid}_{start_ms / 1000:.3f}"
            if clip_id in seen:
                logger.debug("Repeated AudioSet segment %s in %s", clip_id, segment)
                continue
            seen.add(clip_id)
            path = index.get((ytid, start_ms)) or index.get((ytid, None))
            if path is None:
                missing_ids.append(clip_id)
                continue
            rows.append({"ID": clip_id, "wav": os.path.abspath(path), "labels": ";".join(mids)})
        found = len(rows)
        rows, check = validate_audio_rows(rows, on_bad_audio)
        write_manifest_atomic(rows, segment_csvs[segment], FIELDNAMES)
        summary[segment] = {
            "listed": len(seen),
            "found": found,
            "missing": len(missing_ids),
            "kept": len(rows),
            "bad_audio": check,
        }
        logger.info(
            "AudioSet %s: %d listed, %d found, %d missing, %d written -> %s",
            segment,
            len(seen),
            found,
            len(missing_ids),
            len(rows),
            segment_csvs[segment],
        )
        if missing_ids:
            logger.info("AudioSet %s: first missing clips: %s", segment, missing_ids[:5])
        if not rows:
            logger.warning("AudioSet %s: no usable clip found under %s", segment, audio_folder)

    # Written last: its presence means every segment manifest is complete.
    label_map = {
        "mid_to_index": {mid: index for mid, (index, _) in classes.items()},
        "display_names": {mid: name for mid, (_, name) in classes.items()},
    }
    with atomic_open(labels_json) as json_file:
        json.dump(label_map, json_file, indent=1, ensure_ascii=False)
    return summary
