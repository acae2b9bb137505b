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

import json
import logging
import os
from pathlib import Path, PurePosixPath

from .manifest import (
    ManifestError,
    atomic_open,
    manifests_exist,
    validate_audio_rows,
    write_manifest_atomic,
)

logger = logging.getLogger(__name__)

DOWNLOAD_URL = "https://www.robots.ox.ac.uk/~vgg/data/voxceleb/vox1.html"
IDEN_SPLIT_URL = "https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta/iden_split.txt"
IDEN_SPLIT_FILE = "iden_split.txt"
SPLIT_OF_CODE = {"1": "train", "2": "valid", "3": "test"}
SPLITS = ("train", "valid", "test")
SPEAKERS_JSON = "voxceleb1_sid_speakers.json"
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
    with open(path, encoding="utf-8") as split_file:
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
        raise FileNotFoundError(
            f"VoxCeleb1 audio not found: {wav_folder}. VoxCeleb1 is distributed after "
            f"registration at {DOWNLOAD_URL}: download the dev and test wav archives and "
            f"extract both into {data_folder}, which gives {wav_folder}/idXXXXX/<video>/*.wav."
        )
    for candidate in (data_folder / IDEN_SPLIT_FILE, data_folder / "meta" / IDEN_SPLIT_FILE):
        if candidate.is_file():
            return wav_folder, candidate
    raise FileNotFoundError(
        f"{IDEN_SPLIT_FILE} not found in {data_folder} (or its meta/). Download it from "
        f"{IDEN_SPLIT_URL} and put it at {data_folder / IDEN_SPLIT_FILE}."
    )


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
    ``id10001-1zcIwhmdeo4-00001``, ``speaker`` the class label) and
    ``voxceleb1_sid_speakers.json``, the sorted speaker IDs (class index order).
    Nothing is done when all outputs exist. Under DDP wrap the call in
    ``speechbrain.utils.distributed.run_on_main``.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        Folder containing ``wav/`` and ``iden_split.txt``.
    save_folder : str or pathlib.Path
        Where the manifests are written.
    skip_prep : bool
        If True, do nothing.
    on_bad_audio : {"error", "skip"}
        What to do with a present file that is unreadable or empty (see
        `ssast_sb.data.manifest.validate_audio_rows`); listed files absent from
        disk are only counted.
    force : bool
        Rewrite the outputs even when they all exist.

    Returns
    -------
    dict or None
        ``train``, ``valid``, ``test``: the counts of `validate_audio_rows`;
        ``num_speakers`` (1,251 on the full corpus); ``listed``; ``not_found``
        (listed utterances absent from disk); None when skipped.

    Raises
    ------
    FileNotFoundError
        When ``wav/`` or the split file is missing (saying where to get them), or
        when none of the listed utterances is on disk.

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
    split_csvs = {split: save_folder / f"voxceleb1_sid_{split}.csv" for split in SPLITS}
    speakers_json = save_folder / SPEAKERS_JSON
    if not force and manifests_exist([*split_csvs.values(), speakers_json]):
        logger.info("VoxCeleb1 manifests already in %s, skipping preparation", save_folder)
        return None

    wav_folder, split_file = _find_inputs(data_folder)
    entries = read_iden_split(split_file)
    rows = {split: [] for split in SPLITS}
    not_found = []
    for split, relative in entries:
        path = wav_folder / relative
        if not path.is_file():
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
    if not any(rows.values()):
        raise FileNotFoundError(
            f"None of the {len(entries)} utterances of {split_file} is under {wav_folder}; "
            f"extract the VoxCeleb1 wav archives from {DOWNLOAD_URL} there."
        )
    if not_found:
        logger.info(
            "VoxCeleb1: %d of %d listed utterances not on disk (a subset?), e.g. %s",
            len(not_found),
            len(entries),
            not_found[0],
        )

    summary = {"listed": len(entries), "not_found": len(not_found)}
    speakers = set()
    for split, split_csv in split_csvs.items():
        split_rows, summary[split] = validate_audio_rows(rows[split], on_bad_audio)
        write_manifest_atomic(split_rows, split_csv, FIELDNAMES)
        speakers.update(row["speaker"] for row in split_rows)
        logger.info("VoxCeleb1 SID %s: %d utterances -> %s", split, len(split_rows), split_csv)
    train_speakers = {row["speaker"] for row in rows["train"]}
    unseen = speakers - train_speakers
    if unseen:
        logger.warning(
            "%d speaker(s) have no training utterance, e.g. %s", len(unseen), min(unseen)
        )
    summary["num_speakers"] = len(speakers)
    logger.info("VoxCeleb1 SID: %d speakers (1,251 in the full corpus)", len(speakers))

    # Written last: its presence means every split manifest is complete.
    with atomic_open(speakers_json) as json_file:
        json.dump(sorted(speakers), json_file, indent=1)
    return summary
