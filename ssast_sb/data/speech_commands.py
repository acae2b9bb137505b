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
...     sf.write(os.path.join(root, word, "0a7c2a8d_nohash_0.wav"), np.zeros(1600), 16000)
>>> _ = open(os.path.join(root, "validation_list.txt"), "w").write("no/0a7c2a8d_nohash_0.wav\\n")
>>> _ = open(os.path.join(root, "testing_list.txt"), "w").write("")
>>> summary = prepare_speech_commands(root, os.path.join(root, "out"), version=2)
>>> summary["train"]["kept"], summary["valid"]["kept"], summary["num_classes"]
(1, 1, 2)
"""

import json
import logging
import os
from pathlib import Path

import soundfile as sf

from .audio import audio_info, load_audio
from .esc50 import download_and_extract
from .manifest import (
    ManifestError,
    atomic_open,
    manifests_exist,
    unique_ids,
    validate_audio_rows,
    write_manifest_atomic,
)

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


def _find_release(data_folder, version):
    """The folder holding the word folders and the two split lists."""
    candidates = [data_folder / RELEASE_FOLDERS[version], data_folder]
    for candidate in candidates:
        if (candidate / "validation_list.txt").is_file() and (
            candidate / "testing_list.txt"
        ).is_file():
            return candidate
    raise FileNotFoundError(
        f"Speech Commands v0.0{version} not found: no validation_list.txt and testing_list.txt "
        f"in {candidates[0]} or {candidates[1]}. Download {DOWNLOAD_URLS[version]} (or call "
        f"download_speech_commands({str(data_folder)!r}, version={version})) and extract it "
        f"into {candidates[0]}, which gives {candidates[0]}/<word>/<hash>_nohash_<n>.wav."
    )


def _read_list(path):
    with open(path, encoding="utf-8") as list_file:
        return {line.strip() for line in list_file if line.strip()}


def _word_rows(release, task):
    """One row per word clip (without duration), with its split; sorted by path."""
    valid_list = _read_list(release / "validation_list.txt")
    test_list = _read_list(release / "testing_list.txt")
    overlap = valid_list & test_list
    if overlap:
        raise ManifestError(f"{len(overlap)} clip(s) in both split lists, e.g. {min(overlap)}")
    files = sorted(
        path
        for path in release.glob("*/*.wav")
        if not path.parent.name.startswith("_") and not path.name.startswith(".")
    )
    if not files:
        raise FileNotFoundError(f"No <word>/*.wav clips under {release}; is it fully extracted?")
    relative = [f"{path.parent.name}/{path.name}" for path in files]
    rows = []
    for path, rel, utt_id in zip(files, relative, unique_ids(relative)):
        word = path.parent.name
        split = "valid" if rel in valid_list else "test" if rel in test_list else "train"
        if task == "v1_ks12":
            label = word if word in KS12_WORDS else UNKNOWN
        else:
            label = word
        row = {
            "ID": utt_id,
            "wav": os.path.abspath(path),
            "label": label,
            "word": word,
            "speaker": path.stem.split("_nohash_")[0],
        }
        rows.append((split, row))
    found = set(relative)
    not_found = len((valid_list | test_list) - found)
    if not_found:
        logger.info("%d clip(s) of the split lists are not on disk (a partial copy?)", not_found)
    return rows, not_found


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
    The result depends only on the recordings. Other ``.wav`` files in
    ``output_folder`` (from an earlier run) are removed.

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
    recordings = sorted(
        path for path in noise_folder.glob("*.wav") if not path.name.startswith(".")
    )
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
    noise recording), and ``speech_commands_<task>_labels.json``, the class
    names in index order. For ``"v1_ks12"`` the silence segments are written to
    ``<save_folder>/speech_commands_silence/`` (see `cut_silence_segments`).
    Nothing is done when all outputs exist. Under DDP wrap the call in
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
        (:func:`download_speech_commands`).
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
        ``train``, ``valid``, ``test``: the counts of `validate_audio_rows`;
        ``num_classes``; ``silence_segments``; ``listed_not_found`` (clips of the
        split lists absent from disk); None when skipped.

    Raises
    ------
    FileNotFoundError
        When the release (or, for ``"v1_ks12"``, ``_background_noise_``) is
        missing, saying what to download and where to put it.

    Example
    -------
    >>> import tempfile
    >>> prepare_speech_commands(tempfile.mkdtemp(), tempfile.mkdtemp(), skip_prep=True) is None
    True
    """
    if skip_prep:
        logger.info("Skipping Speech Commands preparation (skip_prep=True)")
        return None
    if task not in TASKS:
        raise ValueError(f"Unknown Speech Commands task {task!r}; choose from {TASKS}")
    if version not in RELEASE_FOLDERS:
        raise ValueError(f"Speech Commands version must be 1 or 2, got {version!r}")
    if task == "v2_35" and version != 2:
        raise ValueError("Task 'v2_35' is defined on Speech Commands version 2")
    if task == "v1_ks12" and version != 1:
        logger.warning(
            "SUPERB keyword spotting uses Speech Commands v1; preparing it on v%d", version
        )
    data_folder, save_folder = Path(data_folder), Path(save_folder)
    split_csvs = {split: save_folder / f"speech_commands_{task}_{split}.csv" for split in SPLITS}
    labels_json = save_folder / f"speech_commands_{task}_labels.json"
    if not force and manifests_exist([*split_csvs.values(), labels_json]):
        logger.info("Speech Commands manifests already in %s, skipping preparation", save_folder)
        return None

    release_lists = [
        folder / "validation_list.txt"
        for folder in (data_folder, data_folder / RELEASE_FOLDERS[version])
    ]
    if download and not any(path.is_file() for path in release_lists):
        download_speech_commands(data_folder, version=version)
    release = _find_release(data_folder, version)
    rows, not_found = _word_rows(release, task)
    if task == "v1_ks12":
        noise_folder = release / BACKGROUND_FOLDER
        if not noise_folder.is_dir():
            raise FileNotFoundError(
                f"{noise_folder} is missing; it ships with {DOWNLOAD_URLS[version]} and is "
                "needed for the _silence_ class."
            )
        silence = cut_silence_segments(noise_folder, save_folder / "speech_commands_silence")
        rows.extend(silence)
        class_names = [*KS12_WORDS, UNKNOWN, SILENCE]
    else:
        silence = []
        class_names = sorted({row["label"] for _, row in rows})
        if len(class_names) != 35:
            logger.warning("Speech Commands v2: %d words found, 35 expected", len(class_names))

    summary = {
        "num_classes": len(class_names),
        "silence_segments": len(silence),
        "listed_not_found": not_found,
    }
    for split, split_csv in split_csvs.items():
        split_rows = [row for row_split, row in rows if row_split == split]
        split_rows, summary[split] = validate_audio_rows(split_rows, on_bad_audio)
        write_manifest_atomic(split_rows, split_csv, FIELDNAMES)
        logger.info(
            "Speech Commands %s %s: %d clips -> %s", task, split, len(split_rows), split_csv
        )

    # Written last: its presence means every split manifest is complete.
    with atomic_open(labels_json) as json_file:
        json.dump(class_names, json_file, indent=1)
    return summary
