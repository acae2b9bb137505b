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

from ssast_sb.errors import OptionError

from .manifest import (
    BAD_AUDIO_LIST,
    PreparationStamp,
    check_class_coverage,
    find_files,
    resolved_path,
    validate_audio_splits,
    write_manifest_atomic,
)
from .options import MissingDataError, cli_list

logger = logging.getLogger(__name__)

DOWNLOAD_URL = "https://www.openslr.org/12"
FIELDNAMES = ["ID", "duration", "wav", "speaker"]
AUDIO_EXTENSIONS = (".flac",)
STAMP_NAME = "librispeech"


#: The splits of https://www.openslr.org/12 and the sizes of their archives, in its order.
SPLIT_SIZES = {
    "train-clean-100": "6.3 GB",
    "train-clean-360": "23 GB",
    "train-other-500": "30 GB",
    "dev-clean": "337 MB",
    "dev-other": "314 MB",
    "test-clean": "346 MB",
    "test-other": "328 MB",
}


def _split_folder(data_folder, split):
    """Folder of ``split`` (``data_folder`` may or may not include ``LibriSpeech/``), or None."""
    for candidate in (data_folder / "LibriSpeech" / split, data_folder / split):
        if candidate.is_dir():
            return candidate
    return None


def splits_on_disk(data_folder):
    """The LibriSpeech splits in ``data_folder``: the official ones first, in their order.

    Every folder of ``<data_folder>/LibriSpeech/`` counts as a split; directly in
    ``data_folder`` (the ``LibriSpeech`` folder itself) only the official names do.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        Folder that contains ``LibriSpeech/`` (or the ``LibriSpeech`` folder itself).

    Returns
    -------
    list of str

    Example
    -------
    >>> import tempfile, os
    >>> root = tempfile.mkdtemp()
    >>> for split in ("dev-clean", "train-clean-100", "my-split"):
    ...     os.makedirs(os.path.join(root, "LibriSpeech", split))
    >>> splits_on_disk(root)
    ['train-clean-100', 'dev-clean', 'my-split']
    """
    data_folder = Path(data_folder)
    found = {name for name in SPLIT_SIZES if (data_folder / name).is_dir()}
    root = data_folder / "LibriSpeech"
    if root.is_dir():
        found.update(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [name for name in SPLIT_SIZES if name in found] + sorted(found - set(SPLIT_SIZES))


def _fitting_splits(asked, found, option):
    """The splits to suggest for ``option``: those asked for that exist, else likely ones.

    Validation is only suggested on held-out splits (``dev-*``, ``test-*``); none may fit.
    """
    present = [split for split in asked if split in found]
    if present:
        return present
    if "valid" in option:
        return [split for split in found if split.startswith(("dev-", "test-"))]
    return [split for split in found if split.startswith("train-")] or list(found)


def check_splits(
    data_folder,
    splits,
    option="--librispeech_train_splits",
    folder_option="--librispeech_folder",
):
    """The folder of every split; a missing one is an error naming the option that lists it.

    Checking is cheap (no file is read), so a recipe checks its options with it
    before any slow preparation.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        Folder that contains ``LibriSpeech/`` (or the ``LibriSpeech`` folder itself).
    splits : sequence of str
        Split folder names.
    option : str
        The recipe option that lists ``splits``, for the message.
    folder_option : str
        The recipe option that gives ``data_folder``, for the message.

    Returns
    -------
    dict
        ``{split: pathlib.Path}``.

    Raises
    ------
    ssast_sb.data.options.MissingDataError
        Naming the missing splits, the splits on disk, the value of ``option``
        that uses only these, and what to download otherwise.

    Example
    -------
    >>> import tempfile, os
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "LibriSpeech", "train-clean-100"))
    >>> try:
    ...     check_splits(root, ["train-clean-100", "train-clean-360"])
    ... except MissingDataError as error:
    ...     print(str(error).split(". ")[1][:70])
    Pass --librispeech_train_splits "[train-clean-100]" to use only the sp
    """
    data_folder = Path(data_folder)
    if not data_folder.is_dir():
        raise MissingDataError(
            f"{folder_option} {data_folder} does not exist. Pass the folder that holds "
            f"LibriSpeech/<split>/ (unpacked from {DOWNLOAD_URL}), or {folder_option} null "
            "to pretrain without LibriSpeech."
        )
    folders = {split: _split_folder(data_folder, split) for split in splits}
    missing = [split for split, folder in folders.items() if folder is None]
    if missing:
        raise _missing_splits_error(data_folder, splits, missing, option, folder_option)
    return folders


def _missing_splits_error(data_folder, splits, missing, option, folder_option):
    """The error of :func:`check_splits`: what is missing, what is there, what to pass."""
    found = splits_on_disk(data_folder)
    root = data_folder / "LibriSpeech"
    what = f"LibriSpeech split{'s' * (len(missing) > 1)} {', '.join(missing)} of {option}"
    where = f"not found in {data_folder} (looked in {root}/<split> and {data_folder}/<split>)"
    archives = ", ".join(
        f"{split}.tar.gz" + (f" ({SPLIT_SIZES[split]})" if split in SPLIT_SIZES else "")
        for split in missing
    )
    them = "them" if len(missing) > 1 else "it"
    download = (
        f"download {archives} from {DOWNLOAD_URL} and extract {them} inside {data_folder}"
        f", which gives {root}/<split>/<speaker>/<chapter>/*.flac."
    )
    if not found:
        return MissingDataError(
            f"{what} {where}, and there is no LibriSpeech split there at all. Check "
            f"{folder_option} (the folder that holds LibriSpeech/), or {download}"
        )
    fitting = _fitting_splits(splits, found, option)
    if fitting:
        instead = f"Pass {option} {cli_list(fitting)} to use only the splits you have"
    else:
        instead = (
            f'Pass {option} "[]" and --valid_source (a folder, CSV or JSON of held-out clips) '
            "to validate on other audio"
        )
    there = (
        f"the splits there are {', '.join(found)}"
        if len(found) > 1
        else f"the only split there is {found[0]}"
    )
    return MissingDataError(f"{what} {where}; {there}. {instead}, or {download}")


def _split_rows(split_folder):
    """List one row (without duration) per ``.flac`` file of a split (``.FLAC`` too), sorted."""
    rows = []
    for flac in find_files(split_folder, "*/*/*", AUDIO_EXTENSIONS):
        speaker = flac.parent.parent.name
        rows.append({"ID": flac.stem, "wav": os.path.abspath(flac), "speaker": speaker})
    if not rows:
        raise MissingDataError(
            f"No .flac files under {split_folder}/<speaker>/<chapter>/; is the archive from "
            f"{DOWNLOAD_URL} fully extracted? Or leave {split_folder.name} out of "
            "--librispeech_train_splits and --librispeech_valid_splits."
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
    ssast_sb.data.options.MissingDataError
        A ``FileNotFoundError`` when a split folder is missing, naming the splits on
        disk, the option value that uses only these, and what to download otherwise.
    ssast_sb.errors.OptionError
        When ``splits`` is empty.

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
        raise OptionError(
            'No LibriSpeech split asked for: pass --librispeech_train_splits "[train-clean-100]" '
            "(or any split of LibriSpeech/), or --librispeech_folder null to leave LibriSpeech out."
        )
    stamp = _librispeech_stamp(data_folder, save_folder, splits, on_bad_audio)
    if stamp.is_current(force):
        return None
    stamp.invalidate()

    # Check every split before the slow part, so a typo fails in a second.
    split_folders = check_splits(data_folder, splits)
    listed = {}
    for split in splits:
        logger.info("Preparing LibriSpeech %s from %s", split, split_folders[split])
        listed[split] = _split_rows(split_folders[split])
    kept, summary = validate_audio_splits(
        listed, on_bad_audio, report_path=save_folder / BAD_AUDIO_LIST
    )
    all_rows = []
    for split, split_csv in zip(splits, stamp.outputs):
        rows = kept[split]
        _check_speakers(split, split_folders[split], listed[split], rows)
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


def _check_speakers(split, split_folder, listed, rows):
    """Warns about speakers of a split whose folder yields no usable utterance."""
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
