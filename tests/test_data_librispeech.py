"""Tests for ssast_sb.data.librispeech on a small LibriSpeech-shaped tree of real speech."""

import csv
import os

import pytest
import soundfile as sf

from ssast_sb.data.audio import EmptyAudioError
from ssast_sb.data.librispeech import prepare_librispeech
from ssast_sb.data.manifest import read_manifest

# split -> speaker -> chapter -> number of utterances
LAYOUT = {
    "train-clean-100": {"19": {"198": 3}, "26": {"495": 2, "496": 1}},
    "dev-clean": {"84": {"121123": 2}},
}


@pytest.fixture(scope="module")
def fsdd_clips(shared_dir):
    folder = shared_dir / "data" / "kws_sid_fsdd"
    with open(folder / "manifest.csv", newline="") as csv_file:
        rows = list(csv.DictReader(csv_file))[:10]
    return [folder / row["path"] for row in rows]


@pytest.fixture
def libri_root(tmp_path, fsdd_clips):
    """``tmp/corpora/LibriSpeech/<split>/<speaker>/<chapter>/<utt>.flac`` from real speech."""
    clips = iter(fsdd_clips)
    for split, speakers in LAYOUT.items():
        for speaker, chapters in speakers.items():
            for chapter, count in chapters.items():
                folder = tmp_path / "corpora" / "LibriSpeech" / split / speaker / chapter
                folder.mkdir(parents=True)
                for utt in range(count):
                    samples, rate = sf.read(next(clips))
                    sf.write(folder / f"{speaker}-{chapter}-{utt:04d}.flac", samples, rate)
                # Transcripts sit next to the audio in the real corpus; they are not audio.
                (folder / f"{speaker}-{chapter}.trans.txt").write_text("0000 HELLO\n")
    return tmp_path / "corpora"


def _expected_ids(split):
    return sorted(
        f"{speaker}-{chapter}-{utt:04d}"
        for speaker, chapters in LAYOUT[split].items()
        for chapter, count in chapters.items()
        for utt in range(count)
    )


def test_manifests_per_split_and_combined(libri_root, tmp_path):
    save = tmp_path / "manifests"
    summary = prepare_librispeech(libri_root, save, splits=["train-clean-100", "dev-clean"])
    assert sorted(os.listdir(save)) == [
        "librispeech.csv",
        "librispeech.prepared.json",
        "librispeech_dev-clean.csv",
        "librispeech_train-clean-100.csv",
    ]
    assert summary["train-clean-100"]["kept"] == 6 and summary["dev-clean"]["kept"] == 2

    for split in LAYOUT:
        path = save / f"librispeech_{split}.csv"
        assert path.read_text().splitlines()[0] == "ID,duration,wav,speaker"
        rows = read_manifest(path)
        assert sorted(row["ID"] for row in rows) == _expected_ids(split)
        for row in rows:
            wav = row["wav"]
            assert os.path.isabs(wav) and os.path.basename(wav) == f"{row['ID']}.flac"
            assert row["speaker"] == row["ID"].split("-")[0]
            info = sf.info(wav)
            assert row["duration"] == pytest.approx(info.frames / info.samplerate, abs=1e-6)

    combined = read_manifest(save / "librispeech.csv")
    assert sorted(row["ID"] for row in combined) == sorted(
        _expected_ids("train-clean-100") + _expected_ids("dev-clean")
    )


def test_data_folder_may_be_the_librispeech_folder(libri_root, tmp_path):
    save = tmp_path / "out"
    prepare_librispeech(libri_root / "LibriSpeech", save, splits=["dev-clean"])
    assert len(read_manifest(save / "librispeech_dev-clean.csv")) == 2


def test_missing_split_says_what_to_download(libri_root, tmp_path):
    save = tmp_path / "out"
    with pytest.raises(FileNotFoundError) as caught:
        prepare_librispeech(libri_root, save, splits=["dev-clean", "train-other-500"])
    message = str(caught.value)
    assert "train-other-500" in message and "openslr.org/12" in message
    assert str(libri_root) in message
    assert not save.exists() or not os.listdir(save)  # checked before any writing


def test_empty_split_folder_is_an_error(libri_root, tmp_path):
    (libri_root / "LibriSpeech" / "test-clean").mkdir()
    with pytest.raises(FileNotFoundError, match="No .flac files"):
        prepare_librispeech(libri_root, tmp_path / "out", splits=["test-clean"])


def test_existing_manifests_are_kept_unless_forced(libri_root, tmp_path):
    save = tmp_path / "out"
    assert prepare_librispeech(libri_root, save, splits=["dev-clean"]) is not None
    split_csv = save / "librispeech_dev-clean.csv"
    split_csv.write_text("ID,duration,wav,speaker\nsentinel,1.0,/x.flac,1\n")

    assert prepare_librispeech(libri_root, save, splits=["dev-clean"]) is None
    assert read_manifest(split_csv)[0]["ID"] == "sentinel"

    prepare_librispeech(libri_root, save, splits=["dev-clean"], force=True)
    assert len(read_manifest(split_csv)) == 2


def test_incomplete_outputs_are_rebuilt(libri_root, tmp_path):
    save = tmp_path / "out"
    prepare_librispeech(libri_root, save, splits=["dev-clean"])
    (save / "librispeech.csv").unlink()  # as if the run died before the last write
    assert prepare_librispeech(libri_root, save, splits=["dev-clean"]) is not None
    assert len(read_manifest(save / "librispeech.csv")) == 2


def test_skip_prep_writes_nothing(tmp_path):
    save = tmp_path / "out"
    assert prepare_librispeech(tmp_path / "absent", save, skip_prep=True) is None
    assert not save.exists()


def test_bad_flac_errors_or_is_skipped(libri_root, tmp_path):
    bad = libri_root / "LibriSpeech" / "dev-clean" / "84" / "121123" / "84-121123-0009.flac"
    bad.touch()
    with pytest.raises(EmptyAudioError, match="84-121123-0009.flac"):
        prepare_librispeech(libri_root, tmp_path / "strict", splits=["dev-clean"])
    assert not (tmp_path / "strict" / "librispeech_dev-clean.csv").exists()

    save = tmp_path / "lenient"
    summary = prepare_librispeech(libri_root, save, splits=["dev-clean"], on_bad_audio="skip")
    assert summary["dev-clean"]["empty"] == 1 and summary["dev-clean"]["kept"] == 2
    ids = [row["ID"] for row in read_manifest(save / "librispeech_dev-clean.csv")]
    assert "84-121123-0009" not in ids and len(ids) == 2
