"""No class list whose order can differ from the model's label encoder is written or left.

The label encoder saved with the model is the one class order. AudioSet's label map is kept
because the recipe builds its encoder from it; these tests check that the two agree.
"""

import csv
import importlib.util
import json
import logging
import shutil
from pathlib import Path

import pytest
from speechbrain.dataio.encoder import CategoricalEncoder

from ssast_sb.data.audioset import prepare_audioset
from ssast_sb.data.manifest import ManifestError
from ssast_sb.data.speech_commands import prepare_speech_commands
from ssast_sb.dataio import fit_label_encoder, manifest_dataset

ROOT = Path(__file__).resolve().parents[1]
# Rows in a file order that is not the index order, as a hand-edited class list may be.
CLASS_LABELS = 'index,mid,display_name\n2,/m/c,"C"\n0,/m/b,"B"\n1,/m/a,"A"\n'


@pytest.fixture(scope="module")
def clip(shared_dir):
    folder = shared_dir / "data" / "kws_sid_fsdd"
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as stream:
        return folder / next(csv.DictReader(stream))["path"]


def _audioset(root, clip, class_labels):
    (root / "audio").mkdir(parents=True)
    (root / "class_labels_indices.csv").write_text(class_labels)
    (root / "eval_segments.csv").write_text('abcdefghijk, 30.000, 40.000, "/m/a,/m/c"\n')
    shutil.copy(clip, root / "audio" / "abcdefghijk_30.flac")
    return root


def _audioset_recipe():
    spec = importlib.util.spec_from_file_location(
        "audioset_recipe", ROOT / "recipes" / "audioset" / "train.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_audioset_label_map_is_the_recipe_encoder_order(tmp_path, clip):
    prepare_audioset(_audioset(tmp_path / "as", clip, CLASS_LABELS), tmp_path / "m", ["eval"])
    labels_json = tmp_path / "m" / "audioset_labels.json"
    mid_to_index = json.loads(labels_json.read_text())["mid_to_index"]
    assert mid_to_index == {"/m/c": 2, "/m/b": 0, "/m/a": 1}
    _audioset_recipe().write_label_encoder(labels_json, tmp_path / "label_encoder.txt")
    encoder = CategoricalEncoder()
    encoder.load(tmp_path / "label_encoder.txt")
    assert encoder.lab2ind == mid_to_index


@pytest.mark.parametrize(
    "rows",
    ['0,/m/a,"A"\n2,/m/b,"B"\n', '0,/m/a,"A"\n0,/m/b,"B"\n', '1,/m/a,"A"\n1,/m/a,"A2"\n'],
)
def test_audioset_class_indices_must_be_0_to_n_minus_1(tmp_path, clip, rows):
    root = _audioset(tmp_path / "as", clip, "index,mid,display_name\n" + rows)
    with pytest.raises(ManifestError, match=r"class_labels_indices.csv: the class indices must be"):
        prepare_audioset(root, tmp_path / "m", ["eval"])


def test_stale_class_list_is_removed_and_encoder_is_sorted(tmp_path, clip, caplog):
    release = tmp_path / "speech_commands_v0.02"
    for word in ("yes", "no"):
        for take in range(3):
            (release / word).mkdir(parents=True, exist_ok=True)
            shutil.copy(clip, release / word / f"s_nohash_{take}.wav")
    (release / "validation_list.txt").write_text("yes/s_nohash_1.wav\nno/s_nohash_1.wav\n")
    (release / "testing_list.txt").write_text("yes/s_nohash_2.wav\nno/s_nohash_2.wav\n")
    save = tmp_path / "out"
    save.mkdir()
    stale = save / "speech_commands_v2_35_labels.json"
    stale.write_text('["yes", "no"]')  # an earlier version's list, in another order
    with caplog.at_level(logging.WARNING):
        prepare_speech_commands(tmp_path, save)
    assert not stale.exists()
    assert f"Removed {stale}, written by an earlier version: its class order" in caplog.text
    assert [path.suffix for path in sorted(save.iterdir())] == [".json", ".csv", ".csv", ".csv"]
    dataset = manifest_dataset(save / "speech_commands_v2_35_train.csv", [], ["id"])
    assert fit_label_encoder(dataset).lab2ind == {"no": 0, "yes": 1}
