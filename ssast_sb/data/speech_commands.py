"""Manifests for Google Speech Commands: the 35-word task and SUPERB keyword spotting.

Two tasks of the SSAST paper use this corpus (docs/fidelity.md d.2, d.3):

* ``"v2_35"`` (KS2): Speech Commands V2, all 35 words are classes;
* ``"v1_ks12"`` (KS1, the SUPERB keyword-spotting task): the 10 words
  yes, no, up, down, left, right, on, off, stop, go, plus ``_unknown_`` for every
  other word and ``_silence_`` for background noise.

Both use the official splits: a clip listed in ``validation_list.txt`` is
validation, one in ``testing_list.txt`` is test, every other clip is training.
For ``_silence_``, 1 s segments are cut from the ``_background_noise_``
recordings and written as wav files into ``save_folder``: the first 80% of
the segments of each recording go to training, the next 10% to validation and
the last 10% to test. (s3prl instead crops noise at random at load time and
tests on the separate ``speech_commands_test_set_v0.01`` archive; fixed
segments keep the split reproducible without it.)

Expected layout (as unpacked from the official archives, or `download_speech_commands`)::

    <data_folder>/speech_commands_v0.0<version>/<word>/<speaker hash>_nohash_<n>.wav
    <data_folder>/speech_commands_v0.0<version>/validation_list.txt
    <data_folder>/speech_commands_v0.0<version>/testing_list.txt
    <data_folder>/speech_commands_v0.0<version>/_background_noise_/*.wav

``data_folder`` may also be the ``speech_commands_v0.0<version>`` folder itself.

Example
-------
>>> import tempfile, os
>>> import numpy as np, soundfile as sf
>>> root = tempfile.mkdtemp()
>>> for word in ("yes", "no"):
...     os.makedirs(os.path.join(root, word))
...     for take in (0, 1):
...         sf.write(os.path.join(root, word, f"0a7c2a8d_nohash_{take}.wav"), np.zeros(1600), 16000)
>>> _ = open(os.path.join(root, "validation_list.txt"), "w").write("no/0a7c2a8d_nohash_1.wav\\n")
>>> _ = open(os.path.join(root, "testing_list.txt"), "w").write("")
>>> summary = prepare_speech_commands(root, os.path.join(root, "out"), version=2)
>>> summary["train"]["kept"], summary["valid"]["kept"], summary["num_classes"]
(3, 1, 2)
"""

import logging
import os
from collections import Counter
from pathlib import Path

import soundfile as sf

from ssast_sb.errors import OptionError, UserError

from .audio import audio_info, load_audio
from .esc50 import download_and_extract
from .manifest import (
    BAD_AUDIO_LIST,
    ManifestError,
    PreparationStamp,
    atomic_open,
    check_class_coverage,
    find_files,
    listing_key,
    remove_obsolete,
    resolved_path,
    unique_ids,
    validate_audio_splits,
    write_manifest_atomic,
)
from .options import MissingDataError

logger = logging.getLogger(__name__)

DOWNLOAD_URLS = {
    1: "http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
    2: "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
}
# Digests of the official archives, as pinned by torchaudio's SPEECHCOMMANDS dataset.
KNOWN_SHA256 = {
    DOWNLOAD_URLS[1]: "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
    DOWNLOAD_URLS[2]: "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
}
RELEASE_FOLDERS = {1: "speech_commands_v0.01", 2: "speech_commands_v0.02"}
#: Number of words (folders) of each release, and of classes of each task.
RELEASE_WORDS = {1: 30, 2: 35}
TASK_CLASSES = {"v2_35": 35, "v1_ks12": 12}
TASKS = ("v2_35", "v1_ks12")
SPLITS = ("train", "valid", "test")
KS12_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN = "_unknown_"
SILENCE = "_silence_"
BACKGROUND_FOLDER = "_background_noise_"
SILENCE_SEGMENT_S = 1.0
# Position (fraction of a noise recording) where its validation and test segments begin.
SILENCE_VALID_FROM, SILENCE_TEST_FROM = 0.8, 0.9
FIELDNAMES = ["ID", "duration", "wav", "label", "word", "speaker"]
AUDIO_EXTENSIONS = (".wav",)


class DatasetVersionError(UserError, ValueError):
    """The data folder holds another release of the corpus than the one asked for."""


def download_speech_commands(data_folder, version=2, url=None, sha256=None, keep_archive=True):
    """Download and unpack Speech Commands into ``<data_folder>/speech_commands_v0.0<version>``.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        Parent folder of the dataset.
    version : {1, 2}
        Release to fetch.
    url : str, optional
        Archive address; the official one for ``version`` by default.
    sha256 : str, optional
        Expected hex digest; for the official archives the known digest is
        used when None, for other addresses the computed digest is logged.
    keep_archive : bool
        Keep the tar.gz next to the dataset.

    Returns
    -------
    pathlib.Path
        The dataset folder, to pass to `prepare_speech_commands`.

    Example
    -------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / "speech_commands_v0.01").mkdir()
    >>> download_speech_commands(folder, version=1).name  # already there
    'speech_commands_v0.01'
    """
    if version not in DOWNLOAD_URLS:
        raise ValueError(f"Speech Commands version must be 1 or 2, got {version!r}")
    url = url or DOWNLOAD_URLS[version]
    sha256 = sha256 or KNOWN_SHA256.get(url)
    target = Path(data_folder) / RELEASE_FOLDERS[version]
    return download_and_extract(url, target, sha256, keep_archive)


def _has_split_lists(folder):
    return (folder / "validation_list.txt").is_file() and (folder / "testing_list.txt").is_file()


def check_release_version(data_folder, version):
    """Refuse a data folder that holds the other Speech Commands release.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        The ``data_folder`` of `prepare_speech_commands`.
    version : {1, 2}
        The release asked for.

    Raises
    ------
    DatasetVersionError
        When ``data_folder`` is (or holds only) ``speech_commands_v0.0<other>``:
        preparing or downloading there would mix up the versions.

    Example
    -------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / "speech_commands_v0.01").mkdir()
    >>> check_release_version(folder, 1)
    >>> try:
    ...     check_release_version(folder, 2)
    ... except DatasetVersionError as err:
    ...     print(str(err)[:36])
    Speech Commands version mismatch: ve
    """
    data_folder = Path(data_folder)
    wanted, other = RELEASE_FOLDERS[version], RELEASE_FOLDERS[3 - version]
    if (data_folder / wanted).is_dir():
        return
    if data_folder.name == other:
        holder = data_folder
    elif not _has_split_lists(data_folder) and (data_folder / other).is_dir():
        holder = data_folder / other
    else:
        return
    raise DatasetVersionError(
        f"Speech Commands version mismatch: version {version} ({wanted}) was asked for, but "
        f"{holder} is the version {3 - version} release. Run with --version {3 - version} "
        f"(task v1_ks12 uses version 1, v2_35 version 2), or pass as --data_folder a folder "
        f"that holds {wanted}. Nothing was downloaded."
    )


def _find_release(data_folder, version):
    """The folder holding the word folders and the two split lists."""
    candidates = [data_folder / RELEASE_FOLDERS[version], data_folder]
    for candidate in candidates:
        if _has_split_lists(candidate):
            return candidate
    raise MissingDataError(
        f"Speech Commands v0.0{version} not found: no validation_list.txt and testing_list.txt "
        f"in {candidates[0]} or {candidates[1]} (--data_folder {data_folder}). Pass --download "
        f"True to download it there, or download {DOWNLOAD_URLS[version]} (or call "
        f"download_speech_commands({str(data_folder)!r}, version={version})) and extract it "
        f"into {candidates[0]}, which gives {candidates[0]}/<word>/<hash>_nohash_<n>.wav; or "
        "pass the --data_folder that holds it."
    )


def _read_list(path):
    """The clips a split list names, as `listing_key` keys (a UTF-8 BOM is ignored)."""
    with open(path, encoding="utf-8-sig") as list_file:
        return {listing_key(line.strip()) for line in list_file if line.strip()}


def _label_of(word, task):
    """Class of a spoken word in ``task``."""
    if task == "v1_ks12" and word not in KS12_WORDS:
        return UNKNOWN
    return word


def _word_folders(release):
    """The word folders of a release (not ``_background_noise_``, not hidden)."""
    return sorted(
        path for path in release.iterdir() if path.is_dir() and not path.name.startswith(("_", "."))
    )


def _word_files(release):
    """Every ``<word>/*.wav`` clip, the extension in any case (``.WAV`` too), sorted."""
    files = [
        path
        for path in find_files(release, "*/*", AUDIO_EXTENSIONS)
        if not path.parent.name.startswith("_")
    ]
    if not files:
        raise FileNotFoundError(f"No <word>/*.wav clips under {release}; is it fully extracted?")
    return files


def _listed_counts(keys, task):
    """Clips per class of a split list."""
    return Counter(_label_of(key.split("/", 1)[0], task) for key in keys)


def _word_rows(release, task):
    """One ``(split, row)`` per word clip (without duration), sorted by path, and the counts
    of clips per class that the listing (split lists and word folders) has in each split."""
    lists = {
        "valid": _read_list(release / "validation_list.txt"),
        "test": _read_list(release / "testing_list.txt"),
    }
    overlap = lists["valid"] & lists["test"]
    if overlap:
        raise ManifestError(f"{len(overlap)} clip(s) in both split lists, e.g. {min(overlap)}")
    files = _word_files(release)
    relative = [f"{path.parent.name}/{path.name}" for path in files]
    rows, train_counts = [], Counter()
    for path, rel, utt_id in zip(files, relative, unique_ids(relative)):
        word = path.parent.name
        key = listing_key(rel)
        split = next((name for name, keys in lists.items() if key in keys), "train")
        label = _label_of(word, task)
        if split == "train":
            train_counts[label] += 1
        row = {
            "ID": utt_id,
            "wav": os.path.abspath(path),
            "label": label,
            "word": word,
            "speaker": path.stem.split("_nohash_")[0],
        }
        rows.append((split, row))
    listed = {"train": train_counts, **{s: _listed_counts(keys, task) for s, keys in lists.items()}}
    found_words = {path.parent.name for path in files}
    for folder in _word_folders(release):
        if folder.name not in found_words:  # a class folder without any clip
            listed["train"].setdefault(_label_of(folder.name, task), 0)
    found = {listing_key(rel) for rel in relative}
    not_found = len((lists["valid"] | lists["test"]) - found)
    return rows, listed, not_found


def _silence_split(index, count):
    """Split of the ``index``-th of ``count`` segments of one noise recording."""
    position = (index + 0.5) / count
    if position < SILENCE_VALID_FROM:
        return "train"
    return "valid" if position < SILENCE_TEST_FROM else "test"


def _write_wav_atomic(path, samples, sample_rate):
    with atomic_open(path, "wb") as stream:
        sf.write(stream, samples, sample_rate, subtype="PCM_16", format="WAV")


def cut_silence_segments(noise_folder, output_folder, segment_s=SILENCE_SEGMENT_S):
    """Cut the background-noise recordings into non-overlapping segments for ``_silence_``.

    Each recording of ``N`` samples gives ``N // (segment_s * rate)`` segments,
    written as 16-bit wav files ``silence_<recording>_<k>.wav`` at the
    recording's rate. Of each recording, the segments starting in the first
    80% go to training, those in the next 10% to validation and the rest to test.
    The result depends only on the recordings (``*.wav``, the extension in any
    case). Other ``.wav`` files in ``output_folder`` (from an earlier run) are removed.

    Arguments
    ---------
    noise_folder : str or pathlib.Path
        The ``_background_noise_`` folder.
    output_folder : str or pathlib.Path
        Where the segments are written.
    segment_s : float
        Segment length in seconds.

    Returns
    -------
    list of tuple
        ``(split, row)`` per segment, with rows in the manifest format.

    Example
    -------
    >>> import tempfile, os
    >>> import numpy as np, soundfile as sf
    >>> noise = tempfile.mkdtemp()
    >>> sf.write(os.path.join(noise, "white_noise.wav"), np.zeros(16000 * 10), 16000)
    >>> segments = cut_silence_segments(noise, tempfile.mkdtemp())
    >>> [split for split, _ in segments].count("train"), segments[-1][0]
    (8, 'test')
    """
    noise_folder, output_folder = Path(noise_folder), Path(output_folder)
    recordings = find_files(noise_folder, "*", AUDIO_EXTENSIONS)
    if not recordings:
        raise FileNotFoundError(f"No background-noise .wav files in {noise_folder}")
    output_folder.mkdir(parents=True, exist_ok=True)
    segments, written = [], set()
    for recording in recordings:
        sample_rate = audio_info(recording).sample_rate
        samples = load_audio(recording, target_sample_rate=None).numpy()
        segment_len = int(round(segment_s * sample_rate))
        count = len(samples) // segment_len
        if count == 0:
            logger.warning("%s is shorter than %.2f s; no segment cut", recording, segment_s)
        stem = unique_ids([recording.name])[0]
        for index in range(count):
            path = output_folder / f"silence_{stem}_{index:04d}.wav"
            _write_wav_atomic(
                path, samples[index * segment_len : (index + 1) * segment_len], sample_rate
            )
            written.add(path.name)
            row = {
                "ID": path.stem,
                "wav": os.path.abspath(path),
                "label": SILENCE,
                "word": SILENCE,
                "speaker": stem,
            }
            segments.append((_silence_split(index, count), row))
    for stale in output_folder.glob("*.wav"):
        if stale.name not in written:
            stale.unlink()
    return segments


def _speech_commands_stamp(data_folder, save_folder, version, task, on_bad_audio):
    """The stamp of one task's three split manifests."""
    outputs = [save_folder / f"speech_commands_{task}_{split}.csv" for split in SPLITS]
    options = {
        "data_folder": resolved_path(data_folder),
        "version": version,
        "task": task,
        "on_bad_audio": on_bad_audio,
    }
    return PreparationStamp(
        save_folder,
        f"speech_commands_{task}",
        prepare_speech_commands,
        options,
        outputs,
        f"Speech Commands {task} manifests",
    )


def _check_arguments(version, task):
    """Refuse unknown tasks and versions, and a task on a release it is not defined on."""
    if task not in TASKS:
        raise OptionError(
            f"Unknown Speech Commands task --task {task}: pass --task {' or --task '.join(TASKS)}."
        )
    if version not in RELEASE_FOLDERS:
        raise OptionError(
            f"--version {version}: the Speech Commands versions are 1 and 2; pass --version 2 "
            "(task v2_35) or --version 1 (task v1_ks12)."
        )
    if task == "v2_35" and version != 2:
        raise OptionError(
            "Task 'v2_35' is defined on Speech Commands version 2: pass --version 2 with "
            "--task v2_35, or --task v1_ks12 on version 1."
        )
    if task == "v1_ks12" and version != 1:
        logger.warning(
            "SUPERB keyword spotting uses Speech Commands v1; preparing it on v%d", version
        )


def _silence_rows(release, save_folder, version):
    """The ``_silence_`` segments cut from the release's background noise."""
    noise_folder = release / BACKGROUND_FOLDER
    if not noise_folder.is_dir():
        raise FileNotFoundError(
            f"{noise_folder} is missing; it ships with {DOWNLOAD_URLS[version]} and is "
            "needed for the _silence_ class."
        )
    return cut_silence_segments(noise_folder, save_folder / "speech_commands_silence")


def _checked_splits(rows, listed, release, task, on_bad_audio, report_path):
    """Validated rows and counts per split; a class lost from a split is an error."""
    by_split = {split: [row for row_split, row in rows if row_split == split] for split in SPLITS}
    kept, summary = validate_audio_splits(by_split, on_bad_audio, report_path=report_path)
    counts = {split: Counter(row["label"] for row in kept[split]) for split in SPLITS}
    # Training needs every class (the label encoder is fitted on it), the others their own.
    required = {split: set(listed[split]) for split in SPLITS}
    required["train"] = set().union(*required.values())
    summary["short_classes"] = check_class_coverage(
        f"Speech Commands {task}",
        f"the word folders and split lists of {release}",
        listed,
        counts,
        required,
    )
    return kept, summary, counts


def prepare_speech_commands(
    data_folder,
    save_folder,
    version=2,
    task="v2_35",
    download=False,
    skip_prep=False,
    on_bad_audio="error",
    force=False,
):
    """Write Speech Commands manifests for one task: train, valid and test.

    Outputs are ``<save_folder>/speech_commands_<task>_{train,valid,test}.csv``
    with the columns ``ID,duration,wav,label,word,speaker`` (``word`` is the
    spoken word or ``_silence_``, ``speaker`` the hash in the file name or the
    noise recording), and the stamp ``speech_commands_<task>.prepared.json``,
    which records the options that made them and the clips per class (see
    `ssast_sb.data.manifest.PreparationStamp`). No class list is written: the
    class order is the fine-tuning label encoder's (``label_encoder.txt``). For
    ``"v1_ks12"`` the silence segments are written to
    ``<save_folder>/speech_commands_silence/`` (see `cut_silence_segments`).
    Clips are found whatever the case of their extension (``.WAV`` too). Clips
    of the split lists that are not on disk are counted and warned about per
    class; a class left without any clip in a split it is listed in is an
    error. The outputs are reused when their stamp matches ``data_folder``,
    ``version``, ``task`` and ``on_bad_audio``. Under DDP wrap the call in
    ``speechbrain.utils.distributed.run_on_main``.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        Folder containing ``speech_commands_v0.0<version>/`` (or that folder itself).
    save_folder : str or pathlib.Path
        Where the manifests (and silence segments) are written.
    version : {1, 2}
        Release of the corpus; ``"v2_35"`` needs 2, SUPERB's ``"v1_ks12"`` uses 1.
    task : {"v2_35", "v1_ks12"}
        Label set: the 35 words of V2, or the 12 SUPERB keyword-spotting classes.
    download : bool
        Download the release into ``data_folder`` when it is absent
        (:func:`download_speech_commands`); never when ``data_folder`` holds the
        other version's release (see `check_release_version`).
    skip_prep : bool
        If True, do nothing.
    on_bad_audio : {"error", "skip"}
        What to do with a clip that is unreadable, truncated or empty (see
        `ssast_sb.data.manifest.validate_audio_rows`).
    force : bool
        Rewrite the outputs even when their stamp matches.

    Returns
    -------
    dict or None
        ``train``, ``valid``, ``test``: the counts of `validate_audio_rows`;
        ``num_classes`` (classes in the training manifest); ``class_counts``
        (per split, clips per class in sorted order); ``short_classes``;
        ``silence_segments``; ``listed_not_found`` (clips of the split lists
        absent from disk); None when skipped.

    Raises
    ------
    FileNotFoundError
        When the release (or, for ``"v1_ks12"``, ``_background_noise_``) is
        missing, saying what to download and where to put it.
    DatasetVersionError
        When ``data_folder`` holds the other version's release.
    ssast_sb.errors.OptionError
        When ``task`` or ``version`` is unknown, or ``v2_35`` is asked of version 1.
    ssast_sb.data.manifest.ClassLostError
        When a split has no clip left of a class it lists.

    Example
    -------
    >>> import tempfile
    >>> prepare_speech_commands(tempfile.mkdtemp(), tempfile.mkdtemp(), skip_prep=True) is None
    True
    """
    if skip_prep:
        logger.info("Skipping Speech Commands preparation (skip_prep=True)")
        return None
    _check_arguments(version, task)
    data_folder, save_folder = Path(data_folder), Path(save_folder)
    stamp = _speech_commands_stamp(data_folder, save_folder, version, task, on_bad_audio)
    if stamp.is_current(force):
        return None
    stamp.invalidate()

    check_release_version(data_folder, version)
    release_lists = [
        folder / "validation_list.txt"
        for folder in (data_folder, data_folder / RELEASE_FOLDERS[version])
    ]
    if download and not any(path.is_file() for path in release_lists):
        download_speech_commands(data_folder, version=version)
    release = _find_release(data_folder, version)
    rows, listed, not_found = _word_rows(release, task)
    silence = _silence_rows(release, save_folder, version) if task == "v1_ks12" else []
    rows.extend(silence)
    for split, row in silence:
        listed[split][SILENCE] += 1

    kept, summary, counts = _checked_splits(
        rows, listed, release, task, on_bad_audio, save_folder / BAD_AUDIO_LIST
    )
    num_classes = len(counts["train"])
    if num_classes != TASK_CLASSES[task]:
        logger.warning(
            "Speech Commands %s: %d classes in the training manifest, %d expected (%d words in "
            "the full release v%d)",
            task,
            num_classes,
            TASK_CLASSES[task],
            RELEASE_WORDS[version],
            version,
        )
    for split, split_csv in zip(SPLITS, stamp.outputs):
        write_manifest_atomic(kept[split], split_csv, FIELDNAMES)
        logger.info(
            "Speech Commands %s %s: %d clips -> %s", task, split, len(kept[split]), split_csv
        )
    summary.update(
        num_classes=num_classes,
        class_counts={split: dict(sorted(counts[split].items())) for split in SPLITS},
        silence_segments=len(silence),
        listed_not_found=not_found,
    )
    remove_obsolete(
        save_folder / f"speech_commands_{task}_labels.json",
        "its class order is not the model's; the label encoder saved with the model "
        "(label_encoder.txt) is the class list",
    )
    stamp.write(summary)
    return summary
