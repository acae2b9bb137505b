"""Tests for ssast_sb.data.esc50 on a small ESC-50-shaped tree of real ESC-10 clips."""

import csv
import hashlib
import json
import logging
import os
import shutil
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from ssast_sb.data.audio import AudioFileMissingError
from ssast_sb.data.esc50 import download_and_extract, download_esc50, prepare_esc50
from ssast_sb.data.manifest import ClassLostError, read_manifest

META_HEADER = "filename,fold,target,category,esc10,src_file,take\n"
CLIPS_PER_CLASS = 3
NUM_CLASSES = 5


@pytest.fixture(scope="module")
def esc10_clips(shared_dir):
    """{category: [clip paths]} for the first classes of the shared ESC-10 clips."""
    folder = shared_dir / "data" / "audio_events_esc10"
    with open(folder / "manifest.csv", newline="") as csv_file:
        rows = list(csv.DictReader(csv_file))
    clips = {}
    for row in rows:
        category = row["label"].lower().replace(" ", "_")
        clips.setdefault(category, []).append(folder / row["path"])
    categories = sorted(clips)[:NUM_CLASSES]
    return {category: clips[category][:CLIPS_PER_CLASS] for category in categories}


def _build_release(release, esc10_clips):
    """Write ``release/audio/*.wav`` at 44.1 kHz and ``release/meta/esc50.csv``; return the rows."""
    (release / "audio").mkdir(parents=True)
    (release / "meta").mkdir()
    entries = []
    for target, (category, clips) in enumerate(esc10_clips.items()):
        for index, clip in enumerate(clips):
            fold = (target + index) % 5 + 1
            src_file = 100000 + 10 * target + index
            filename = f"{fold}-{src_file}-A-{target}.wav"
            samples, rate = sf.read(clip, dtype="float32")
            # The official clips are 44.1 kHz wav; resampling is left to load time.
            samples = torchaudio.functional.resample(torch.from_numpy(samples), rate, 44100)
            samples = samples.numpy()
            sf.write(release / "audio" / filename, samples, 44100)
            entries.append((filename, fold, target, category, src_file))
    with open(release / "meta" / "esc50.csv", "w") as meta:
        meta.write(META_HEADER)
        for filename, fold, target, category, src_file in entries:
            meta.write(f"{filename},{fold},{target},{category},False,{src_file},A\n")
    return entries


@pytest.fixture(scope="module")
def esc_template(tmp_path_factory, esc10_clips):
    root = tmp_path_factory.mktemp("esc_template")
    return root, _build_release(root / "ESC-50-master", esc10_clips)


@pytest.fixture
def esc_root(tmp_path, esc_template):
    """A fresh copy of the ESC-50-shaped tree per test (tests delete files from it)."""
    template, entries = esc_template
    root = tmp_path / "corpora"
    shutil.copytree(template, root)
    return root, entries


def test_fold_manifests_and_labels(esc_root, tmp_path):
    root, entries = esc_root
    save = tmp_path / "manifests"
    summary = prepare_esc50(root, save)
    # No class list: the label encoder saved with the model is the class order.
    assert sorted(os.listdir(save)) == ["esc50.prepared.json"] + [
        f"esc50_fold{k}.csv" for k in range(1, 6)
    ]
    assert summary["num_classes"] == NUM_CLASSES
    expected_by_fold = {k: sorted(e for e in entries if e[1] == k) for k in range(1, 6)}
    for fold in range(1, 6):
        path = save / f"esc50_fold{fold}.csv"
        assert path.read_text().splitlines()[0] == "ID,duration,wav,label,target,fold"
        rows = sorted(read_manifest(path), key=lambda row: row["ID"])
        expected = expected_by_fold[fold]
        assert summary[f"fold{fold}"]["kept"] == len(expected) > 0
        assert [row["ID"] for row in rows] == [e[0][:-4] for e in expected]
        for row, (filename, _, target, category, _) in zip(rows, expected):
            assert os.path.isabs(row["wav"]) and row["wav"].endswith(f"audio/{filename}")
            assert row["label"] == category and int(row["target"]) == target
            assert int(row["fold"]) == fold
            info = sf.info(row["wav"])
            assert info.samplerate == 44100  # files are not converted
            assert row["duration"] == pytest.approx(info.frames / 44100, abs=1e-6)
            assert 4.9 < row["duration"] < 5.1
    # Every clip is in exactly one fold.
    all_ids = [row["ID"] for k in range(1, 6) for row in read_manifest(save / f"esc50_fold{k}.csv")]
    assert sorted(all_ids) == sorted(e[0][:-4] for e in entries)
    # The stamp keeps the clip counts per class, in sorted (label encoder) order.
    stamp = json.loads((save / "esc50.prepared.json").read_text())
    assert stamp["function"] == "ssast_sb.data.esc50.prepare_esc50"
    assert stamp["options"] == {"data_folder": str(root.resolve()), "on_bad_audio": "error"}
    assert list(stamp["counts"]["class_counts"]) == sorted(e[3] for e in entries[::CLIPS_PER_CLASS])
    assert set(stamp["counts"]["class_counts"].values()) == {CLIPS_PER_CLASS}


def test_release_folder_itself_and_obsolete_class_list(esc_root, tmp_path):
    root, _ = esc_root
    save = tmp_path / "m"
    save.mkdir()
    (save / "esc50_labels.json").write_text('["dog", "rooster"]')  # from an earlier version
    prepare_esc50(root / "ESC-50-master", save)  # the release folder itself works too
    assert not (save / "esc50_labels.json").exists()


def test_skip_existing_and_force(esc_root, tmp_path):
    root, _ = esc_root
    save = tmp_path / "manifests"
    assert prepare_esc50(root, save) is not None
    assert prepare_esc50(root, save) is None  # outputs exist: nothing to do
    assert prepare_esc50(root, save, force=True) is not None
    assert prepare_esc50(root / "nowhere", save, skip_prep=True) is None


def test_missing_dataset_says_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        prepare_esc50(tmp_path / "empty", tmp_path / "out")
    message = str(error.value)
    assert "https://github.com/karoldvl/ESC-50/archive/master.zip" in message
    assert str(tmp_path / "empty" / "ESC-50-master") in message
    assert not (tmp_path / "out").exists()


def _add_second_clip(release, entry):
    """List a copy of ``entry``'s clip in the same fold, so its class has two clips there."""
    filename, fold, target, category, src_file = entry
    copy = f"{fold}-{src_file + 5000}-B-{target}.wav"
    shutil.copy(release / "audio" / filename, release / "audio" / copy)
    with open(release / "meta" / "esc50.csv", "a") as meta:
        meta.write(f"{copy},{fold},{target},{category},False,{src_file + 5000},B\n")


def test_listed_clip_missing_errors_or_is_skipped(esc_root, tmp_path, caplog):
    root, entries = esc_root
    release = root / "ESC-50-master"
    _add_second_clip(release, entries[0])
    gone = entries[0][0]
    os.remove(release / "audio" / gone)
    with pytest.raises(AudioFileMissingError, match=gone[:-4]):
        prepare_esc50(root, tmp_path / "strict")
    assert not (tmp_path / "strict" / "esc50.prepared.json").exists()
    with caplog.at_level(logging.WARNING):
        summary = prepare_esc50(root, tmp_path / "lenient", on_bad_audio="skip")
    fold, category = entries[0][1], entries[0][3]
    assert summary[f"fold{fold}"]["missing"] == 1
    assert summary["short_classes"] == {f"fold{fold}": {category: [1, 2]}}
    assert f"ESC-50 fold{fold}: 1 of the " in caplog.text
    assert f"per class, kept/listed: {category} 1/2" in caplog.text
    ids = [row["ID"] for row in read_manifest(tmp_path / "lenient" / f"esc50_fold{fold}.csv")]
    assert gone[:-4] not in ids


def test_class_lost_from_a_fold_is_an_error(esc_root, tmp_path):
    root, entries = esc_root
    filename, fold, _, category, _ = entries[0]  # the only clip of its class in its fold
    os.remove(root / "ESC-50-master" / "audio" / filename)
    with pytest.raises(ClassLostError) as caught:
        prepare_esc50(root, tmp_path / "m", on_bad_audio="skip")
    message = str(caught.value)
    assert f"ESC-50 fold{fold}: no clip is left of 1 class(es) ({category} 0/1)" in message
    assert "esc50.csv" in message and "extension" in message
    assert not (tmp_path / "m" / "esc50.prepared.json").exists()


def _zip_tree(folder, zip_path):
    with zipfile.ZipFile(zip_path, "w") as zipped:
        for path in sorted(folder.rglob("*")):
            zipped.write(path, path.relative_to(folder.parent))


def test_download_from_local_zip_then_prepare(esc_root, tmp_path, caplog):
    root, entries = esc_root
    zip_path = tmp_path / "master.zip"
    _zip_tree(root / "ESC-50-master", zip_path)
    digest = hashlib.sha256(zip_path.read_bytes()).hexdigest()
    data = tmp_path / "data"
    with caplog.at_level(logging.INFO, logger="ssast_sb.data.esc50"):
        release = download_esc50(data, url=zip_path.as_uri())
    assert release == data / "ESC-50-master"
    assert digest in caplog.text  # no known checksum: the digest is logged
    assert (release / "meta" / "esc50.csv").is_file()
    assert len(list((release / "audio").glob("*.wav"))) == len(entries)
    # Only the dataset and the kept archive; no temporary folder left behind.
    assert sorted(os.listdir(data)) == ["ESC-50-master", "ESC-50-master-master.zip"]
    summary = prepare_esc50(data, tmp_path / "out")
    assert sum(summary[f"fold{k}"]["kept"] for k in range(1, 6)) == len(entries)


def test_download_verifies_checksum(esc_root, tmp_path):
    root, _ = esc_root
    zip_path = tmp_path / "master.zip"
    _zip_tree(root / "ESC-50-master", zip_path)
    data = tmp_path / "data"
    with pytest.raises(ValueError, match="Checksum mismatch"):
        download_esc50(data, url=zip_path.as_uri(), sha256="0" * 64)
    assert os.listdir(data) == []  # bad archive deleted, nothing extracted
    digest = hashlib.sha256(zip_path.read_bytes()).hexdigest()
    release = download_esc50(data, url=zip_path.as_uri(), sha256=digest, keep_archive=False)
    assert os.listdir(data) == ["ESC-50-master"] and (release / "audio").is_dir()


def test_failed_extraction_leaves_no_dataset_folder(tmp_path):
    bogus = tmp_path / "broken.zip"
    bogus.write_bytes(b"this is not an archive")
    with pytest.raises(ValueError, match="neither a zip nor a tar"):
        download_and_extract(bogus.as_uri(), tmp_path / "data" / "ESC-50-master")
    leftovers = [name for name in os.listdir(tmp_path / "data") if not name.endswith(".zip")]
    assert leftovers == []


def test_resampled_at_load_time(esc_root, tmp_path):
    from ssast_sb.data.audio import load_audio

    root, _ = esc_root
    prepare_esc50(root, tmp_path / "m")
    row = read_manifest(tmp_path / "m" / "esc50_fold1.csv")[0]
    waveform = load_audio(row["wav"], target_sample_rate=16000)
    assert waveform.shape[0] == pytest.approx(16000 * row["duration"], abs=2)
    assert np.isfinite(waveform.numpy()).all()
