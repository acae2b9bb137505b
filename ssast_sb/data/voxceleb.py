"""Manifests for VoxCeleb1 speaker identification (the SUPERB SID task, docs/fidelity.md d.3).

The official identification split ``iden_split.txt`` assigns each of the
153,516 utterances of the 1,251 speakers to train (1), validation (2) or test
(3); every speaker appears in all three. Utterances listed there but absent from
disk are counted, not an error, so any subset of the corpus can be prepared.

Expected layout (VoxCeleb1 dev + test wav archives, downloaded after
registering at `DOWNLOAD_URL`, and the split file `IDEN_SPLIT_URL`)::

    <data_folder>/wav/id<XXXXX>/<video id>/<utterance>.wav
    <data_folder>/iden_split.txt       # lines "1 id10001/1zcIwhmdeo4/00001.wav"

``iden_split.txt`` may also sit in ``<data_folder>/meta/``.

Example
-------
>>> import tempfile, os
>>> import numpy as np, soundfile as sf
>>> root = tempfile.mkdtemp()
>>> os.makedirs(os.path.join(root, "wav", "id10001", "1zcIwhmdeo4"))
>>> sf.write(os.path.join(root, "wav", "id10001", "1zcIwhmdeo4", "00001.wav"),
...          np.zeros(1600), 16000)
>>> _ = open(os.path.join(root, "iden_split.txt"), "w").write("1 id10001/1zcIwhmdeo4/00001.wav\\n")
>>> summary = prepare_voxceleb1_identification(root, os.path.join(root, "out"))
>>> summary["train"]["kept"], summary["num_speakers"]
(1, 1)
"""

import logging
import os
from collections import Counter
from pathlib import Path, PurePosixPath

from .manifest import (
    BAD_AUDIO_LIST,
    ListedFiles,
    ManifestError,
    PreparationStamp,
    check_class_coverage,
    remove_obsolete,
    resolved_path,
    validate_audio_splits,
    write_manifest_atomic,
)
from .options import MissingDataError

logger = logging.getLogger(__name__)

DOWNLOAD_URL = "https://www.robots.ox.ac.uk/~vgg/data/voxceleb/vox1.html"
IDEN_SPLIT_URL = "https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta/iden_split.txt"
IDEN_SPLIT_FILE = "iden_split.txt"
SPLIT_OF_CODE = {"1": "train", "2": "valid", "3": "test"}
SPLITS = ("train", "valid", "test")
#: Written by earlier versions: the sorted speaker IDs, which only match the label
#: encoder's order by chance of both being sorted. Removed when the manifests are rebuilt.
OBSOLETE_SPEAKERS_JSON = "voxceleb1_sid_speakers.json"
STAMP_NAME = "voxceleb1_sid"
FIELDNAMES = ["ID", "duration", "wav", "speaker", "video"]


def read_iden_split(path):
    """Read the official identification split.

    Arguments
    ---------
    path : str or pathlib.Path
        ``iden_split.txt``.

    Returns
    -------
    list of tuple
        ``(split, relative_path)`` per line, split being ``"train"``,
        ``"valid"`` or ``"test"``.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "iden_split.txt")
    >>> _ = open(path, "w").write("3 id10001/1zcIwhmdeo4/00001.wav\\n")
    >>> read_iden_split(path)
    [('test', 'id10001/1zcIwhmdeo4/00001.wav')]
    """
    entries = []
    with open(path, encoding="utf-8-sig") as split_file:
        for line_number, line in enumerate(split_file, start=1):
            if not line.strip():
                continue
            parts = line.split()
            if (
                len(parts) != 2
                or parts[0] not in SPLIT_OF_CODE
                or len(PurePosixPath(parts[1]).parts) != 3
            ):
                raise ManifestError(
                    f"{path}, line {line_number}: expected '<1|2|3> idXXXXX/<video>/<utt>.wav', "
                    f"got {line.strip()!r}"
                )
            entries.append((SPLIT_OF_CODE[parts[0]], parts[1]))
    return entries


def _find_inputs(data_folder):
    """The ``wav`` folder and the split file, with errors that say where to get them."""
    wav_folder = data_folder / "wav"
    if not wav_folder.is_dir():
        raise MissingDataError(
            f"VoxCeleb1 audio not found: {wav_folder} (--data_folder {data_folder}). VoxCeleb1 is "
            f"distributed after registration at {DOWNLOAD_URL}: download the dev and test wav "
            f"archives and extract both into {data_folder}, which gives "
            f"{wav_folder}/idXXXXX/<video>/*.wav; or pass the --data_folder that holds wav/."
        )
    for candidate in (data_folder / IDEN_SPLIT_FILE, data_folder / "meta" / IDEN_SPLIT_FILE):
        if candidate.is_file():
            return wav_folder, candidate
    raise MissingDataError(
        f"{IDEN_SPLIT_FILE} not found in {data_folder} (or its meta/), the --data_folder. "
        f"Download it from {IDEN_SPLIT_URL} and put it at {data_folder / IDEN_SPLIT_FILE}."
    )


def _listed_rows(entries, wav_folder):
    """Rows (without duration) per split of the listed utterances on disk, and those not found.

    Listed names match files on disk in any extension case (``00001.WAV`` too)."""
    finder, rows, not_found = ListedFiles(), {split: [] for split in SPLITS}, []
    for split, relative in entries:
        path = finder.find(wav_folder / relative)
        if path is None:
            not_found.append(relative)
            continue
        speaker, video, _ = PurePosixPath(relative).parts
        rows[split].append(
            {
                "ID": str(PurePosixPath(relative).with_suffix("")).replace("/", "-"),
                "wav": os.path.abspath(path),
                "speaker": speaker,
                "video": video,
            }
        )
    return rows, not_found


def _voxceleb_stamp(data_folder, save_folder, on_bad_audio):
    """The stamp of the three split manifests."""
    outputs = [save_folder / f"voxceleb1_sid_{split}.csv" for split in SPLITS]
    options = {"data_folder": resolved_path(data_folder), "on_bad_audio": on_bad_audio}
    return PreparationStamp(
        save_folder,
        STAMP_NAME,
        prepare_voxceleb1_identification,
        options,
        outputs,
        "VoxCeleb1 SID manifests",
    )


def _check_speakers(entries, kept, split_file):
    """Warn about speakers short of utterances; a speaker the model must know that has no
    training utterance left is an error (its valid or test utterances could not be scored)."""
    listed = {split: Counter() for split in SPLITS}
    for split, relative in entries:
        listed[split][PurePosixPath(relative).parts[0]] += 1
    counts = {split: Counter(row["speaker"] for row in kept[split]) for split in SPLITS}
    evaluated = set(counts["valid"]) | set(counts["test"])
    # A speaker absent from every split is a subset of the corpus, not an error.
    return check_class_coverage(
        "VoxCeleb1 SID", split_file, listed, counts, {"train": evaluated}
    ), counts


def prepare_voxceleb1_identification(
    data_folder,
    save_folder,
    skip_prep=False,
    on_bad_audio="error",
    force=False,
):
    """Write VoxCeleb1 speaker-identification manifests: train, valid and test.

    Outputs are ``<save_folder>/voxceleb1_sid_{train,valid,test}.csv`` with the
    columns ``ID,duration,wav,speaker,video`` (``ID`` like
    ``id10001-1zcIwhmdeo4-00001``, ``speaker`` the class label) and the stamp
    ``voxceleb1_sid.prepared.json``, which records the options that made them
    and the utterances per speaker (see `ssast_sb.data.manifest.PreparationStamp`).
    No speaker list is written: the class order is the fine-tuning label
    encoder's (``label_encoder.txt``). Listed utterances absent from disk are
    warned about with counts per speaker; a speaker with valid or test
    utterances but no training utterance left is an error. The outputs are
    reused when their stamp matches ``data_folder`` and ``on_bad_audio``. Under
    DDP wrap the call in ``speechbrain.utils.distributed.run_on_main``.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        Folder containing ``wav/`` and ``iden_split.txt``.
    save_folder : str or pathlib.Path
        Where the manifests are written.
    skip_prep : bool
        If True, do nothing.
    on_bad_audio : {"error", "skip"}
        What to do with a present file that is unreadable, truncated or empty
        (see `ssast_sb.data.manifest.validate_audio_rows`); listed files absent
        from disk are only counted.
    force : bool
        Rewrite the outputs even when their stamp matches.

    Returns
    -------
    dict or None
        ``train``, ``valid``, ``test``: the counts of `validate_audio_rows`;
        ``num_speakers`` (1,251 on the full corpus); ``listed``; ``not_found``
        (listed utterances absent from disk); ``short_classes`` (speakers short
        of utterances, per split); None when skipped.

    Raises
    ------
    FileNotFoundError
        When ``wav/`` or the split file is missing (saying where to get them), or
        when none of the listed utterances is on disk.
    ssast_sb.data.manifest.ClassLostError
        When a speaker with valid or test utterances has no training utterance.

    Example
    -------
    >>> import tempfile
    >>> prepare_voxceleb1_identification(
    ...     tempfile.mkdtemp(), tempfile.mkdtemp(), skip_prep=True) is None
    True
    """
    if skip_prep:
        logger.info("Skipping VoxCeleb1 preparation (skip_prep=True)")
        return None
    data_folder, save_folder = Path(data_folder), Path(save_folder)
    stamp = _voxceleb_stamp(data_folder, save_folder, on_bad_audio)
    if stamp.is_current(force):
        return None
    stamp.invalidate()

    wav_folder, split_file = _find_inputs(data_folder)
    entries = read_iden_split(split_file)
    rows, not_found = _listed_rows(entries, wav_folder)
    if not any(rows.values()):
        raise FileNotFoundError(
            f"None of the {len(entries)} utterances of {split_file} is under {wav_folder}; "
            f"extract the VoxCeleb1 wav archives from {DOWNLOAD_URL} there."
        )

    summary = {"listed": len(entries), "not_found": len(not_found)}
    kept, checked = validate_audio_splits(
        {split: rows[split] for split in SPLITS},
        on_bad_audio,
        report_path=save_folder / BAD_AUDIO_LIST,
    )
    summary.update(checked)
    summary["short_classes"], counts = _check_speakers(entries, kept, split_file)
    for split, split_csv in zip(SPLITS, stamp.outputs):
        write_manifest_atomic(kept[split], split_csv, FIELDNAMES)
        logger.info("VoxCeleb1 SID %s: %d utterances -> %s", split, len(kept[split]), split_csv)
    speakers = set().union(*(set(counts[split]) for split in SPLITS))
    summary["num_speakers"] = len(speakers)
    logger.info("VoxCeleb1 SID: %d speakers (1,251 in the full corpus)", len(speakers))
    remove_obsolete(
        save_folder / OBSOLETE_SPEAKERS_JSON,
        "the label encoder saved with the model (label_encoder.txt) is the speaker list",
    )
    stamp.write(summary)
    return summary
