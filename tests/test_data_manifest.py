"""Tests for ssast_sb.data.manifest: atomic CSV writing, reading and audio checks."""

import csv
import os
import random
import shutil
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import soundfile as sf

from ssast_sb.data.audio import (
    AudioDecodeError,
    AudioFileMissingError,
    EmptyAudioError,
    TruncatedAudioError,
)
from ssast_sb.data.manifest import (
    ManifestError,
    atomic_open,
    manifests_exist,
    read_manifest,
    unique_ids,
    validate_audio_rows,
    write_manifest_atomic,
)

FIELDS = ["ID", "duration", "wav", "label"]


@pytest.fixture(scope="module")
def fsdd_clips(shared_dir):
    folder = shared_dir / "data" / "kws_sid_fsdd"
    with open(folder / "manifest.csv", newline="") as csv_file:
        rows = list(csv.DictReader(csv_file))[:4]
    return [folder / row["path"] for row in rows]


@pytest.fixture
def audio_rows(tmp_path, fsdd_clips):
    """Rows pointing at copies of real clips in tmp_path."""
    rows = []
    for i, clip in enumerate(fsdd_clips):
        copy = tmp_path / f"clip{i}.flac"
        shutil.copy(clip, copy)
        rows.append({"ID": f"clip{i}", "wav": str(copy), "label": str(i)})
    return rows


def _rows(count):
    return [
        {"ID": f"utt{i}", "duration": 0.5 + i, "wav": f"/data/utt{i}.wav", "label": "a,b"}
        for i in range(count)
    ]


def _leftovers(folder):
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


def test_write_and_read_round_trip(tmp_path):
    path = tmp_path / "sub" / "train.csv"
    write_manifest_atomic(_rows(3), path, FIELDS)
    assert path.read_text().splitlines()[0] == "ID,duration,wav,label"
    rows = read_manifest(path)
    assert [row["ID"] for row in rows] == ["utt0", "utt1", "utt2"]
    assert [row["duration"] for row in rows] == [0.5, 1.5, 2.5]
    assert rows[0]["label"] == "a,b"  # quoted by csv, read back intact
    assert _leftovers(path.parent) == []


def test_written_manifest_loads_in_speechbrain(tmp_path):
    from speechbrain.dataio.dataio import load_data_csv

    path = tmp_path / "m.csv"
    write_manifest_atomic(_rows(2), path, FIELDS)
    data = load_data_csv(str(path))
    assert data["utt1"]["duration"] == 1.5 and data["utt1"]["wav"] == "/data/utt1.wav"


def test_missing_cells_are_blank(tmp_path):
    path = tmp_path / "m.csv"
    write_manifest_atomic([{"ID": "a", "duration": 1, "wav": "/a.wav"}], path, FIELDS)
    assert read_manifest(path)[0]["label"] == ""


def test_failure_mid_write_leaves_no_file(tmp_path):
    path = tmp_path / "train.csv"

    def rows_then_crash():
        yield from _rows(2)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_manifest_atomic(rows_then_crash(), path, FIELDS)
    assert not path.exists()
    assert _leftovers(tmp_path) == []


def test_failure_mid_write_keeps_old_file(tmp_path):
    path = tmp_path / "train.csv"
    write_manifest_atomic(_rows(2), path, FIELDS)
    before = path.read_bytes()

    def rows_then_crash():
        yield from _rows(5)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_manifest_atomic(rows_then_crash(), path, FIELDS)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_failure_at_fsync_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "train.csv"
    write_manifest_atomic(_rows(1), path, FIELDS)
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="I/O error"):
        write_manifest_atomic(_rows(3), path, FIELDS)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_atomic_open_only_publishes_complete_files(tmp_path):
    path = tmp_path / "labels.json"
    with pytest.raises(ValueError), atomic_open(path) as out:
        out.write("{half")
        assert not path.exists()  # nothing visible while writing
        raise ValueError("stop")
    assert not path.exists() and _leftovers(tmp_path) == []


def test_bad_rows_are_refused_and_old_file_kept(tmp_path):
    path = tmp_path / "m.csv"
    write_manifest_atomic(_rows(1), path, FIELDS)
    before = path.read_bytes()
    with pytest.raises(ManifestError, match="Duplicate ID 'utt0'"):
        write_manifest_atomic(_rows(2) + _rows(1), path, FIELDS)
    with pytest.raises(ManifestError, match="speaker"):
        write_manifest_atomic([{**_rows(1)[0], "speaker": "s"}], path, FIELDS)
    with pytest.raises(ManifestError, match="wav"):
        write_manifest_atomic(_rows(1), path, ["ID", "duration", "label"])
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_read_manifest_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_manifest(tmp_path / "nope.csv")
    no_wav = tmp_path / "no_wav.csv"
    no_wav.write_text("ID,duration,path\na,1.0,/a.wav\n")
    with pytest.raises(ManifestError, match="wav"):
        read_manifest(no_wav)
    bad_duration = tmp_path / "bad_duration.csv"
    bad_duration.write_text("ID,duration,wav\na,1.0,/a.wav\nb,long,/b.wav\n")
    with pytest.raises(ManifestError, match="line 3.*'long'"):
        read_manifest(bad_duration)


def test_manifests_exist(tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    assert not manifests_exist([])
    first.write_text("x")
    assert manifests_exist([first])
    assert not manifests_exist([first, second])
    second.write_text("x")
    assert manifests_exist([str(first), str(second)])


def test_validate_good_rows_get_measured_duration(audio_rows):
    good, summary = validate_audio_rows(audio_rows)
    assert len(good) == len(audio_rows)
    assert summary["total"] == summary["kept"] == len(audio_rows)
    for row in good:
        info = sf.info(row["wav"])
        assert row["duration"] == pytest.approx(info.frames / info.samplerate, abs=1e-6)
        assert row["label"] is not None
    assert "duration" not in audio_rows[0]  # input rows are not modified


def _broken_rows(tmp_path, audio_rows):
    """The real rows plus one row for each kind of problem."""
    zero = tmp_path / "zero.wav"
    zero.touch()
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes(Path(audio_rows[0]["wav"]).read_bytes()[:30])
    # A WAV copy of a real clip, cut after 1000 bytes: its header still declares it all.
    samples, rate = sf.read(audio_rows[1]["wav"], dtype="float32")
    cut = tmp_path / "cut.wav"
    sf.write(cut, samples, rate, subtype="PCM_16")
    cut.write_bytes(cut.read_bytes()[:1000])
    return audio_rows + [
        {"ID": "gone", "wav": str(tmp_path / "gone.wav")},
        {"ID": "zero", "wav": str(zero)},
        {"ID": "truncated", "wav": str(truncated)},
        {"ID": "cut", "wav": str(cut)},
        {"ID": "negative", "wav": audio_rows[0]["wav"], "duration": "-1"},
        {"ID": "nan_duration", "wav": audio_rows[0]["wav"], "duration": "nan"},
    ]


def test_validate_skip_counts_each_problem(tmp_path, audio_rows, caplog):
    rows = _broken_rows(tmp_path, audio_rows)
    good, summary = validate_audio_rows(rows, on_bad_audio="skip")
    assert [row["ID"] for row in good] == [row["ID"] for row in audio_rows]
    assert summary == {
        "total": len(rows),
        "kept": len(audio_rows),
        "missing": 1,
        "unreadable": 1,
        "truncated": 1,
        "empty": 1,
        "non_finite": 0,
        "bad_duration": 2,
    }
    assert "gone.wav" in caplog.text and "truncated.flac" in caplog.text
    assert "Skipping bad audio (truncated)" in caplog.text and "cut.wav" in caplog.text


@pytest.mark.parametrize(
    "bad_id, error, pattern",
    [
        ("gone", AudioFileMissingError, r"Row 'gone'.*not found.*gone.wav"),
        ("zero", EmptyAudioError, r"Row 'zero'.*0 bytes.*zero.wav"),
        ("truncated", AudioDecodeError, r"Row 'truncated'.*truncated.flac"),
        (
            "cut",
            TruncatedAudioError,
            r"Row 'cut'.*cut.wav is truncated: its header declares \d+ frames .* holds only 478 ",
        ),
        ("negative", ManifestError, r"Row 'negative'.*not positive"),
    ],
)
def test_validate_error_names_row_and_file(tmp_path, audio_rows, bad_id, error, pattern):
    rows = [row for row in _broken_rows(tmp_path, audio_rows) if row["ID"] == bad_id]
    with pytest.raises(error, match=pattern):
        validate_audio_rows(audio_rows + rows, on_bad_audio="error")


def test_validate_decode_samples_catches_nan(tmp_path, audio_rows):
    nan_wav = tmp_path / "nan.wav"
    sf.write(nan_wav, np.full(1600, np.nan, dtype="float32"), 16000, subtype="FLOAT")
    rows = audio_rows + [{"ID": "nan", "wav": str(nan_wav)}]
    # The header is fine, so a header-only check keeps the file ...
    assert validate_audio_rows(rows)[1]["kept"] == len(rows)
    # ... and a full decode refuses it.
    good, summary = validate_audio_rows(rows, on_bad_audio="skip", decode_samples=True)
    assert summary["non_finite"] == 1 and len(good) == len(audio_rows)
    with pytest.raises(ValueError, match="Row 'nan'.*nan.wav.*NaN"):
        validate_audio_rows(rows, decode_samples=True)


def test_validate_rejects_unknown_policy(audio_rows):
    with pytest.raises(ValueError, match="on_bad_audio"):
        validate_audio_rows(audio_rows, on_bad_audio="ignore")


def test_unique_ids_from_paths():
    assert unique_ids(["spk1/chap/utt1.flac", "spk2/utt1.flac"]) == ["spk1_chap_utt1", "spk2_utt1"]
    assert unique_ids(["a b,c/d.e.wav"]) == ["a_b_c_d.e"]
    ids = unique_ids(["x/y.wav", "x_y.wav", "x/y.flac", "other.wav"])
    assert len(set(ids)) == 4 and ids[3] == "other"
    assert all(i.startswith("x_y_") for i in ids[:3])


def test_unique_ids_refuses_repeated_paths():
    with pytest.raises(ManifestError, match="a"):
        unique_ids(["a.wav", "a.wav"])


def _random_paths(rng):
    """A few distinct relative paths built from characters that tend to collide."""

    def component():
        text = "".join(rng.choice("ab_-. ") for _ in range(rng.randint(1, 4)))
        return "x" if text in {".", ".."} else text

    parts = [[component() for _ in range(rng.randint(1, 3))] for _ in range(rng.randint(1, 8))]
    return list(dict.fromkeys(str(PurePosixPath(*p)) for p in parts))


# Seeded random cases rather than hypothesis: hypothesis scans sys.modules for constants,
# which trips over speechbrain's lazy modules (k2) once speechbrain has been imported.
@pytest.mark.parametrize("seed", range(5))
def test_unique_ids_unique_and_order_independent(seed):
    rng = random.Random(seed)
    for _ in range(40):
        paths = _random_paths(rng)
        ids = unique_ids(paths)
        assert len(set(ids)) == len(paths)
        assert all("/" not in i and "," not in i and i for i in ids)
        shuffled = rng.sample(paths, len(paths))
        assert dict(zip(shuffled, unique_ids(shuffled))) == dict(zip(paths, ids))
