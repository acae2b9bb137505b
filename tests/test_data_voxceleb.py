"""Tests for ssast_sb.data.voxceleb on a VoxCeleb1-shaped tree of real speech (FSDD speakers)."""

import csv
import json
import os
import shutil

import pytest
import soundfile as sf

from ssast_sb.data.audio import EmptyAudioError
from ssast_sb.data.manifest import ClassLostError, ManifestError, read_manifest
from ssast_sb.data.voxceleb import prepare_voxceleb1_identification, read_iden_split

NUM_SPEAKERS = 3
VIDEOS = ("1zcIwhmdeo4", "7gWzIy6yIIk")
UTTS_PER_VIDEO = 3
SPLIT_CODES = {"1": "train", "2": "valid", "3": "test"}


@pytest.fixture(scope="module")
def vox_template(tmp_path_factory, shared_dir):
    """``wav/idXXXXX/<video>/<utt>.wav`` from FSDD speakers, ``iden_split.txt``, the layout."""
    fsdd = shared_dir / "data" / "kws_sid_fsdd"
    with open(fsdd / "manifest.csv", newline="") as csv_file:
        fsdd_rows = list(csv.DictReader(csv_file))
    speakers = sorted({row["speaker"] for row in fsdd_rows})[:NUM_SPEAKERS]
    root = tmp_path_factory.mktemp("vox_template")
    lines, layout = [], {}
    for number, fsdd_speaker in enumerate(speakers, start=1):
        speaker = f"id1{number:04d}"
        clips = iter(row for row in fsdd_rows if row["speaker"] == fsdd_speaker)
        for video in VIDEOS:
            folder = root / "wav" / speaker / video
            folder.mkdir(parents=True)
            for utt in range(1, UTTS_PER_VIDEO + 1):
                relative = f"{speaker}/{video}/{utt:05d}.wav"
                samples, rate = sf.read(fsdd / next(clips)["path"], dtype="float32")
                sf.write(root / "wav" / relative, samples, rate, subtype="PCM_16")
                # Like the official split: mostly train, one valid and one test per speaker.
                code = "2" if (video, utt) == (VIDEOS[1], 2) else "3" if utt == 3 else "1"
                code = "1" if (video, utt) == (VIDEOS[0], 3) else code
                lines.append(f"{code} {relative}")
                layout[relative] = (SPLIT_CODES[code], speaker, video)
    # Listed, but not downloaded: a subset of the corpus is fine.
    lines.append("1 id10999/abcdefghijk/00001.wav")
    lines.append("3 id10001/zzzzzzzzzzz/00007.wav")
    (root / "iden_split.txt").write_text("\n".join(lines) + "\n")
    return root, layout


@pytest.fixture
def vox_root(tmp_path, vox_template):
    template, layout = vox_template
    root = tmp_path / "voxceleb1"
    shutil.copytree(template, root)
    return root, layout


def test_split_manifests_with_speaker_labels(vox_root, tmp_path):
    root, layout = vox_root
    save = tmp_path / "manifests"
    summary = prepare_voxceleb1_identification(root, save)
    assert sorted(os.listdir(save)) == [
        "voxceleb1_sid.prepared.json",
        "voxceleb1_sid_test.csv",
        "voxceleb1_sid_train.csv",
        "voxceleb1_sid_valid.csv",
    ]
    assert summary["listed"] == len(layout) + 2 and summary["not_found"] == 2
    assert summary["num_speakers"] == NUM_SPEAKERS
    seen = set()
    for split in ("train", "valid", "test"):
        path = save / f"voxceleb1_sid_{split}.csv"
        assert path.read_text().splitlines()[0] == "ID,duration,wav,speaker,video"
        rows = read_manifest(path)
        expected = sorted(rel for rel, (s, _, _) in layout.items() if s == split)
        assert summary[split]["kept"] == len(expected) > 0
        assert sorted(row["ID"] for row in rows) == sorted(
            rel[:-4].replace("/", "-") for rel in expected
        )
        for row in rows:
            relative = "/".join(row["wav"].split(os.sep)[-3:])
            _, speaker, video = layout[relative]
            assert os.path.isabs(row["wav"]) and row["wav"].startswith(str(root / "wav"))
            assert row["speaker"] == speaker and row["video"] == video
            assert row["duration"] == pytest.approx(sf.info(row["wav"]).duration, abs=1e-6)
            seen.add(relative)
        # Identification: every speaker appears in every split.
        assert {row["speaker"] for row in rows} == {"id10001", "id10002", "id10003"}
    assert seen == set(layout)
    # Listed but absent: counted per speaker; id10999 (absent from every split) is a subset.
    assert summary["short_classes"] == {
        "train": {"id10999": [0, 1]},
        "test": {"id10001": [1, 2]},
    }
    stamp = json.loads((save / "voxceleb1_sid.prepared.json").read_text())
    assert stamp["counts"]["num_speakers"] == NUM_SPEAKERS


def test_read_iden_split(vox_root):
    root, layout = vox_root
    entries = read_iden_split(root / "iden_split.txt")
    assert entries[0] == ("train", "id10001/1zcIwhmdeo4/00001.wav")
    assert {split for split, _ in entries} == {"train", "valid", "test"}
    bad = root / "bad_split.txt"
    bad.write_text("4 id10001/1zcIwhmdeo4/00001.wav\n")
    with pytest.raises(ManifestError, match="line 1"):
        read_iden_split(bad)
    bad.write_text("1 id10001/00001.wav\n")
    with pytest.raises(ManifestError):
        read_iden_split(bad)


def test_split_file_in_meta_folder(vox_root, tmp_path):
    root, layout = vox_root
    (root / "meta").mkdir()
    os.replace(root / "iden_split.txt", root / "meta" / "iden_split.txt")
    summary = prepare_voxceleb1_identification(root, tmp_path / "m")
    assert sum(summary[s]["kept"] for s in ("train", "valid", "test")) == len(layout)


def test_missing_audio_says_where_to_get_voxceleb1(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        prepare_voxceleb1_identification(tmp_path / "vox", tmp_path / "out")
    message = str(error.value)
    assert "registration" in message and "robots.ox.ac.uk/~vgg/data/voxceleb" in message
    assert str(tmp_path / "vox" / "wav") in message


def test_missing_split_file_says_where_to_get_it(vox_root, tmp_path):
    root, _ = vox_root
    os.remove(root / "iden_split.txt")
    with pytest.raises(FileNotFoundError, match="meta/iden_split.txt") as error:
        prepare_voxceleb1_identification(root, tmp_path / "out")
    assert str(root / "iden_split.txt") in str(error.value)


def test_nothing_on_disk_is_an_error(vox_root, tmp_path):
    root, _ = vox_root
    shutil.rmtree(root / "wav")
    (root / "wav").mkdir()
    with pytest.raises(FileNotFoundError, match="None of the"):
        prepare_voxceleb1_identification(root, tmp_path / "out")


def test_bad_audio_policy_and_skip_existing(vox_root, tmp_path):
    root, _ = vox_root
    (root / "wav" / "id10002" / VIDEOS[0] / "00001.wav").write_bytes(b"")
    with pytest.raises(EmptyAudioError, match="id10002-1zcIwhmdeo4-00001"):
        prepare_voxceleb1_identification(root, tmp_path / "strict")
    save = tmp_path / "lenient"
    summary = prepare_voxceleb1_identification(root, save, on_bad_audio="skip")
    assert summary["train"]["empty"] == 1
    assert prepare_voxceleb1_identification(root, save, on_bad_audio="skip") is None
    assert prepare_voxceleb1_identification(root, save, on_bad_audio="skip", force=True) is not None


def test_speaker_without_training_utterance_is_an_error(vox_root, tmp_path):
    root, layout = vox_root
    for relative, (split, speaker, _) in layout.items():
        if speaker == "id10003" and split == "train":
            os.remove(root / "wav" / relative)
    with pytest.raises(ClassLostError) as caught:
        prepare_voxceleb1_identification(root, tmp_path / "m")
    message = str(caught.value)
    assert "VoxCeleb1 SID train: no clip is left of 1 class(es) (id10003 0/" in message
    assert "iden_split.txt" in message
