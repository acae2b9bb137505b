"""Tests for ssast_sb.data.generic: folder/CSV/JSON sources, path checks and mixing."""

import csv
import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from ssast_sb.data.generic import PathEscapeError, mix_manifests, prepare_generic
from ssast_sb.data.manifest import (
    BadAudioError,
    ManifestError,
    read_manifest,
    write_manifest_atomic,
)


@pytest.fixture(scope="module")
def real_clips(shared_dir):
    """Three FSDD flac clips and three KLettres ogg clips."""
    clips = []
    for task in ("kws_sid_fsdd", "pretrain_klettres"):
        folder = shared_dir / "data" / task
        with open(folder / "manifest.csv", newline="") as csv_file:
            clips += [folder / row["path"] for row in list(csv.DictReader(csv_file))[:3]]
    return clips


@pytest.fixture
def corpus(tmp_path, real_clips):
    """``tmp/corpus`` with nested real clips in several formats and rates, plus a text file."""
    root = tmp_path / "corpus"
    layout = [
        "digits/a.flac",
        "digits/b.flac",
        "digits/deep/c.flac",
        "letters/a.ogg",
        "letters/b.ogg",
        "letters/c.ogg",
    ]
    for name, clip in zip(layout, real_clips):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, root / name)
    samples, _ = sf.read(real_clips[0], dtype="float32")
    (root / "other_rates").mkdir()
    sf.write(root / "other_rates" / "stereo_44k.wav", np.stack([samples, samples], axis=1), 44100)
    sf.write(root / "other_rates" / "mono_8k.wav", samples, 8000)
    (root / "letters" / "notes.txt").write_text("not audio")
    return root


def _duration(path):
    info = sf.info(path)
    return info.frames / info.samplerate


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as csv_file:
        writer = csv.writer(csv_file)
        writer.writerow(header)
        writer.writerows(rows)


def test_folder_source(corpus, tmp_path):
    save = tmp_path / "out"
    summary = prepare_generic(corpus, save, name="pool")
    assert summary["kept"] == 8
    path = save / "pool.csv"
    assert path.read_text().splitlines()[0] == "ID,duration,wav"
    rows = {row["ID"]: row for row in read_manifest(path)}
    assert set(rows) == {
        "digits_a",
        "digits_b",
        "digits_deep_c",
        "letters_a",
        "letters_b",
        "letters_c",
        "other_rates_stereo_44k",
        "other_rates_mono_8k",
    }
    for row in rows.values():
        assert os.path.isabs(row["wav"]) and row["wav"].startswith(str(corpus))
        assert row["duration"] == pytest.approx(_duration(row["wav"]), abs=1e-6)


def test_folder_source_extension_filter(corpus, tmp_path):
    prepare_generic(corpus, tmp_path, name="ogg_only", extensions=(".OGG",))
    rows = read_manifest(tmp_path / "ogg_only.csv")
    assert sorted(row["ID"] for row in rows) == ["letters_a", "letters_b", "letters_c"]


def test_folder_without_audio(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="No audio files"):
        prepare_generic(tmp_path / "empty", tmp_path, name="x")


def test_csv_source_with_path_column(corpus, tmp_path):
    source = corpus / "list.csv"
    _write_csv(
        source,
        ["ID", "path", "label", "speaker", "duration", "split"],
        [
            ["one", "digits/a.flac", "0", "george", "99.0", "train"],
            ["two", "letters/b.ogg", "b", "klettres_cs", "", "train"],
        ],
    )
    prepare_generic(source, tmp_path / "out", name="list")
    path = tmp_path / "out" / "list.csv"
    assert path.read_text().splitlines()[0] == "ID,duration,wav,label,speaker"
    one, two = read_manifest(path)
    assert (one["ID"], one["label"], one["speaker"]) == ("one", "0", "george")
    assert one["wav"] == str(corpus / "digits" / "a.flac")
    # Durations are measured, not copied from the list.
    assert one["duration"] == pytest.approx(_duration(corpus / "digits" / "a.flac"), abs=1e-6)
    assert two["wav"] == str(corpus / "letters" / "b.ogg")


def test_csv_source_with_wav_column_and_no_ids(corpus, tmp_path):
    source = corpus / "list.csv"
    _write_csv(source, ["wav"], [["digits/deep/c.flac"], [str(corpus / "letters" / "a.ogg")]])
    prepare_generic(source, tmp_path, name="list")
    assert [row["ID"] for row in read_manifest(tmp_path / "list.csv")] == [
        "digits_deep_c",
        "letters_a",
    ]


def test_csv_source_needs_a_path_column(corpus, tmp_path):
    source = corpus / "list.csv"
    _write_csv(source, ["file"], [["digits/a.flac"]])
    with pytest.raises(ManifestError, match="'wav' or 'path'"):
        prepare_generic(source, tmp_path, name="list")


def test_csv_source_repeated_id(corpus, tmp_path):
    source = corpus / "list.csv"
    _write_csv(source, ["ID", "wav"], [["x", "digits/a.flac"], ["x", "digits/b.flac"]])
    with pytest.raises(ManifestError, match="line 3.*'x'.*line 2"):
        prepare_generic(source, tmp_path, name="list")


def test_empty_and_malformed_lists(corpus, tmp_path):
    empty = corpus / "empty.csv"
    _write_csv(empty, ["wav"], [])
    with pytest.raises(ManifestError, match="empty.csv lists no audio"):
        prepare_generic(empty, tmp_path, name="x")
    odd = corpus / "odd.json"
    odd.write_text(json.dumps({"data": [{"wav": "digits/a.flac"}, "letters/a.ogg"]}))
    with pytest.raises(ManifestError, match="entry 1"):
        prepare_generic(odd, tmp_path, name="x")


def test_speechbrain_json_source(corpus, tmp_path):
    source = corpus / "data.json"
    source.write_text(
        json.dumps(
            {
                "utt_a": {"wav": "digits/a.flac", "duration": 1.0, "speaker": "george"},
                "utt_b": {"path": "letters/c.ogg"},
            }
        )
    )
    prepare_generic(source, tmp_path, name="sb")
    rows = read_manifest(tmp_path / "sb.csv")
    assert [(row["ID"], row["speaker"]) for row in rows] == [("utt_a", "george"), ("utt_b", "")]
    assert rows[1]["wav"] == str(corpus / "letters" / "c.ogg")


def test_ssast_json_source(corpus, tmp_path):
    source = corpus / "ssast.json"
    source.write_text(
        json.dumps(
            {
                "data": [
                    {"wav": "digits/a.flac", "labels": "/m/09x0r,/m/05zppz"},
                    {"wav": "letters/a.ogg", "labels": "/m/09x0r"},
                ]
            }
        )
    )
    prepare_generic(source, tmp_path, name="ssast")
    rows = read_manifest(tmp_path / "ssast.csv")
    assert [(row["ID"], row["labels"]) for row in rows] == [
        ("digits_a", "/m/09x0r;/m/05zppz"),
        ("letters_a", "/m/09x0r"),
    ]


def test_unrecognised_json(corpus, tmp_path):
    source = corpus / "list.json"
    source.write_text(json.dumps(["digits/a.flac"]))
    with pytest.raises(ManifestError, match="SpeechBrain style"):
        prepare_generic(source, tmp_path, name="x")


@pytest.mark.parametrize(
    "listed_path",
    ["../outside.wav", "digits/../../outside.wav", "/etc/passwd", "{outside}"],
)
def test_paths_escaping_the_data_root_are_refused(corpus, tmp_path, listed_path):
    outside = tmp_path / "outside.wav"
    shutil.copy(corpus / "digits" / "a.flac", outside)  # a real file: refused, not missing
    listed_path = listed_path.format(outside=outside)
    source = corpus / "list.csv"
    _write_csv(source, ["wav"], [["digits/a.flac"], [listed_path]])
    escape = r"list.csv, line 3: audio path .*outside the data root"
    with pytest.raises(PathEscapeError, match=escape):
        prepare_generic(source, tmp_path / "out", name="list")
    assert not (tmp_path / "out" / "list.csv").exists()


def test_json_path_escape_names_the_entry(corpus, tmp_path):
    source = corpus / "data.json"
    source.write_text(json.dumps({"good": {"wav": "digits/a.flac"}, "evil": {"wav": "../x.wav"}}))
    with pytest.raises(PathEscapeError, match="entry 'evil'"):
        prepare_generic(source, tmp_path, name="x")


def test_explicit_data_root(corpus, tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    source = lists / "list.csv"
    _write_csv(source, ["wav"], [["letters/a.ogg"], [str(corpus / "digits" / "a.flac")]])
    prepare_generic(source, tmp_path / "out", name="list", data_root=corpus)
    assert len(read_manifest(tmp_path / "out" / "list.csv")) == 2
    # Without data_root, the same list resolves against its own folder and fails.
    with pytest.raises(PathEscapeError):
        prepare_generic(source, tmp_path / "out", name="list2")


def test_bad_audio_in_a_list(corpus, tmp_path):
    header = (corpus / "digits" / "a.flac").read_bytes()[:30]
    (corpus / "digits" / "truncated.flac").write_bytes(header)
    (corpus / "digits" / "zero.flac").touch()
    source = corpus / "list.csv"
    _write_csv(
        source,
        ["wav"],
        [
            ["digits/a.flac"],
            ["digits/gone.flac"],
            ["digits/truncated.flac"],
            ["digits/zero.flac"],
        ],
    )
    # Every bad file in one error, with the option that skips them.
    with pytest.raises(BadAudioError) as error:
        prepare_generic(source, tmp_path, name="strict")
    message = str(error.value)
    assert message.startswith("3 of 4 audio files cannot be used:")
    assert all(name in message for name in ("gone.flac", "truncated.flac", "zero.flac"))
    assert "--on_bad_audio skip" in message
    summary = prepare_generic(source, tmp_path, name="lenient", on_bad_audio="skip")
    assert (summary["kept"], summary["missing"], summary["unreadable"], summary["empty"]) == (
        1,
        1,
        1,
        1,
    )
    assert [row["ID"] for row in read_manifest(tmp_path / "lenient.csv")] == ["digits_a"]


def test_existing_manifest_is_kept_unless_forced(corpus, tmp_path):
    prepare_generic(corpus, tmp_path, name="pool")
    (tmp_path / "pool.csv").write_text("ID,duration,wav\n")
    assert prepare_generic(corpus, tmp_path, name="pool") is None
    assert read_manifest(tmp_path / "pool.csv") == []
    prepare_generic(corpus, tmp_path, name="pool", force=True)
    assert len(read_manifest(tmp_path / "pool.csv")) == 8


def test_name_and_source_checks(corpus, tmp_path):
    with pytest.raises(ValueError, match="name"):
        prepare_generic(corpus, tmp_path, name="../escape")
    with pytest.raises(FileNotFoundError, match="absent"):
        prepare_generic(tmp_path / "absent", tmp_path, name="x")
    (corpus / "list.txt").write_text("digits/a.flac\n")
    with pytest.raises(ValueError, match=".csv or a .json"):
        prepare_generic(corpus / "list.txt", tmp_path, name="x")
    assert prepare_generic(tmp_path / "absent", tmp_path, name="x", skip_prep=True) is None


@pytest.fixture
def two_manifests(corpus, tmp_path):
    """A speech manifest with speakers and an event manifest with labels."""
    speech = tmp_path / "speech.csv"
    events = tmp_path / "events.csv"
    speech_rows = [
        {"ID": f"u{i}", "duration": 1.0, "wav": f"/s/{i}.flac", "speaker": "s"} for i in range(12)
    ]
    event_rows = [
        {"ID": f"u{i}", "duration": 2.0, "wav": f"/e/{i}.wav", "labels": "/m/0"} for i in range(8)
    ]
    write_manifest_atomic(speech_rows, speech, ["ID", "duration", "wav", "speaker"])
    write_manifest_atomic(event_rows, events, ["ID", "duration", "wav", "labels"])
    return speech, events


def test_mix_manifests(two_manifests, tmp_path):
    speech, events = two_manifests
    output = tmp_path / "mix" / "pretrain.csv"
    assert mix_manifests([speech, events], output) == {"speech": 12, "events": 8}
    assert output.read_text().splitlines()[0] == "ID,duration,wav,speaker,labels,source"
    rows = read_manifest(output)
    assert len(rows) == 20 and len({row["ID"] for row in rows}) == 20
    for row in rows:
        name, _ = row["ID"].split("__")
        assert row["source"] == name
        assert (row["speaker"] == "s") == (name == "speech")
        assert (row["labels"] == "/m/0") == (name == "events")
        assert row["wav"].startswith("/s/" if name == "speech" else "/e/")
    # Shuffled: the two sources are interleaved, not concatenated.
    sources = [row["source"] for row in rows]
    assert sources != sorted(sources) and sources != sorted(sources, reverse=True)
    assert [name for name in os.listdir(output.parent) if name.endswith(".tmp")] == []


def test_mix_is_deterministic(two_manifests, tmp_path):
    speech, events = two_manifests
    mix_manifests([speech, events], tmp_path / "a.csv", seed=3)
    mix_manifests([speech, events], tmp_path / "b.csv", seed=3)
    mix_manifests([speech, events], tmp_path / "c.csv", seed=4)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()


def test_mix_with_explicit_names_and_repeated_names(two_manifests, tmp_path):
    speech, events = two_manifests
    counts = mix_manifests({"librispeech": speech, "audioset": events}, tmp_path / "m.csv")
    assert counts == {"librispeech": 12, "audioset": 8}
    assert {row["source"] for row in read_manifest(tmp_path / "m.csv")} == {
        "librispeech",
        "audioset",
    }
    (tmp_path / "other").mkdir()
    copy = tmp_path / "other" / "speech.csv"
    shutil.copy(speech, copy)
    with pytest.raises(ValueError, match="unique"):
        mix_manifests([speech, copy], tmp_path / "m2.csv")


def test_mix_prepared_manifests(corpus, tmp_path):
    """End to end: two prepared sources mixed into one pretraining manifest."""
    prepare_generic(corpus / "digits", tmp_path, name="digits")
    prepare_generic(corpus / "letters", tmp_path, name="letters")
    sources = [tmp_path / "digits.csv", tmp_path / "letters.csv"]
    counts = mix_manifests(sources, tmp_path / "mix.csv")
    assert counts == {"digits": 3, "letters": 3}
    rows = read_manifest(tmp_path / "mix.csv")
    assert sorted(row["ID"] for row in rows) == [
        "digits__a",
        "digits__b",
        "digits__deep_c",
        "letters__a",
        "letters__b",
        "letters__c",
    ]
    assert all(os.path.isfile(row["wav"]) for row in rows)
