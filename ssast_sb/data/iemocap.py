"""Manifests for IEMOCAP emotion recognition (the SUPERB ER task, docs/fidelity.md d.3).

The usual four-class setup: neutral (``neu``), happy (``hap`` and ``exc``
merged), sad (``sad``) and angry (``ang``); utterances with any other label
(frustration, surprise, fear, ...) are dropped. One manifest per session, so
that the five leave-one-session-out folds are built by choosing the test session.

Expected layout (IEMOCAP is licensed by USC SAIL on request, see `REQUEST_URL`)::

    <data_folder>/IEMOCAP_full_release/Session<n>/sentences/wav/<dialog>/<utterance>.wav
    <data_folder>/IEMOCAP_full_release/Session<n>/dialog/EmoEvaluation/<dialog>.txt

``data_folder`` may also be the ``IEMOCAP_full_release`` folder itself. In an
evaluation file, each utterance has one summary line
``[start - end]<TAB><utterance><TAB><label><TAB>[V, A, D]``.

Example
-------
>>> import tempfile, os
>>> import numpy as np, soundfile as sf
>>> root = tempfile.mkdtemp()
>>> session = os.path.join(root, "Session1")
>>> os.makedirs(os.path.join(session, "sentences", "wav", "Ses01F_impro01"))
>>> os.makedirs(os.path.join(session, "dialog", "EmoEvaluation"))
>>> wav = os.path.join(session, "sentences", "wav", "Ses01F_impro01", "Ses01F_impro01_M000.wav")
>>> sf.write(wav, np.zeros(1600), 16000)
>>> with open(os.path.join(session, "dialog", "EmoEvaluation", "Ses01F_impro01.txt"), "w") as f:
...     _ = f.write("[0.1 - 1.1]\\tSes01F_impro01_M000\\texc\\t[2.5, 2.5, 2.5]\\n")
>>> summary = prepare_iemocap(root, os.path.join(root, "out"), sessions=[1])
>>> summary["session1"]["kept"], summary["class_counts"]["happy"]
(1, 1)
"""

import logging
import os
import random
import re
from collections import Counter
from pathlib import Path

from .manifest import (
    BAD_AUDIO_LIST,
    ListedFiles,
    PreparationStamp,
    check_class_coverage,
    find_files,
    read_manifest,
    remove_obsolete,
    resolved_path,
    validate_audio_splits,
    write_manifest_atomic,
)
from .options import MissingDataError, check_folds

logger = logging.getLogger(__name__)

REQUEST_URL = "https://sail.usc.edu/iemocap/iemocap_release.htm"
RELEASE_FOLDER = "IEMOCAP_full_release"
SESSIONS = (1, 2, 3, 4, 5)
#: Evaluation label -> class of the four-class task; every other label is dropped.
EMOTION_CLASSES = {"neu": "neutral", "hap": "happy", "exc": "happy", "sad": "sad", "ang": "angry"}
CLASS_NAMES = ("neutral", "happy", "sad", "angry")
#: Written by earlier versions: the classes in CLASS_NAMES order, which is not the
#: fine-tuning label encoder's (sorted) order. Removed when the manifests are rebuilt.
OBSOLETE_LABELS_JSON = "iemocap_labels.json"
STAMP_NAME = "iemocap"
FIELDNAMES = ["ID", "duration", "wav", "label", "emotion", "speaker", "session"]

_SUMMARY_LINE = re.compile(
    r"^\[(?P<start>[\d.]+) - (?P<end>[\d.]+)\]\s+(?P<utt>Ses(?P<session>\d\d)\w+)\s+"
    r"(?P<emotion>\w+)\s+\["
)


def _find_release(data_folder):
    """The folder holding ``Session1`` .. ``Session5``."""
    candidates = [data_folder / RELEASE_FOLDER, data_folder]
    for candidate in candidates:
        if any((candidate / f"Session{n}").is_dir() for n in SESSIONS):
            return candidate
    raise MissingDataError(
        f"IEMOCAP not found: no Session1..Session5 folders in {candidates[0]} or "
        f"{candidates[1]} (--data_folder {data_folder}). IEMOCAP is not downloadable: request "
        f"it from USC SAIL at {REQUEST_URL}, then extract the release so that "
        f"{candidates[0]}/Session1/sentences/wav/ and .../dialog/EmoEvaluation/ exist, and "
        "pass as --data_folder the folder that holds it."
    )


def speaker_of(utterance_id):
    """Speaker of an utterance: its session and the gender letter of its last part.

    The dialog name's letter (``Ses01F_...``) tells who wore the motion-capture
    markers; the utterance's own last part (``..._M013``) tells who speaks.

    Arguments
    ---------
    utterance_id : str
        E.g. ``"Ses01F_impro01_M013"``.

    Returns
    -------
    str
        E.g. ``"Ses01M"``.

    Example
    -------
    >>> speaker_of("Ses01F_impro01_M013"), speaker_of("Ses03M_script02_1_F005")
    ('Ses01M', 'Ses03F')
    """
    return f"{utterance_id[:5]}{utterance_id.rsplit('_', 1)[-1][0]}"


def read_emo_evaluation(path):
    """Read the per-utterance summary labels of one EmoEvaluation file.

    Arguments
    ---------
    path : str or pathlib.Path
        ``Session<n>/dialog/EmoEvaluation/<dialog>.txt``.

    Returns
    -------
    list of tuple
        ``(utterance_id, label)`` in file order, e.g. ``("Ses01F_impro01_F000", "neu")``.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "Ses01F_impro01.txt")
    >>> with open(path, "w") as f:
    ...     _ = f.write("% header\\n[6.2901 - 8.2357]\\tSes01F_impro01_F000\\tneu\\t"
    ...                 "[2.5000, 2.5000, 2.5000]\\nC-E2:\\tNeutral;\\t()\\n")
    >>> read_emo_evaluation(path)
    [('Ses01F_impro01_F000', 'neu')]
    """
    entries = []
    with open(path, encoding="utf-8-sig", errors="replace") as eval_file:
        for line in eval_file:
            match = _SUMMARY_LINE.match(line)
            if match:
                entries.append((match["utt"], match["emotion"]))
    return entries


def _session_rows(release, session, finder):
    """Rows (without duration) of one session's four-class utterances, and dropped labels.

    Wav files are matched in any extension case (``.WAV`` too) through ``finder``."""
    session_folder = release / f"Session{session}"
    eval_folder = session_folder / "dialog" / "EmoEvaluation"
    if not eval_folder.is_dir():
        raise FileNotFoundError(
            f"IEMOCAP labels not found: {eval_folder}. Is the release from {REQUEST_URL} "
            "fully extracted?"
        )
    eval_files = find_files(eval_folder, "*", (".txt",))
    rows, dropped = [], Counter()
    for eval_file in eval_files:
        for utt_id, emotion in read_emo_evaluation(eval_file):
            if emotion not in EMOTION_CLASSES:
                dropped[emotion] += 1
                continue
            dialog = utt_id.rsplit("_", 1)[0]
            wav = session_folder / "sentences" / "wav" / dialog / f"{utt_id}.wav"
            rows.append(
                {
                    "ID": utt_id,
                    "wav": os.path.abspath(finder.find(wav) or wav),
                    "label": EMOTION_CLASSES[emotion],
                    "emotion": emotion,
                    "speaker": speaker_of(utt_id),
                    "session": session,
                }
            )
    return rows, dropped


def fold_manifests(save_folder, test_session):
    """Paths of the leave-one-session-out fold ``test_session``: ``train``, ``valid``, ``test``.

    Arguments
    ---------
    save_folder : str or pathlib.Path
        Where :func:`prepare_iemocap` wrote them.
    test_session : int
        1 to 5.

    Returns
    -------
    dict

    Example
    -------
    >>> fold_manifests("m", 2)["test"]
    'm/iemocap_session2.csv'
    """
    folder = Path(save_folder)
    paths = {
        split: str(folder / f"iemocap_fold{test_session}_{split}.csv")
        for split in ("train", "valid")
    }
    paths["test"] = str(folder / f"iemocap_session{test_session}.csv")
    return paths


def _write_fold(save_folder, test_session, valid_ratio, seed):
    """Splits the sessions other than ``test_session`` into the fold's train and valid."""
    rows = []
    for session in SESSIONS:
        if session != test_session:
            rows.extend(read_manifest(Path(save_folder) / f"iemocap_session{session}.csv"))
    random.Random(seed).shuffle(rows)
    num_valid = int(round(valid_ratio * len(rows)))
    paths = fold_manifests(save_folder, test_session)
    write_manifest_atomic(rows[num_valid:], paths["train"], FIELDNAMES)
    write_manifest_atomic(rows[:num_valid], paths["valid"], FIELDNAMES)


def prepare_iemocap(
    data_folder,
    save_folder,
    sessions=SESSIONS,
    folds=(),
    valid_ratio=0.2,
    seed=0,
    skip_prep=False,
    on_bad_audio="error",
    force=False,
):
    """Write one four-class IEMOCAP manifest per session, and the folds asked for.

    Outputs are ``<save_folder>/iemocap_session<n>.csv`` with the columns
    ``ID,duration,wav,label,emotion,speaker,session`` (``label`` is one of
    angry, happy, neutral, sad; ``emotion`` the original code, e.g. ``exc``;
    ``speaker`` e.g. ``Ses01F``) and the stamp ``iemocap.prepared.json``, which
    records the options that made them and the utterances per class (see
    `ssast_sb.data.manifest.PreparationStamp`). No class list is written: the
    class order is the fine-tuning label encoder's (``label_encoder.txt``). For
    each fold ``k`` of ``folds`` (test on session ``k``), a seeded ``valid_ratio``
    of the other sessions' utterances is written to ``iemocap_fold<k>_valid.csv``
    and the rest to ``iemocap_fold<k>_train.csv``, as s3prl's emotion downstream
    (see :func:`fold_manifests`); these are rebuilt on every call. The session
    manifests are reused when their stamp matches ``data_folder``, ``sessions``
    and ``on_bad_audio``. Under DDP wrap the call in
    ``speechbrain.utils.distributed.run_on_main``.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        Folder containing ``IEMOCAP_full_release/`` (or that folder itself).
    save_folder : str or pathlib.Path
        Where the manifests are written.
    sessions : sequence of int
        Sessions to prepare (1..5).
    folds : sequence of int
        Test sessions whose fold manifests are written (all five sessions needed).
    valid_ratio : float
        Share of the training sessions' utterances that validates.
    seed : int
        Seed of the validation draw.
    skip_prep : bool
        If True, do nothing.
    on_bad_audio : {"error", "skip"}
        What to do with a labelled utterance whose wav is missing, unreadable,
        truncated or empty (see `ssast_sb.data.manifest.validate_audio_rows`).
    force : bool
        Rewrite the outputs even when their stamp matches.

    Returns
    -------
    dict or None
        ``session<n>``: the counts of `validate_audio_rows`; ``class_counts``:
        kept utterances per class (sorted); ``short_classes``: classes that lost
        utterances, per session; ``dropped``: utterances per dropped label
        (e.g. ``{"fru": 1849, "xxx": 2507, ...}`` on the full corpus); None
        when skipped.

    Raises
    ------
    FileNotFoundError
        When the corpus or a session is missing, saying where IEMOCAP comes from
        and where to put it (a :class:`~ssast_sb.data.options.MissingDataError`,
        naming ``--data_folder``, when the corpus is).
    ssast_sb.errors.OptionError
        When a fold is not one of the sessions 1..5.
    ssast_sb.data.manifest.ClassLostError
        When a session has no utterance left of a class its labels list.

    Example
    -------
    >>> import tempfile
    >>> prepare_iemocap(tempfile.mkdtemp(), tempfile.mkdtemp(), skip_prep=True) is None
    True
    """
    folds = check_folds(folds, len(SESSIONS), "IEMOCAP (one per session)")
    if skip_prep:
        logger.info("Skipping IEMOCAP preparation (skip_prep=True)")
        return None
    sessions = sorted(set(int(session) for session in sessions))
    bad = [session for session in sessions if session not in SESSIONS]
    if bad or not sessions:
        raise ValueError(f"IEMOCAP sessions must be among {SESSIONS}, got {bad or sessions}")
    data_folder, save_folder = Path(data_folder), Path(save_folder)
    stamp = _iemocap_stamp(data_folder, save_folder, sessions, on_bad_audio)
    if stamp.is_current(force):
        _write_folds(save_folder, folds, valid_ratio, seed)
        return None
    stamp.invalidate()

    release = _find_release(data_folder)
    missing = [s for s in sessions if not (release / f"Session{s}").is_dir()]
    if missing:
        raise FileNotFoundError(
            f"IEMOCAP session(s) {missing} not found in {release}; the full release from "
            f"{REQUEST_URL} has Session1..Session5."
        )

    rows, summary, dropped = _checked_sessions(
        release, sessions, on_bad_audio, Path(save_folder) / BAD_AUDIO_LIST
    )
    class_counts = Counter()
    for session, session_csv in zip(sessions, stamp.outputs):
        session_rows = rows[f"session{session}"]
        write_manifest_atomic(session_rows, session_csv, FIELDNAMES)
        counts = Counter(row["label"] for row in session_rows)
        class_counts.update(counts)
        logger.info(
            "IEMOCAP session %d: %d utterances %s, %d dropped -> %s",
            session,
            len(session_rows),
            dict(sorted(counts.items())),
            sum(dropped[session].values()),
            session_csv,
        )
    summary["class_counts"] = {name: class_counts[name] for name in sorted(CLASS_NAMES)}
    summary["dropped"] = dict(sorted(sum(dropped.values(), Counter()).items()))
    remove_obsolete(
        save_folder / OBSOLETE_LABELS_JSON,
        "its class order is not the model's; the label encoder saved with the model "
        "(label_encoder.txt) is the class list",
    )
    stamp.write(summary)
    _write_folds(save_folder, folds, valid_ratio, seed)
    return summary


def _iemocap_stamp(data_folder, save_folder, sessions, on_bad_audio):
    """The stamp of the session manifests."""
    outputs = [save_folder / f"iemocap_session{session}.csv" for session in sessions]
    options = {
        "data_folder": resolved_path(data_folder),
        "sessions": sessions,
        "on_bad_audio": on_bad_audio,
    }
    return PreparationStamp(
        save_folder, STAMP_NAME, prepare_iemocap, options, outputs, "IEMOCAP manifests"
    )


def _checked_sessions(release, sessions, on_bad_audio, report_path):
    """Validated rows, counts and dropped labels per session; a lost class is an error."""
    finder, listed_rows, dropped, listed = ListedFiles(), {}, {}, {}
    for session in sessions:
        name = f"session{session}"
        listed_rows[name], dropped[session] = _session_rows(release, session, finder)
        listed[name] = Counter(row["label"] for row in listed_rows[name])
    rows, summary = validate_audio_splits(listed_rows, on_bad_audio, report_path=report_path)
    kept = {name: Counter(row["label"] for row in rows[name]) for name in rows}
    summary["short_classes"] = check_class_coverage(
        "IEMOCAP", f"the EmoEvaluation files of {release}", listed, kept
    )
    return rows, summary, dropped


def _write_folds(save_folder, folds, valid_ratio, seed):
    """The leave-one-session-out manifests of ``folds``, rebuilt from the session manifests."""
    for fold in folds:
        _write_fold(save_folder, fold, valid_ratio, seed)
