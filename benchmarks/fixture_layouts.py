"""Tiny copies of each dataset's official layout, filled with synthetic sounds.

Used by ``device_check.py`` to run every recipe anywhere, with no dataset on
disk: each builder writes a handful of 16 kHz clips (tones, chirps, noise bursts
from :mod:`ssast_sb.data.synthetic`) where the official release puts its audio,
plus the metadata files the data preparation reads.

Authors
 * ssast-sb contributors
"""

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

from ssast_sb.data.synthetic import SAMPLE_RATE, SYNTHETIC_CLASSES, generate_clip

#: Seconds of each synthetic clip (recipes pad or cut them to their input length).
CLIP_SECONDS = 1.0


class ClipWriter:
    """Writes synthetic clips, each from its own seeded generator.

    Arguments
    ---------
    seed : int
        Seed of the whole fixture.

    Example
    -------
    >>> import tempfile
    >>> path = ClipWriter().write(Path(tempfile.mkdtemp()) / "a" / "b.wav", 0)
    >>> sf.info(str(path)).samplerate
    16000
    """

    def __init__(self, seed=0):
        self.seed = seed
        self.count = 0

    def write(self, path, label_index, seconds=CLIP_SECONDS):
        """One clip of class ``label_index`` (modulo the synthetic classes) at ``path``."""
        name = SYNTHETIC_CLASSES[label_index % len(SYNTHETIC_CLASSES)]
        rng = np.random.default_rng([self.seed, self.count])
        self.count += 1
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), generate_clip(name, rng, seconds), SAMPLE_RATE, subtype="PCM_16")
        return path


def build_esc50(root, writer):
    """``ESC-50-master/{audio,meta/esc50.csv}``: 2 classes x 5 folds."""
    release = root / "ESC-50-master"
    meta = []
    for target, category in enumerate(("dog", "rain")):
        for fold in range(1, 6):
            filename = f"{fold}-{100 + target}{fold}-A-{target}.wav"
            writer.write(release / "audio" / filename, target)
            meta.append([filename, fold, target, category, True, f"{100 + target}{fold}", "A"])
    (release / "meta").mkdir(parents=True, exist_ok=True)
    with open(release / "meta" / "esc50.csv", "w", newline="", encoding="utf-8") as stream:
        rows = csv.writer(stream)
        rows.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        rows.writerows(meta)
    return root


def build_speech_commands(root, writer, version):
    """``speech_commands_v0.0<version>``: 4 words x 2 speakers x 4 takes, lists, noise."""
    release = root / f"speech_commands_v0.0{version}"
    lists = {"valid": [], "test": []}
    for index, word in enumerate(("yes", "no", "two", "three")):
        for speaker in ("0a1b2c3d", "4e5f6a7b"):
            for take in range(4):
                relative = f"{word}/{speaker}_nohash_{take}.wav"
                writer.write(release / relative, index)
                split = {2: "valid", 3: "test"}.get(take)
                if split:
                    lists[split].append(relative)
    (release / "validation_list.txt").write_text("\n".join(lists["valid"]) + "\n")
    (release / "testing_list.txt").write_text("\n".join(lists["test"]) + "\n")
    for index in range(2):
        path = release / "_background_noise_" / f"noise_{index}.wav"
        writer.write(path, 4 + index, seconds=10.0)
    return root


#: IEMOCAP evaluation codes of the four classes (and one dropped label).
IEMOCAP_CODES = ("neu", "exc", "sad", "ang", "fru")


def build_iemocap(root, writer):
    """``IEMOCAP_full_release/Session1..5``: 2 speakers per session, one clip per code."""
    release = root / "IEMOCAP_full_release"
    for index in range(10):
        session, gender = index // 2 + 1, "FM"[index % 2]
        dialog = f"Ses0{session}F_impro0{index % 2 + 1}"
        lines = []
        for number, code in enumerate(IEMOCAP_CODES):
            utterance = f"{dialog}_{gender}{number:03d}"
            folder = release / f"Session{session}" / "sentences" / "wav" / dialog
            writer.write(folder / f"{utterance}.wav", number)
            lines.append(f"[0.0000 - 1.0000]\t{utterance}\t{code}\t[2.5000, 2.5000, 2.5000]\n")
        evaluation = release / f"Session{session}" / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
        evaluation.parent.mkdir(parents=True, exist_ok=True)
        evaluation.write_text("% IEMOCAP evaluation\n\n" + "".join(lines))
    return root


def build_voxceleb(root, writer):
    """``wav/<id>/<video>/<n>.wav`` and ``iden_split.txt``: 3 identities x 4 clips."""
    lines = []
    for identity in range(3):
        for take, code in enumerate((1, 1, 2, 3)):
            relative = f"id1000{identity + 1}/video{identity}/{take + 1:05d}.wav"
            writer.write(root / "wav" / relative, identity)
            lines.append(f"{code} {relative}\n")
    (root / "iden_split.txt").write_text("".join(lines))
    return root


def build_audioset(root, writer):
    """Segment lists, ``class_labels_indices.csv`` and ``audio/<YTID>_<start>.wav``, 3 classes."""
    classes = ["/m/dog", "/m/rain", "/m/sea"]
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "class_labels_indices.csv", "w", encoding="utf-8") as stream:
        stream.write("index,mid,display_name\n")
        stream.writelines(f'{i},{mid},"{mid[3:]}"\n' for i, mid in enumerate(classes))
    segments = {
        "balanced_train": [("dogdogdog01", 0, "/m/dog"), ("rainrain001", 1, "/m/rain")],
        "unbalanced_train": [("dograin0001", 0, "/m/dog,/m/rain"), ("seasea00001", 2, "/m/sea")],
        "eval": [("dogdogdog02", 0, "/m/dog"), ("seawaves001", 2, "/m/sea,/m/rain")],
    }
    header = "# Segments csv\n# num_ytids=2\n# YTID, start_seconds, end_seconds, positive_labels\n"
    for segment, clips in segments.items():
        lines = [f'{ytid}, 30.000, 40.000, "{labels}"\n' for ytid, _, labels in clips]
        (root / f"{segment}_segments.csv").write_text(header + "".join(lines))
        for ytid, label, _ in clips:
            writer.write(root / "audio" / f"{ytid}_30.000.wav", label)
    return root


#: LibriSpeech splits read by the pretraining YAMLs.
LIBRISPEECH_SPLITS = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean")


def build_librispeech(root, writer):
    """``LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac``, 2 per split."""
    for number, split in enumerate(LIBRISPEECH_SPLITS):
        speaker, chapter = 100 + number, 2000 + number
        folder = root / "LibriSpeech" / split / str(speaker) / str(chapter)
        for utt in range(2):
            writer.write(folder / f"{speaker}-{chapter}-{utt:04d}.flac", utt + number)
    return root


def build_pretraining(root, writer):
    """AudioSet and LibriSpeech layouts side by side, and a folder pair of one's own audio.

    ``own/train`` and ``own/valid`` are what ``extra_sources`` and ``valid_source`` name.
    """
    build_audioset(root / "audioset", writer)
    build_librispeech(root, writer)
    for split, count in (("train", 8), ("valid", 4)):
        for index in range(count):
            writer.write(root / "own" / split / f"clip_{index:02d}.wav", index)
    return root


def build_class_folders(root, writer):
    """Your own data as the custom recipe reads it: ``<label>/*.wav``, 3 classes x 4 clips."""
    for label_index, label in enumerate(("dog", "rain", "siren")):
        for take in range(4):
            writer.write(root / label / f"{label}_{take}.wav", label_index)
    return root


#: Builder of each recipe's fixture.
BUILDERS = {
    "esc50": build_esc50,
    "speech_commands_v1": lambda root, writer: build_speech_commands(root, writer, 1),
    "speech_commands_v2": lambda root, writer: build_speech_commands(root, writer, 2),
    "iemocap": build_iemocap,
    "voxceleb": build_voxceleb,
    "audioset": build_audioset,
    "pretraining": build_pretraining,
    "class_folders": build_class_folders,
}


def build_fixture(kind, root, seed=0):
    """Builds one fixture tree in ``root`` (created) and returns ``root``.

    Arguments
    ---------
    kind : str
        A key of :data:`BUILDERS`.
    root : str or pathlib.Path
        Destination folder.
    seed : int
        Seed of the synthetic clips.

    Returns
    -------
    pathlib.Path

    Example
    -------
    >>> import tempfile
    >>> root = build_fixture("voxceleb", Path(tempfile.mkdtemp()) / "vox")
    >>> (root / "iden_split.txt").read_text().count("\\n")
    12
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return BUILDERS[kind](root, ClipWriter(seed))
