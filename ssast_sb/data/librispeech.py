"""Manifests for LibriSpeech, the speech half of the SSAST pretraining mix.

Only the audio is used (SSAST pretrains without transcripts), so each row holds
the utterance ID, duration, absolute path and speaker.

Expected layout (as unpacked from https://www.openslr.org/12)::

    <data_folder>/LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac

Example
-------
>>> import tempfile, os
>>> import numpy as np, soundfile as sf
>>> root = tempfile.mkdtemp()
>>> chapter = os.path.join(root, "LibriSpeech", "dev-clean", "84", "121123")
>>> os.makedirs(chapter)
>>> sf.write(os.path.join(chapter, "84-121123-0000.flac"), np.zeros(1600), 16000)
>>> out = os.path.join(root, "manifests")
>>> summary = prepare_librispeech(root, out, splits=["dev-clean"])
>>> sorted(os.listdir(out))
['librispeech.csv', 'librispeech.prepared.json', 'librispeech_dev-clean.csv']
"""

import logging
import os
from collections import Counter
from pathlib import Path

from .manifest import (
    PreparationStamp,
    check_class_coverage,
    find_files,
    resolved_path,
    validate_audio_rows,
    write_manifest_atomic,
)

logger = logging.getLogger(__name__)

DOWNLOAD_URL = "https://www.openslr.org/12"
FIELDNAMES = ["ID", "duration", "wav", "speaker"]
AUDIO_EXTENSIONS = (".flac",)
STAMP_NAME = "librispeech"


def _find_split_folder(data_folder, split):
    """Folder of ``split``; ``data_folder`` may or may not include ``LibriSpeech/``."""
    candidates = [data_folder / "LibriSpeech" / split, data_folder / split]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"LibriSpeech split {split!r} not found (looked in {candidates[0]} and "
        f"{candidates[1]}). Download {split}.tar.gz from {DOWNLOAD_URL} and extract it "
        f"inside {data_folder}, which gives {candidates[0]}/<speaker>/<chapter>/*.flac."
    )


def _split_rows(split_folder):
    """List one row (without duration) per ``.flac`` file of a split (``.FLAC`` too), sorted."""
    rows = []
    for flac in find_files(split_folder, "*/*/*", AUDIO_EXTENSIONS):
        speaker = flac.parent.parent.name
        rows.append({"ID": flac.stem, "wav": os.path.abspath(flac), "speaker": speaker})
    if not rows:
        raise FileNotFoundError(
            f"No .flac files under {split_folder}/<speaker>/<chapter>/; is the archive from "
            f"{DOWNLOAD_URL} fully extracted?"
        )
    return rows


def prepare_librispeech(
    data_folder,
    save_folder,
    splits=("train-clean-100",),
    skip_prep=False,
    on_bad_audio="error",
    force=False,
):
    """Write LibriSpeech manifests: one CSV per split and one combining them.

    Outputs are ``<save_folder>/librispeech_<split>.csv`` and
    ``<save_folder>/librispeech.csv`` with the columns ``ID,duration,wav,speaker``,
    and the stamp ``librispeech.prepared.json`` (see
    `ssast_sb.data.manifest.PreparationStamp`). When the stamp matches
    ``data_folder``, ``splits`` and ``on_bad_audio`` nothing is done, so the call
    is cheap on a restart. Files ending in ``.flac`` in any case are found. Under
    DDP wrap the call in ``speechbrain.utils.distributed.run_on_main``.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        Folder that contains ``LibriSpeech/`` (or the ``LibriSpeech`` folder itself).
    save_folder : str or pathlib.Path
        Where the manifests are written.
    splits : sequence of str
        Split folder names, e.g. ``("train-clean-100", "train-clean-360")``.
    skip_prep : bool
        If True, do nothing (manifests are assumed to be prepared elsewhere).
    on_bad_audio : {"error", "skip"}
        What to do with a file that is unreadable, truncated or empty (see
        `ssast_sb.data.manifest.validate_audio_rows`).
    force : bool
        Rewrite the manifests even when their stamp matches.

    Returns
    -------
    dict or None
        Per split, the counts of `validate_audio_rows`; None when skipped.

    Raises
    ------
    FileNotFoundError
        When a split folder is missing, saying what to download and where to put it.

    Example
    -------
    >>> import tempfile
    >>> prepare_librispeech(tempfile.mkdtemp(), tempfile.mkdtemp(), skip_prep=True) is None
    True
    """
    if skip_prep:
        logger.info("Skipping LibriSpeech preparation (skip_prep=True)")
        return None
    data_folder, save_folder = Path(data_folder), Path(save_folder)
    splits = list(dict.fromkeys(splits))  # drop repeats, keep order
    if not splits:
        raise ValueError("prepare_librispeech needs at least one split")
    stamp = _librispeech_stamp(data_folder, save_folder, splits, on_bad_audio)
    if stamp.is_current(force):
        return None
    stamp.invalidate()

    # Check every split before the slow part, so a typo fails in a second.
    split_folders = {split: _find_split_folder(data_folder, split) for split in splits}
    summary, all_rows = {}, []
    for split, split_csv in zip(splits, stamp.outputs):
        logger.info("Preparing LibriSpeech %s from %s", split, split_folders[split])
        rows, summary[split] = _checked_split(split, split_folders[split], on_bad_audio)
        write_manifest_atomic(rows, split_csv, FIELDNAMES)
        all_rows.extend(rows)
        hours = sum(row["duration"] for row in rows) / 3600
        logger.info(
            "LibriSpeech %s: %d utterances, %.2f h -> %s", split, len(rows), hours, split_csv
        )
    combined_csv = stamp.outputs[-1]
    write_manifest_atomic(all_rows, combined_csv, FIELDNAMES)
    logger.info("LibriSpeech: %d utterances in total -> %s", len(all_rows), combined_csv)
    stamp.write(summary)
    return summary


def _librispeech_stamp(data_folder, save_folder, splits, on_bad_audio):
    """The stamp of the per-split manifests and the combined one (last in ``outputs``)."""
    outputs = [save_folder / f"librispeech_{split}.csv" for split in splits]
    outputs.append(save_folder / "librispeech.csv")
    options = {
        "data_folder": resolved_path(data_folder),
        "splits": splits,
        "on_bad_audio": on_bad_audio,
    }
    return PreparationStamp(
        save_folder, STAMP_NAME, prepare_librispeech, options, outputs, "LibriSpeech manifests"
    )


def _checked_split(split, split_folder, on_bad_audio):
    """Validated rows of a split; speakers whose folder yields no utterance are warned about."""
    listed = _split_rows(split_folder)
    rows, summary = validate_audio_rows(listed, on_bad_audio)
    speakers = Counter(row["speaker"] for row in listed)
    for folder in split_folder.iterdir():
        if folder.is_dir() and not folder.name.startswith("."):
            speakers.setdefault(folder.name, 0)  # a speaker folder without any .flac
    check_class_coverage(
        f"LibriSpeech {split}",
        f"the speaker folders of {split_folder}",
        {split: speakers},
        {split: Counter(row["speaker"] for row in rows)},
        required={},  # pretraining does not need every speaker
    )
    return rows, summary
