"""Manifests for ESC-50, environmental sound classification in five folds.

The official release holds 2,000 five-second clips of 50 classes, already
assigned to 5 folds for cross-validation (docs/fidelity.md d.2: the result is the
accuracy averaged over the folds). The clips are 44.1 kHz; the original
converts them to 16 kHz with sox, here they stay as they are and
`ssast_sb.data.audio.load_audio` resamples at load time.

Expected layout (the unpacked https://github.com/karoldvl/ESC-50/archive/master.zip,
or `download_esc50`)::

    <data_folder>/ESC-50-master/audio/<fold>-<freesound id>-<take>-<target>.wav
    <data_folder>/ESC-50-master/meta/esc50.csv

``data_folder`` may also be the ``ESC-50-master`` folder itself. This module
also holds `download_and_extract`, the checksummed, atomic download used by the
other dataset modules.

Example
-------
>>> import tempfile, os
>>> import numpy as np, soundfile as sf
>>> root = tempfile.mkdtemp()
>>> os.makedirs(os.path.join(root, "audio")); os.makedirs(os.path.join(root, "meta"))
>>> sf.write(os.path.join(root, "audio", "1-100032-A-0.wav"), np.zeros(4410), 44100)
>>> with open(os.path.join(root, "meta", "esc50.csv"), "w") as f:
...     _ = f.write("filename,fold,target,category,esc10,src_file,take\\n")
...     _ = f.write("1-100032-A-0.wav,1,0,dog,True,100032,A\\n")
>>> summary = prepare_esc50(root, os.path.join(root, "manifests"))
>>> summary["fold1"]["kept"], summary["num_classes"]
(1, 1)
"""

import csv
import logging
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

from ssast_sb.download import (  # noqa: F401 (DownloadError, format_size: this module's API)
    NETWORK_ERRORS,
    DownloadError,
    fetch_url,
    format_size,
    sha256_of,
)

from .manifest import (
    BAD_AUDIO_LIST,
    ListedFiles,
    ManifestError,
    PreparationStamp,
    check_class_coverage,
    read_manifest,
    remove_obsolete,
    resolved_path,
    validate_audio_splits,
    write_manifest_atomic,
)
from .options import MissingDataError, check_folds

logger = logging.getLogger(__name__)

DOWNLOAD_URL = "https://github.com/karoldvl/ESC-50/archive/master.zip"
RELEASE_FOLDER = "ESC-50-master"
META_FILE = Path("meta") / "esc50.csv"
META_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
NUM_FOLDS = 5
#: Written by earlier versions: class names in the official target order, which is not
#: the fine-tuning label encoder's (sorted) order. Removed when the manifests are rebuilt.
OBSOLETE_LABELS_JSON = "esc50_labels.json"
STAMP_NAME = "esc50"
FIELDNAMES = ["ID", "duration", "wav", "label", "target", "fold"]


def _download_failed(url, destination, target_folder, size, error):
    """The `DownloadError` naming the address, the cause and how to do without a download."""
    reason = getattr(error, "reason", None) or error
    size_text = f" ({format_size(size)})" if size else ""
    return DownloadError(
        f"Could not download {url}{size_text} to {destination}: {reason}. "
        f"Without network access, fetch that archive elsewhere and unpack it so that "
        f"{target_folder} exists, then run again with download=False (--download False "
        "in the recipes), which uses the data on disk and never downloads."
    )


def _fetch(url, destination, target_folder, size_hint=None):
    """Download ``url`` to ``destination`` (complete or not at all); return its sha256."""
    try:
        return fetch_url(url, destination, size_hint)["sha256"]
    except NETWORK_ERRORS as error:
        raise _download_failed(url, destination, target_folder, size_hint, error) from None


def _extract(archive, folder):
    """Unpack a zip or tar archive into ``folder`` (no member may escape it)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(folder)  # zipfile drops absolute and '..' parts
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tarred:
            tarred.extractall(folder, filter="data")
    else:
        raise ValueError(f"{archive} is neither a zip nor a tar archive")


def download_and_extract(url, target_folder, sha256=None, keep_archive=True, size_hint=None):
    """Download an archive and unpack it as ``target_folder``, atomically.

    The address, the destination and the size (the server's ``Content-Length``,
    else ``size_hint``) are logged before the first byte is fetched; a failed
    download raises `DownloadError`, which says how to do without one. The
    archive is streamed to a temporary file next to ``target_folder`` and
    renamed once complete; its SHA-256 is checked against ``sha256`` when given,
    and logged otherwise so that it can be pinned. It is then unpacked into a
    temporary folder, which is renamed to ``target_folder`` only once extraction
    succeeded. When the archive holds a single top-level folder, that folder
    becomes ``target_folder``. A partial download or extraction therefore never
    looks like a finished one, and nothing is done when ``target_folder`` exists.
    (SpeechBrain's ``download_file`` has neither the checksum nor the atomic
    rename, which is why this one exists.)

    Arguments
    ---------
    url : str
        ``https://``, ``http://`` or ``file://`` address of a zip or tar(.gz) archive.
    target_folder : str or pathlib.Path
        Folder the archive's content ends up in.
    sha256 : str, optional
        Expected hex digest of the archive.
    keep_archive : bool
        Keep the downloaded archive next to ``target_folder`` (reused by a
        later call); delete it after extraction otherwise.
    size_hint : int, optional
        Expected size in bytes, logged when the server does not send one.

    Returns
    -------
    pathlib.Path
        ``target_folder``.

    Raises
    ------
    DownloadError
        When the archive cannot be fetched (no network, wrong address).
    ValueError
        When the digest differs from ``sha256`` (the archive is deleted).

    Example
    -------
    >>> import tempfile, os, zipfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(root / "toy.zip", "w") as z:
    ...     z.writestr("toy/readme.txt", "hi")
    >>> out = download_and_extract((root / "toy.zip").as_uri(), root / "data" / "toy")
    >>> (out / "readme.txt").read_text()
    'hi'
    """
    target_folder = Path(target_folder)
    if target_folder.is_dir():
        logger.info("%s already exists, nothing to download", target_folder)
        return target_folder
    target_folder.parent.mkdir(parents=True, exist_ok=True)
    archive_name = url.rstrip("/").rsplit("/", 1)[-1] or "download"
    if not archive_name.startswith(target_folder.name):
        archive_name = f"{target_folder.name}-{archive_name}"
    archive = target_folder.parent / archive_name
    if archive.is_file():
        logger.info("Reusing the downloaded archive %s", archive)
        digest = sha256_of(archive)
    else:
        digest = _fetch(url, archive, target_folder, size_hint)
    if sha256 is None:
        logger.info("SHA-256 of %s: %s (pass it as sha256= to pin it)", archive.name, digest)
    elif digest.lower() != sha256.lower():
        archive.unlink()
        raise ValueError(
            f"Checksum mismatch for {url}: expected sha256 {sha256}, got {digest}. "
            "The download was deleted; try again, or check the expected value."
        )

    tmp_folder = Path(
        tempfile.mkdtemp(dir=target_folder.parent, prefix=f".{target_folder.name}.", suffix=".tmp")
    )
    try:
        logger.info("Extracting %s", archive)
        _extract(archive, tmp_folder)
        entries = list(tmp_folder.iterdir())
        if len(entries) == 1 and entries[0].is_dir():
            os.replace(entries[0], target_folder)
            tmp_folder.rmdir()
        else:
            os.replace(tmp_folder, target_folder)
    except BaseException:
        shutil.rmtree(tmp_folder, ignore_errors=True)
        raise
    if not keep_archive:
        archive.unlink()
    return target_folder


def download_esc50(data_folder, url=DOWNLOAD_URL, sha256=None, keep_archive=True):
    """Download and unpack the official ESC-50 release into ``<data_folder>/ESC-50-master``.

    The GitHub ``master.zip`` has no published checksum (it changes with the
    repository), so ``sha256`` is None by default and the digest is logged.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        Parent folder of the dataset.
    url : str
        Archive address; the official release by default.
    sha256 : str, optional
        Expected hex digest of the archive.
    keep_archive : bool
        Keep the zip next to the dataset.

    Returns
    -------
    pathlib.Path
        The dataset folder, to pass to `prepare_esc50`.

    Example
    -------
    >>> import tempfile, os, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / "ESC-50-master").mkdir()
    >>> download_esc50(folder).name  # already there: nothing is downloaded
    'ESC-50-master'
    """
    return download_and_extract(url, Path(data_folder) / RELEASE_FOLDER, sha256, keep_archive)


def _release_candidates(data_folder):
    """Where the release may be: ``data_folder/ESC-50-master`` or ``data_folder`` itself."""
    return [Path(data_folder) / RELEASE_FOLDER, Path(data_folder)]


def _find_release(data_folder):
    """The folder holding ``meta/esc50.csv`` and ``audio/``."""
    candidates = _release_candidates(data_folder)
    for candidate in candidates:
        if (candidate / META_FILE).is_file():
            if not (candidate / "audio").is_dir():
                raise FileNotFoundError(
                    f"ESC-50 metadata found in {candidate} but not its audio/ folder; "
                    f"re-extract {DOWNLOAD_URL}."
                )
            return candidate
    raise MissingDataError(
        f"ESC-50 not found: no {META_FILE} in {candidates[0]} or {candidates[1]} "
        f"(--data_folder {data_folder}). Pass --download True to download it there, or "
        f"download {DOWNLOAD_URL} (or call download_esc50({str(data_folder)!r})) and unzip it "
        f"inside {data_folder}, which gives {candidates[0]}/audio/*.wav and "
        f"{candidates[0] / META_FILE}; or pass the --data_folder that holds it."
    )


def _read_meta(path):
    """Read ``esc50.csv`` into rows with integer ``fold`` and ``target`` (UTF-8 BOM ignored)."""
    with open(path, newline="", encoding="utf-8-sig") as csv_file:
        reader = csv.DictReader(csv_file)
        header = reader.fieldnames or []
        missing = [name for name in META_COLUMNS[:4] if name not in header]
        if missing:
            raise ManifestError(f"{path} lacks the column(s) {missing}; expected {META_COLUMNS}")
        entries = []
        for line_number, row in enumerate(reader, start=2):
            try:
                fold, target = int(row["fold"]), int(row["target"])
            except ValueError as err:
                raise ManifestError(f"{path}, line {line_number}: bad fold or target") from err
            if not 1 <= fold <= NUM_FOLDS:
                raise ManifestError(f"{path}, line {line_number}: fold {fold} not in 1..5")
            entries.append({**row, "fold": fold, "target": target})
    return entries


def _class_names(entries, path):
    """Category name of each target index; the metadata must be consistent."""
    names = {}
    for entry in entries:
        known = names.setdefault(entry["target"], entry["category"])
        if known != entry["category"]:
            raise ManifestError(
                f"{path}: target {entry['target']} is both {known!r} and {entry['category']!r}"
            )
    if sorted(names) != list(range(len(names))):
        logger.warning("ESC-50 targets are not 0..%d: %s", len(names) - 1, sorted(names))
    return [names[target] for target in sorted(names)]


#: Columns of the cross-validation manifests (the official ``target`` index is left out:
#: the fine-tuning pipeline computes its own ``target``).
CV_FIELDNAMES = ["ID", "duration", "wav", "label", "fold"]


def cross_validation_manifests(save_folder, test_fold):
    """Paths of fold ``test_fold``'s manifests: ``train`` (the other four folds), ``valid``
    and ``test`` (fold ``test_fold``, which picks the epoch and tests, as the original).

    Arguments
    ---------
    save_folder : str or pathlib.Path
        Where :func:`prepare_esc50` wrote them.
    test_fold : int
        1 to 5.

    Returns
    -------
    dict

    Example
    -------
    >>> sorted(cross_validation_manifests("m", 3).items())[1]
    ('train', 'm/esc50_fold3_train.csv')
    """
    test = str(Path(save_folder) / f"esc50_fold{test_fold}_test.csv")
    train = str(Path(save_folder) / f"esc50_fold{test_fold}_train.csv")
    return {"train": train, "valid": test, "test": test}


def _write_cross_validation(save_folder, test_fold):
    """Fold ``test_fold``'s train (the other four folds) and test manifests."""
    paths = cross_validation_manifests(save_folder, test_fold)
    others = set(range(1, NUM_FOLDS + 1)) - {test_fold}
    for split, folds in (("train", others), ("test", {test_fold})):
        rows = []
        for fold in sorted(folds):
            rows.extend(read_manifest(Path(save_folder) / f"esc50_fold{fold}.csv"))
        rows = [{key: row[key] for key in CV_FIELDNAMES} for row in rows]
        write_manifest_atomic(rows, paths[split], CV_FIELDNAMES)


def _fold_rows(entries, release, fold, finder):
    """Rows (without duration) of one official fold; file names matched in any case."""
    rows = []
    for entry in entries:
        if entry["fold"] != fold:
            continue
        listed = release / "audio" / entry["filename"]
        rows.append(
            {
                "ID": Path(entry["filename"]).stem,
                "wav": os.path.abspath(finder.find(listed) or listed),
                "label": entry["category"],
                "target": entry["target"],
                "fold": fold,
            }
        )
    return rows


def _esc50_stamp(data_folder, save_folder, on_bad_audio):
    """The stamp of the five per-fold manifests."""
    outputs = [save_folder / f"esc50_fold{fold}.csv" for fold in range(1, NUM_FOLDS + 1)]
    options = {"data_folder": resolved_path(data_folder), "on_bad_audio": on_bad_audio}
    return PreparationStamp(
        save_folder, STAMP_NAME, prepare_esc50, options, outputs, "ESC-50 manifests"
    )


def _checked_folds(entries, release, meta_path, on_bad_audio, report_path):
    """Validated rows and counts per fold; a class lost from a fold is an error."""
    finder = ListedFiles()
    listed_rows = {
        f"fold{fold}": _fold_rows(entries, release, fold, finder)
        for fold in range(1, NUM_FOLDS + 1)
    }
    rows, summary = validate_audio_splits(listed_rows, on_bad_audio, report_path=report_path)
    listed = {
        f"fold{fold}": Counter(e["category"] for e in entries if e["fold"] == fold)
        for fold in range(1, NUM_FOLDS + 1)
    }
    kept = {name: Counter(row["label"] for row in fold_rows) for name, fold_rows in rows.items()}
    summary["short_classes"] = check_class_coverage("ESC-50", meta_path, listed, kept)
    return rows, summary


def prepare_esc50(
    data_folder,
    save_folder,
    folds=(),
    download=False,
    skip_prep=False,
    on_bad_audio="error",
    force=False,
):
    """Write one ESC-50 manifest per official fold, and the cross-validation folds asked for.

    Outputs are ``<save_folder>/esc50_fold{1..5}.csv`` with the columns
    ``ID,duration,wav,label,target,fold`` (``label`` is the category name,
    ``target`` its official index) and the stamp ``esc50.prepared.json``, which
    records the options that made them and the clip counts per class (see
    `ssast_sb.data.manifest.PreparationStamp`). No class list is written: the
    class order is the fine-tuning label encoder's (``label_encoder.txt``).
    For each fold ``k`` of ``folds`` the cross-validation manifests are written
    too, from the per-fold ones: ``esc50_fold<k>_train.csv`` (the other four
    folds) and ``esc50_fold<k>_test.csv`` (see :func:`cross_validation_manifests`).
    The per-fold manifests are reused when their stamp matches ``data_folder``
    and ``on_bad_audio``. File names of the metadata match files on disk in any
    extension case. Under DDP wrap the call in
    ``speechbrain.utils.distributed.run_on_main``.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        Folder containing ``ESC-50-master/`` (or that folder itself).
    save_folder : str or pathlib.Path
        Where the manifests are written.
    folds : sequence of int
        Test folds whose cross-validation manifests are written.
    download : bool
        Download the official release into ``data_folder`` when it is absent
        (:func:`download_esc50`).
    skip_prep : bool
        If True, do nothing.
    on_bad_audio : {"error", "skip"}
        What to do with a listed clip that is missing, unreadable, truncated or
        empty (see `ssast_sb.data.manifest.validate_audio_rows`).
    force : bool
        Rewrite the outputs even when their stamp matches.

    Returns
    -------
    dict or None
        ``fold1`` .. ``fold5``: the counts of `validate_audio_rows`;
        ``num_classes``; ``class_counts`` (clips kept per class, in sorted
        order); ``short_classes`` (classes that lost clips, per fold); None when
        skipped.

    Raises
    ------
    ssast_sb.data.options.MissingDataError
        A ``FileNotFoundError`` when the release is not found, saying what to
        download and where to put it.
    ssast_sb.errors.OptionError
        When a fold is not one of 1..5.
    ssast_sb.data.manifest.ClassLostError
        When a fold has no clip left of a class the metadata lists in it.

    Example
    -------
    >>> import tempfile
    >>> prepare_esc50(tempfile.mkdtemp(), tempfile.mkdtemp(), skip_prep=True) is None
    True
    """
    folds = check_folds(folds, NUM_FOLDS, "ESC-50")
    if skip_prep:
        logger.info("Skipping ESC-50 preparation (skip_prep=True)")
        return None
    data_folder, save_folder = Path(data_folder), Path(save_folder)
    stamp = _esc50_stamp(data_folder, save_folder, on_bad_audio)
    if stamp.is_current(force):
        _write_folds(save_folder, folds)
        return None
    stamp.invalidate()

    if download and not any((c / META_FILE).is_file() for c in _release_candidates(data_folder)):
        download_esc50(data_folder)
    release = _find_release(data_folder)
    meta_path = release / META_FILE
    entries = _read_meta(meta_path)
    class_names = _class_names(entries, meta_path)
    logger.info(
        "ESC-50: %d clips of %d classes listed in %s", len(entries), len(class_names), meta_path
    )

    rows, summary = _checked_folds(
        entries, release, meta_path, on_bad_audio, Path(save_folder) / BAD_AUDIO_LIST
    )
    for fold_csv in stamp.outputs:
        fold_rows = rows[fold_csv.stem.split("_")[-1]]
        write_manifest_atomic(fold_rows, fold_csv, FIELDNAMES)
        logger.info("ESC-50 %s: %d clips -> %s", fold_csv.stem, len(fold_rows), fold_csv)
    counts = Counter(row["label"] for fold_rows in rows.values() for row in fold_rows)
    summary["num_classes"] = len(class_names)
    summary["class_counts"] = dict(sorted(counts.items()))
    remove_obsolete(
        save_folder / OBSOLETE_LABELS_JSON,
        "its class order (the official targets) is not the model's; the label encoder "
        "saved with the model (label_encoder.txt) is the class list",
    )
    stamp.write(summary)
    _write_folds(save_folder, folds)
    return summary


def _write_folds(save_folder, folds):
    """The cross-validation manifests of ``folds``, rebuilt from the per-fold manifests."""
    for fold in folds:
        _write_cross_validation(save_folder, fold)
