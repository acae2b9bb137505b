"""Data preparation finds files whatever the case of their extension, and says what it lost.

Each test lays out a copy of real clips from the shared data (FSDD digits, ESC-10) in the
layout of one corpus, with some extensions in upper or mixed case, some listed clips absent
and some classes without any clip.
"""

import csv
import json
import logging
import os

import pytest
import soundfile as sf

from ssast_sb.data.audioset import prepare_audioset
from ssast_sb.data.esc50 import prepare_esc50
from ssast_sb.data.generic import prepare_generic
from ssast_sb.data.librispeech import prepare_librispeech
from ssast_sb.data.manifest import ClassLostError, read_manifest
from ssast_sb.data.speech_commands import cut_silence_segments, prepare_speech_commands
from ssast_sb.data.voxceleb import prepare_voxceleb1_identification

WORDS = {"yes": "0", "no": "1", "up": "2"}  # word -> FSDD digit whose clips it holds


@pytest.fixture(scope="module")
def fsdd_rows(shared_dir):
    folder = shared_dir / "data" / "kws_sid_fsdd"
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    for row in rows:
        row["path"] = folder / row["path"]
    return rows


def _copy_as(source, destination):
    """Write the real clip ``source`` as ``destination`` (format from its lower-cased suffix)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    samples, rate = sf.read(source, dtype="float32")
    sf.write(destination, samples, rate, format=destination.suffix[1:].upper())


def _speech_commands(root, fsdd_rows, suffixes):
    """``speech_commands_v0.02`` with 3 takes per word (train, valid, test); the files of
    word ``w`` end in ``suffixes[w]`` (``.wav`` by default) while the lists say ``.wav``."""
    release = root / "speech_commands_v0.02"
    lists = {"valid": [], "test": []}
    for word, digit in WORDS.items():
        clips = [row for row in fsdd_rows if row["label"] == digit][:3]
        for take, row in enumerate(clips):
            name = f"{row['speaker'][5:]}_nohash_{take}"
            _copy_as(row["path"], release / word / f"{name}{suffixes.get(word, '.wav')}")
            if take:
                lists["valid" if take == 1 else "test"].append(f"{word}/{name}.wav")
    (release / "validation_list.txt").write_text("\n".join(lists["valid"]) + "\n")
    (release / "testing_list.txt").write_text("\n".join(lists["test"]) + "\n")
    return release


def _labels(save, task, split):
    return sorted(
        row["label"] for row in read_manifest(save / f"speech_commands_{task}_{split}.csv")
    )


def test_speech_commands_class_in_upper_case_is_kept(tmp_path, fsdd_rows):
    """A word whose files end in .WAV (or .Wav) is a class like the others, in every split."""
    _speech_commands(tmp_path, fsdd_rows, {"up": ".WAV", "no": ".Wav"})
    save = tmp_path / "out"
    summary = prepare_speech_commands(tmp_path, save, version=2)
    assert summary["num_classes"] == 3 and summary["short_classes"] == {}
    for split in ("train", "valid", "test"):  # the listed up/x.wav is the up/x.WAV on disk
        assert _labels(save, "v2_35", split) == ["no", "up", "yes"]


def test_speech_commands_word_folder_without_clips_is_an_error(tmp_path, fsdd_rows):
    release = _speech_commands(tmp_path, fsdd_rows, {"up": ".flac"})  # not Speech Commands audio
    with pytest.raises(ClassLostError) as caught:
        prepare_speech_commands(tmp_path, tmp_path / "out", version=2)
    message = str(caught.value)
    assert message.startswith(
        "Speech Commands v2_35 train: no clip is left of 1 class(es) "
        "(up 0/0 (no clip in this split)), "
        f"which the word folders and split lists of {release} has and the train split needs "
        "(also lost in valid, test)."
    )
    assert "(the extension's case does not matter)" in message
    assert not (tmp_path / "out" / "speech_commands_v2_35.prepared.json").exists()


def test_speech_commands_listed_clips_not_found_are_warned_about_per_class(
    tmp_path, fsdd_rows, caplog
):
    release = _speech_commands(tmp_path, fsdd_rows, {})
    with open(release / "validation_list.txt", "a") as lists:
        lists.write("no/gone_nohash_0.wav\nno/gone_nohash_1.wav\nyes/gone_nohash_0.wav\n")
    with caplog.at_level(logging.WARNING):
        summary = prepare_speech_commands(tmp_path, tmp_path / "out", version=2)
    assert summary["listed_not_found"] == 3
    assert summary["short_classes"] == {"valid": {"no": [1, 3], "yes": [1, 2]}}
    assert (
        f"Speech Commands v2_35 valid: 3 of the 6 clip(s) listed in the word folders and split "
        f"lists of {release} are not in the manifest (not on disk, or unusable and skipped); "
        "per class, kept/listed: no 1/3, yes 1/2"
    ) in caplog.text


def test_speech_commands_class_only_in_a_split_list_is_an_error(tmp_path, fsdd_rows):
    """The label encoder is fitted on the training set: a valid-only class cannot be scored."""
    release = _speech_commands(tmp_path, fsdd_rows, {})
    for path in (release / "up").iterdir():
        if path.name.endswith("_0.wav"):
            path.unlink()  # up's only training clip
    with pytest.raises(ClassLostError, match=r"v2_35 train: no clip is left of 1 class\(es\) \(up"):
        prepare_speech_commands(tmp_path, tmp_path / "out", version=2)


def test_background_noise_in_upper_case_is_cut(tmp_path, fsdd_rows):
    noise = tmp_path / "_background_noise_"
    _copy_as(fsdd_rows[0]["path"], noise / "tap.WAV")
    segments = cut_silence_segments(noise, tmp_path / "out", segment_s=0.1)
    assert segments and all(row["speaker"] == "tap" for _, row in segments)


def test_esc50_metadata_finds_files_in_any_case(tmp_path, shared_dir):
    folder = shared_dir / "data" / "audio_events_esc10"
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))[:2]
    release = tmp_path / "ESC-50-master"
    meta = ["filename,fold,target,category,esc10,src_file,take"]
    for index, (row, suffix) in enumerate(zip(rows, (".WAV", ".wav"))):
        _copy_as(folder / row["path"], release / "audio" / f"1-{index}-A-0{suffix}")
        meta.append(f"1-{index}-A-0.wav,1,0,dog,True,{index},A")  # the metadata says .wav
    (release / "meta").mkdir()
    (release / "meta" / "esc50.csv").write_text("\n".join(meta) + "\n")
    summary = prepare_esc50(tmp_path, tmp_path / "out")
    assert summary["fold1"]["kept"] == 2
    wavs = sorted(row["wav"] for row in read_manifest(tmp_path / "out" / "esc50_fold1.csv"))
    assert [os.path.basename(wav) for wav in wavs] == ["1-0-A-0.WAV", "1-1-A-0.wav"]


def test_voxceleb_split_file_finds_files_in_any_case(tmp_path, fsdd_rows):
    lines = []
    for index, split in enumerate("123"):
        relative = f"id10001/video/{index + 1:05d}.wav"
        suffix = ".WAV" if index == 0 else ".wav"
        _copy_as(fsdd_rows[index]["path"], tmp_path / "wav" / relative.replace(".wav", suffix))
        lines.append(f"{split} {relative}")
    (tmp_path / "iden_split.txt").write_text("\n".join(lines) + "\n")
    summary = prepare_voxceleb1_identification(tmp_path, tmp_path / "out")
    assert summary["not_found"] == 0 and summary["train"]["kept"] == 1


def test_librispeech_generic_and_audioset_find_upper_case_extensions(tmp_path, fsdd_rows):
    chapter = tmp_path / "LibriSpeech" / "dev-clean" / "84" / "121123"
    _copy_as(fsdd_rows[0]["path"], chapter / "84-121123-0000.FLAC")
    _copy_as(fsdd_rows[1]["path"], chapter / "84-121123-0001.flac")
    summary = prepare_librispeech(tmp_path, tmp_path / "libri", splits=["dev-clean"])
    assert summary["dev-clean"]["kept"] == 2

    _copy_as(fsdd_rows[2]["path"], tmp_path / "own" / "a.Flac")
    _copy_as(fsdd_rows[3]["path"], tmp_path / "own" / "b.OGG")
    assert prepare_generic(tmp_path / "own", tmp_path / "gen", name="own")["kept"] == 2

    audioset = tmp_path / "audioset"
    (audioset / "class_labels_indices.csv").parent.mkdir()
    (audioset / "class_labels_indices.csv").write_text('index,mid,display_name\n0,/m/a,"A"\n')
    (audioset / "eval_segments.csv").write_text('# x\nabcdefghijk, 30.000, 40.000, "/m/a"\n')
    _copy_as(fsdd_rows[4]["path"], audioset / "audio" / "abcdefghijk_30.WAV")
    summary = prepare_audioset(audioset, tmp_path / "as", segments=["eval"])
    assert summary["eval"]["found"] == summary["eval"]["kept"] == 1


def test_audioset_missing_clips_are_warned_about_per_class(tmp_path, fsdd_rows, caplog):
    (tmp_path / "class_labels_indices.csv").write_text(
        'index,mid,display_name\n0,/m/a,"A"\n1,/m/b,"B"\n'
    )
    (tmp_path / "eval_segments.csv").write_text(
        '# x\nabcdefghijk, 30.000, 40.000, "/m/a,/m/b"\nmissingclip, 0.000, 10.000, "/m/b"\n'
    )
    _copy_as(fsdd_rows[0]["path"], tmp_path / "audio" / "abcdefghijk_30.wav")
    with caplog.at_level(logging.WARNING):
        summary = prepare_audioset(tmp_path, tmp_path / "out", segments=["eval"])
    assert summary["short_classes"] == {"eval": {"/m/b": [1, 2]}}
    assert "AudioSet eval: 1 of the 3 clip(s)" in caplog.text
    assert "per class, kept/listed: /m/b 1/2" in caplog.text
    stamp = json.loads((tmp_path / "out" / "audioset.prepared.json").read_text())
    assert stamp["counts"]["short_classes"] == summary["short_classes"]
