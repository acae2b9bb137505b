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
['librispeech.csv', 'librispeech_dev-clean.csv']
"""

import logging
import os
from pathlib import Path

from .manifest import manifests_exist, validate_audio_rows, write_manifest_atomic

logger = logging.getLogger(__name__)

DOWNLOAD_URL = "https://www.openslr.org/12"
FIELDNAMES = ["ID", "duration", "wav", "speaker"]


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
    """List one row (without duration) per ``.flac`` file of a split, sorted by ID."""
    rows = []
    for flac in sorted(split_folder.glob("*/*/*.flac")):
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
    ``<save_folder>/librispeech.csv`` with the columns ``ID,duration,wav,speaker``.
    When all of them already exist nothing is done, so the call is cheap on a
    restart. Under DDP wrap the call in
    ``speechbrain.utils.distributed.run_on_main``.

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
        What to do with a file that is unreadable or empty (see
        `ssast_sb.data.manifest.validate_audio_rows`).
    force : bool
        Rewrite the manifests even when they all exist.

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
    split_csvs = {split: save_folder / f"librispeech_{split}.csv" for split in splits}
    combined_csv = save_folder / "librispeech.csv"
    if not force and manifests_exist([*split_csvs.values(), combined_csv]):
        logger.info("LibriSpeech manifests already in %s, skipping preparation", save_folder)
        return None

    # Check every split before the slow part, so a typo fails in a second.
    split_folders = {split: _find_split_folder(data_folder, split) for split in splits}
    summary, all_rows = {}, []
    for split, split_folder in split_folders.items():
        logger.info("Preparing LibriSpeech %s from %s", split, split_folder)
        rows, summary[split] = validate_audio_rows(_split_rows(split_folder), on_bad_audio)
        write_manifest_atomic(rows, split_csvs[split], FIELDNAMES)
        all_rows.extend(rows)
        hours = sum(row["duration"] for row in rows) / 3600
        logger.info(
            "LibriSpeech %s: %d utterances, %.2f h -> %s",
            split,
            len(rows),
            hours,
            split_csvs[split],
        )
    # Written last: its presence means every split manifest is complete.
    write_manifest_atomic(all_rows, combined_csv, FIELDNAMES)
    logger.info("LibriSpeech: %d utterances in total -> %s", len(all_rows), combined_csv)
    return summary
