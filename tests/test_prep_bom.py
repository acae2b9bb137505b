"""CSV and list files saved by spreadsheet programs start with a UTF-8 byte-order mark.

Each reader of such a file takes the first column's name (or the first line) as it is
meant, not with an invisible ``\\ufeff`` glued to it. The audio is a copy of real clips.
"""

import csv
import shutil

import pytest

from ssast_sb.data.audioset import prepare_audioset
from ssast_sb.data.esc50 import prepare_esc50
from ssast_sb.data.generic import prepare_generic
from ssast_sb.data.manifest import read_manifest
from ssast_sb.data.speech_commands import prepare_speech_commands
from ssast_sb.data.voxceleb import read_iden_split
from ssast_sb.dataio import manifest_dataset

BOM = "\ufeff"


@pytest.fixture(scope="module")
def clips(shared_dir):
    folder = shared_dir / "data" / "kws_sid_fsdd"
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as stream:
        return [folder / row["path"] for row in list(csv.DictReader(stream))[:6]]


def _write_with_bom(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BOM + text, encoding="utf-8")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    return path


def test_manifest_with_bom_reads_and_loads(tmp_path, clips):
    manifest = _write_with_bom(tmp_path / "m.csv", f"ID,duration,wav\nutt1,0.5,{clips[0]}\n")
    assert read_manifest(manifest)[0]["ID"] == "utt1"
    dataset = manifest_dataset(manifest, [], ["id", "wav"])
    assert dataset[0] == {"id": "utt1", "wav": str(clips[0])}


def test_generic_csv_source_with_bom(tmp_path, clips):
    shutil.copy(clips[0], tmp_path / "a.flac")
    source = _write_with_bom(tmp_path / "list.csv", "wav,label\na.flac,zero\n")
    assert prepare_generic(source, tmp_path / "out", name="own")["kept"] == 1
    assert read_manifest(tmp_path / "out" / "own.csv")[0]["label"] == "zero"


def test_esc50_meta_with_bom(tmp_path, clips):
    release = tmp_path / "ESC-50-master"
    (release / "audio").mkdir(parents=True)
    shutil.copy(clips[0], release / "audio" / "1-1-A-0.wav")  # FLAC data: soundfile reads it
    _write_with_bom(
        release / "meta" / "esc50.csv",
        "filename,fold,target,category,esc10,src_file,take\n1-1-A-0.wav,1,0,dog,True,1,A\n",
    )
    assert prepare_esc50(tmp_path, tmp_path / "out")["fold1"]["kept"] == 1


def test_audioset_csvs_with_bom(tmp_path, clips):
    _write_with_bom(tmp_path / "class_labels_indices.csv", 'index,mid,display_name\n0,/m/a,"A"\n')
    _write_with_bom(tmp_path / "eval_segments.csv", 'abcdefghijk, 30.000, 40.000, "/m/a"\n')
    (tmp_path / "audio").mkdir()
    shutil.copy(clips[0], tmp_path / "audio" / "abcdefghijk_30.flac")
    assert prepare_audioset(tmp_path, tmp_path / "out", segments=["eval"])["eval"]["kept"] == 1


def test_split_lists_with_bom(tmp_path, clips):
    release = tmp_path / "speech_commands_v0.02"
    for take, clip in enumerate(clips[:3]):
        (release / "yes").mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, release / "yes" / f"s_nohash_{take}.wav")
    _write_with_bom(release / "validation_list.txt", "yes/s_nohash_1.wav\n")
    _write_with_bom(release / "testing_list.txt", "yes/s_nohash_2.wav\n")
    summary = prepare_speech_commands(tmp_path, tmp_path / "out")
    assert [summary[split]["kept"] for split in ("train", "valid", "test")] == [1, 1, 1]
    iden_split = _write_with_bom(tmp_path / "iden_split.txt", "1 id10001/video/00001.wav\n")
    assert read_iden_split(iden_split) == [("train", "id10001/video/00001.wav")]
