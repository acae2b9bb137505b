"""Manifests record what made them: a rerun with other options or sources rebuilds them.

The corpora are small copies of real clips from the shared data (FSDD digits).
"""

import csv
import json
import logging
import shutil

import pytest
import soundfile as sf

from ssast_sb.data.generic import mix_manifests, prepare_generic
from ssast_sb.data.manifest import read_manifest
from ssast_sb.data.pretraining import prepare_pretraining_data
from ssast_sb.data.speech_commands import prepare_speech_commands


@pytest.fixture(scope="module")
def fsdd_clips(shared_dir):
    folder = shared_dir / "data" / "kws_sid_fsdd"
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as stream:
        return [(folder / row["path"], row["label"]) for row in csv.DictReader(stream)]


def _clips(folder, fsdd_clips, first, count):
    """``count`` real clips from index ``first`` copied into ``folder`` as ``<index>.flac``."""
    folder.mkdir(parents=True)
    for index in range(first, first + count):
        shutil.copy(fsdd_clips[index][0], folder / f"{index}.flac")
    return folder


def _ids(manifest):
    return sorted(row["ID"] for row in read_manifest(manifest))


def test_changed_option_rebuilds_and_says_old_and_new(tmp_path, fsdd_clips, caplog):
    source = _clips(tmp_path / "clips", fsdd_clips, 0, 3)
    (source / "bad.flac").write_bytes(b"")
    save = tmp_path / "out"
    with pytest.raises(ValueError, match="bad.flac"):
        prepare_generic(source, save, name="pool")
    assert prepare_generic(source, save, name="pool", on_bad_audio="skip")["kept"] == 3
    with caplog.at_level(logging.INFO, logger="ssast_sb.data.manifest"):
        assert prepare_generic(source, save, name="pool", on_bad_audio="skip") is None
    assert (
        f"pool manifest in {save} already prepared (by "
        "ssast_sb.data.generic.prepare_generic with data_root=None, extensions=['.flac', "
        f"'.mp3', '.ogg', '.wav'], on_bad_audio='skip', source={str(source)!r}, "
        "source_sha256=None), skipping preparation; pass force=True to rebuild"
    ) in caplog.text
    caplog.clear()
    (source / "bad.flac").unlink()
    with caplog.at_level(logging.WARNING, logger="ssast_sb.data.manifest"):
        assert prepare_generic(source, save, name="pool")["kept"] == 3  # not silently reused
    assert (
        f"Rebuilding the pool manifest in {save}: made with other options: "
        "on_bad_audio: 'skip' -> 'error'."
    ) in caplog.text


def test_edited_csv_source_rebuilds(tmp_path, fsdd_clips, caplog):
    _clips(tmp_path / "clips", fsdd_clips, 0, 3)
    listing = tmp_path / "list.csv"
    listing.write_text("wav\nclips/0.flac\n")
    prepare_generic(listing, tmp_path / "out", name="own")
    listing.write_text("wav\nclips/0.flac\nclips/1.flac\n")
    with caplog.at_level(logging.WARNING):
        assert prepare_generic(listing, tmp_path / "out", name="own")["kept"] == 2
    assert "source_sha256: '" in caplog.text


def test_manifests_without_a_stamp_are_rebuilt_with_a_message(tmp_path, fsdd_clips, caplog):
    source = _clips(tmp_path / "clips", fsdd_clips, 0, 2)
    save = tmp_path / "out"
    save.mkdir()
    (save / "pool.csv").write_text("ID,duration,wav\nold,1.0,/elsewhere/old.wav\n")  # older run
    with caplog.at_level(logging.WARNING):
        prepare_generic(source, save, name="pool")
    assert _ids(save / "pool.csv") == ["0", "1"]
    assert (
        f"Rebuilding the pool manifest in {save}: found pool.csv but no stamp "
        "pool.prepared.json (made before stamps existed, or by hand), so the options that "
        "made them are unknown."
    ) in caplog.text


def test_missing_output_or_unreadable_stamp_rebuilds(tmp_path, fsdd_clips, caplog):
    source = _clips(tmp_path / "clips", fsdd_clips, 0, 2)
    save = tmp_path / "out"
    prepare_generic(source, save, name="pool")
    (save / "pool.prepared.json").write_text("{half a stamp")
    with caplog.at_level(logging.WARNING):
        assert prepare_generic(source, save, name="pool") is not None
    assert "pool.prepared.json is unreadable" in caplog.text
    (save / "pool.csv").unlink()
    assert prepare_generic(source, save, name="pool") is not None
    assert "pool.csv missing although the stamp lists it" in caplog.text


def _speech_commands(root, fsdd_clips):
    """A Speech Commands v2 tree of two words, three takes each (train, valid, test)."""
    release = root / "speech_commands_v0.02"
    lists = {1: [], 2: []}
    for word, digit in (("yes", "0"), ("no", "1")):
        clips = [path for path, label in fsdd_clips if label == digit][:3]
        for take, path in enumerate(clips):
            (release / word).mkdir(parents=True, exist_ok=True)
            samples, rate = sf.read(path, dtype="float32")
            sf.write(release / word / f"spk_nohash_{take}.wav", samples, rate)
            if take:
                lists[take].append(f"{word}/spk_nohash_{take}.wav")
    (release / "validation_list.txt").write_text("\n".join(lists[1]) + "\n")
    (release / "testing_list.txt").write_text("\n".join(lists[2]) + "\n")
    return root


def test_other_data_folder_rebuilds(tmp_path, fsdd_clips, caplog):
    first = _speech_commands(tmp_path / "copy1", fsdd_clips)
    second = _speech_commands(tmp_path / "copy2", fsdd_clips)
    save = tmp_path / "out"
    prepare_speech_commands(first, save)
    with caplog.at_level(logging.WARNING):
        assert prepare_speech_commands(second, save) is not None
    assert (
        f"Rebuilding the Speech Commands v2_35 manifests in {save}: made with other "
        f"options: data_folder: {str(first)!r} -> {str(second)!r}."
    ) in caplog.text
    rows = read_manifest(save / "speech_commands_v2_35_train.csv")
    assert all(row["wav"].startswith(str(second)) for row in rows)
    stamp = json.loads((save / "speech_commands_v2_35.prepared.json").read_text())
    assert stamp["options"] == {
        "data_folder": str(second),
        "on_bad_audio": "error",
        "task": "v2_35",
        "version": 2,
    }


def test_pretraining_rerun_with_other_sources_rebuilds(tmp_path, fsdd_clips, caplog):
    """--extra_sources and --valid_source changed: the pools follow (the observed bug)."""
    save = tmp_path / "save"
    first = _clips(tmp_path / "a" / "clips", fsdd_clips, 0, 3)
    second = _clips(tmp_path / "b" / "clips", fsdd_clips, 10, 2)  # same folder name
    valid_one = _clips(tmp_path / "valid1", fsdd_clips, 20, 1)
    valid_two = _clips(tmp_path / "valid2", fsdd_clips, 30, 2)
    paths = prepare_pretraining_data(save, extra_sources=[str(first)], valid_source=valid_one)
    assert len(read_manifest(paths["train"])) == 3 and len(read_manifest(paths["valid"])) == 1
    with caplog.at_level(logging.WARNING):
        paths = prepare_pretraining_data(save, extra_sources=[str(second)], valid_source=valid_two)
    assert _ids(paths["train"]) == ["source0_clips__10", "source0_clips__11"]
    assert _ids(paths["valid"]) == ["valid_source__30", "valid_source__31"]
    assert (
        f"Rebuilding the source0_clips manifest in {save}: made with other options: "
        f"source: {str(first)!r} -> {str(second)!r}."
    ) in caplog.text
    assert (
        f"Rebuilding the mixed manifest pretrain_train.csv in {save}: made with other options: "
        "sources.source0_clips.sha256: '"
    ) in caplog.text


def test_mix_follows_its_sources(tmp_path, fsdd_clips):
    digits = tmp_path / "digits.csv"
    prepare_generic(_clips(tmp_path / "d", fsdd_clips, 0, 2), tmp_path, name="digits")
    assert mix_manifests([digits], tmp_path / "mix.csv") == {"digits": 2}
    assert mix_manifests([digits], tmp_path / "mix.csv") == {"digits": 2}  # reused
    prepare_generic(tmp_path / "d", tmp_path, name="digits", force=True)
    rows = read_manifest(digits)
    with open(digits, "w", encoding="utf-8") as stream:  # one source row fewer
        stream.write(
            "ID,duration,wav\n" + f"{rows[0]['ID']},{rows[0]['duration']},{rows[0]['wav']}\n"
        )
    assert mix_manifests([digits], tmp_path / "mix.csv") == {"digits": 1}
    assert len(read_manifest(tmp_path / "mix.csv")) == 1
