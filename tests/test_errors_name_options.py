"""Every error a recipe option can cause names the option (``--name``) and a value that works.

The cases users hit with hparams/pretrain_frame_tiny.yaml on a LibriSpeech-style tree,
then smaller ones of the fine-tuning recipes. The library functions are called as the
recipes call them, on a small LibriSpeech tree of real speech (FSDD digits).
"""

import csv
import shutil
from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from ssast_sb.brains.common import resolved_yaml
from ssast_sb.brains.pretrain import DATA_KEYS
from ssast_sb.checkpoints import task_encoder
from ssast_sb.data.esc50 import prepare_esc50
from ssast_sb.data.fewshot import draw_shots
from ssast_sb.data.librispeech import prepare_librispeech
from ssast_sb.data.options import MissingDataError
from ssast_sb.data.pretraining import prepare_pretraining_data
from ssast_sb.data.speech_commands import prepare_speech_commands
from ssast_sb.encoder import EncoderConfig, SSASTEncoder
from ssast_sb.errors import OptionError, UserError
from ssast_sb.models import (
    SSASTClassifier,
    SSASTPretrainModel,
    check_mask_count,
    task_classifier,
)
from ssast_sb.sampler import IntervalSampler, classification_loader_options

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN_YAML = ROOT / "hparams" / "pretrain_frame_tiny.yaml"


@pytest.fixture
def libri_root(tmp_path, shared_dir):
    """``<tmp>/corpora/LibriSpeech/train-clean-100/19/198/19-198-000<n>.flac`` (real speech)."""
    audio = shared_dir / "data" / "kws_sid_fsdd"
    with open(audio / "manifest.csv", newline="") as stream:
        clips = [audio / row["path"] for row in list(csv.DictReader(stream))[:3]]
    chapter = tmp_path / "corpora" / "LibriSpeech" / "train-clean-100" / "19" / "198"
    chapter.mkdir(parents=True)
    for index, clip in enumerate(clips):
        shutil.copy(clip, chapter / f"19-198-{index:04d}.flac")
    (chapter / "19-198.trans.txt").write_text("".join(f"19-198-{i:04d} ONE\n" for i in range(3)))
    return tmp_path / "corpora"


def _add_split(root, split):
    """The clips of train-clean-100 as another split, of speaker 84 (IDs stay unique)."""
    chapter = root / "LibriSpeech" / split / "84" / "121123"
    chapter.mkdir(parents=True)
    for clip in sorted((root / "LibriSpeech" / "train-clean-100").glob("*/*/*.flac")):
        shutil.copy(clip, chapter / clip.name.replace("19-198", "84-121123"))


def _pretraining_options(**options):
    """The data options of hparams/pretrain_frame_tiny.yaml, as the recipe passes them."""
    values = dict(
        audioset_folder=None,
        audioset_train_segments=["unbalanced_train", "balanced_train"],
        audioset_valid_segments=["eval"],
        librispeech_folder=None,
        librispeech_train_splits=["train-clean-100", "train-clean-360", "train-other-500"],
        librispeech_valid_splits=[],
        extra_sources=[],
        valid_source=None,
        seed=0,
        on_bad_audio="error",
    )
    values.update(options)
    return values


def test_a_missing_librispeech_split_names_the_splits_option(libri_root, tmp_path):
    # Case 1: the YAML's three training splits on a tree that has train-clean-100 only.
    _add_split(libri_root, "dev-clean")
    save = tmp_path / "save"
    options = _pretraining_options(
        librispeech_folder=str(libri_root), librispeech_valid_splits=["dev-clean"]
    )
    with pytest.raises(MissingDataError) as caught:
        prepare_pretraining_data(save, **options)
    message = str(caught.value)
    assert '--librispeech_train_splits "[train-clean-100]" to use only the splits you have' in (
        message
    )
    assert "train-clean-360, train-other-500" in message
    assert "the splits there are train-clean-100, dev-clean" in message
    assert "openslr.org/12" in message  # downloading stays the other way out
    assert isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, UserError)
    assert not save.exists()  # checked before any preparation

    # The library function on its own says the same.
    with pytest.raises(FileNotFoundError, match='--librispeech_train_splits "\\[train-clean-100'):
        prepare_librispeech(libri_root, save, splits=["train-clean-100", "train-clean-360"])

    # A missing validation split names the validation option.
    options["librispeech_train_splits"] = ["train-clean-100"]
    options["librispeech_valid_splits"] = ["dev-other"]
    with pytest.raises(MissingDataError, match='--librispeech_valid_splits "\\[dev-clean\\]"'):
        prepare_pretraining_data(save, **options)


def test_no_validation_source_names_the_options_that_give_one(libri_root, tmp_path):
    # Case 2: LibriSpeech only, without AudioSet's eval segments, and no validation split.
    options = _pretraining_options(
        librispeech_folder=str(libri_root), librispeech_train_splits=["train-clean-100"]
    )
    with pytest.raises(OptionError) as caught:
        prepare_pretraining_data(tmp_path / "save", **options)
    message = str(caught.value)
    assert "needs a validation source" in message
    assert "--librispeech_valid_splits" in message and "--valid_source" in message
    assert "dev-clean" in message  # a split to pass, and where it comes from
    assert not (tmp_path / "save").exists()

    _add_split(libri_root, "dev-clean")
    with pytest.raises(OptionError, match=r'--librispeech_valid_splits "\[dev-clean\]" \(found'):
        prepare_pretraining_data(tmp_path / "save", **options)

    # With the option it names, the preparation runs.
    options["librispeech_valid_splits"] = ["dev-clean"]
    paths = prepare_pretraining_data(tmp_path / "save", **options)
    assert sorted(paths) == ["train", "valid"]


def test_too_many_masked_patches_fail_when_the_model_is_built(tmp_path):
    # Case 3: --target_frames 128 with the YAML's 400 masked of 128x2 frames (64 patches).
    torch.set_num_threads(1)
    overrides = {
        "target_frames": 128,
        "audioset_folder": None,
        "librispeech_folder": None,
        "output_folder": str(tmp_path / "run"),
    }
    with pytest.raises(OptionError) as caught:
        load_hyperpyyaml(PRETRAIN_YAML.read_text(), overrides)
    message = str(caught.value)
    assert message.startswith("--num_masked 400 is more than the input can mask")
    assert "--num_masked 64 --valid_num_masked 64 (or fewer)" in message
    assert "--target_frames 128 gives 64 patches" in message
    assert "--target_frames 800 or more to mask 400" in message

    # What the pretraining Brain checks for the evaluation count.
    config = EncoderConfig.from_names("tiny", "patch", depth=1, input_tdim=128)
    model = SSASTPretrainModel(SSASTEncoder(config), num_masked=32)  # cluster: 62 of 64
    check_mask_count(62, model, "--valid_num_masked")
    with pytest.raises(OptionError) as caught:
        check_mask_count(400, model, "--valid_num_masked")
    message = str(caught.value)
    assert "Pass --valid_num_masked 62 (or fewer)" in message
    assert "--num_masked" not in message and "--target_frames 816 or more" in message


def test_unset_dataset_folders_say_to_pass_null(libri_root, tmp_path):
    # Case 4: --audioset_folder not given; the recipes resolve an unset !PLACEHOLDER to "".
    values = resolved_yaml(str(PRETRAIN_YAML), {"librispeech_folder": str(libri_root)})
    options = {key: values[key] for key in DATA_KEYS}
    assert options["audioset_folder"] == ""
    with pytest.raises(OptionError) as caught:
        prepare_pretraining_data(tmp_path / "save", **options)
    message = str(caught.value)
    assert "--audioset_folder is not set" in message
    assert "--audioset_folder null to pretrain without AudioSet" in message

    options = _pretraining_options(audioset_folder=None, librispeech_folder="")
    with pytest.raises(OptionError, match="--librispeech_folder null to pretrain without Libri"):
        prepare_pretraining_data(tmp_path / "save", **options)

    # A folder that is not there (here "None", the Python spelling) says the same.
    options = _pretraining_options(audioset_folder="None", librispeech_folder=str(libri_root))
    with pytest.raises(MissingDataError, match="--audioset_folder None does not exist") as caught:
        prepare_pretraining_data(tmp_path / "save", **options)
    assert "--audioset_folder null to pretrain without AudioSet" in str(caught.value)


def test_pretraining_source_options_are_checked_first(libri_root, tmp_path):
    options = _pretraining_options(
        librispeech_folder=str(libri_root),
        librispeech_train_splits="train-clean-100",  # one string: a list of one
        valid_source=str(tmp_path / "absent"),
    )
    with pytest.raises(MissingDataError, match="--valid_source: .*absent does not exist"):
        prepare_pretraining_data(tmp_path / "save", **options)
    (tmp_path / "empty").mkdir()
    options = _pretraining_options(extra_sources=[str(tmp_path / "empty")], valid_source=libri_root)
    with pytest.raises(MissingDataError, match="--extra_sources: No audio files"):
        prepare_pretraining_data(tmp_path / "save", **options)
    options = _pretraining_options(extra_sources=[str(libri_root)], valid_source=str(libri_root))
    options["audioset_folder"] = str(libri_root)
    options["audioset_valid_segments"] = ["evaluation"]
    with pytest.raises(OptionError, match=r"--audioset_valid_segments \"\[evaluation\]\""):
        prepare_pretraining_data(tmp_path / "save", **options)
    with pytest.raises(OptionError, match="needs a training source.*--extra_sources"):
        prepare_pretraining_data(tmp_path / "save", **_pretraining_options(valid_source=tmp_path))


def test_finetuning_options_are_named(tmp_path):
    encoder = SSASTEncoder(EncoderConfig(embed_dim=8, depth=1, num_heads=2, input_tdim=32))
    with pytest.raises(OptionError, match="--pooling max is not a pooling"):
        SSASTClassifier(encoder, 3, pooling="max")
    with pytest.raises(OptionError, match="--head layer_weighted"):
        task_classifier(encoder, 3, head="mean", freeze_upstream=True)
    with pytest.raises(OptionError, match="--model_size huge"):
        EncoderConfig.from_names("huge", "patch")
    with pytest.raises(OptionError, match="--target_frames 1 is shorter .* --target_frames 2"):
        EncoderConfig.from_names("tiny", "frame", input_tdim=1)
    with pytest.raises(FileNotFoundError, match="--pretrained_path null to train from scratch"):
        task_encoder(str(tmp_path / "missing.pth"), target_frames=128)
    hparams = {"dataloader_opts": {}, "dynamic_batching": True, "balanced_sampling": True}
    with pytest.raises(OptionError, match="--balanced_sampling False or --dynamic_batching False"):
        classification_loader_options(hparams, None, train=True)
    with pytest.raises(OptionError, match="--steps_per_epoch"):
        IntervalSampler(10, 0)


def test_dataset_options_are_named(tmp_path):
    with pytest.raises(OptionError, match=r'--folds \[6\].* --folds "\[1, 2, 3, 4, 5\]"'):
        prepare_esc50(tmp_path, tmp_path / "out", folds=[6])
    with pytest.raises(FileNotFoundError, match="--download True") as caught:
        prepare_esc50(tmp_path / "nothing", tmp_path / "out", folds=[1])
    assert "--data_folder" in str(caught.value)
    with pytest.raises(OptionError, match="--version 2 with --task v2_35"):
        prepare_speech_commands(tmp_path, tmp_path / "out", version=1, task="v2_35")
    with pytest.raises(FileNotFoundError, match="--download True"):
        prepare_speech_commands(tmp_path / "nothing", tmp_path / "out", version=2)
    rows = [{"label": label} for label in "aab"]
    with pytest.raises(OptionError, match="--shots 2: .*Pass --shots 1 or fewer"):
        draw_shots(rows, 2, seed=0)


# ---------------------------------------------------------------- as a user runs them


def _pretrain_recipe(*options):
    """``recipes/pretrain/train.py`` with ``pretrain_frame_tiny.yaml``: exit status and stderr."""
    import os
    import subprocess
    import sys

    command = [
        sys.executable,
        str(ROOT / "recipes" / "pretrain" / "train.py"),
        str(PRETRAIN_YAML),
        "--noprogressbar",
        *[str(option) for option in options],
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output, output[-3000:]
    return result.stderr.strip().splitlines()[-1]


def test_the_pretraining_recipe_names_the_option_of_each_error(libri_root, tmp_path):
    out = ["--output_folder", tmp_path / "out", "--num_workers", 0]
    # No --audioset_folder: the YAML's comment says null leaves AudioSet out.
    message = _pretrain_recipe(*out, "--librispeech_folder", libri_root)
    assert "--audioset_folder (the AudioSet folder, or null to pretrain without AudioSet)" in (
        message
    )
    libri_only = [*out, "--audioset_folder", "null", "--librispeech_folder", libri_root]
    # No validation source at all.
    message = _pretrain_recipe(*libri_only)
    assert "--librispeech_valid_splits" in message and "--valid_source" in message
    # train-clean-360 and train-other-500 (the YAML's default) are not on disk.
    libri_only += ["--valid_source", libri_root]
    message = _pretrain_recipe(*libri_only)
    assert "--librispeech_train_splits" in message and "train-clean-360" in message
    assert '--librispeech_train_splits "[train-clean-100]"' in message
    splits = ["--librispeech_train_splits", "[train-clean-100]"]
    # 400 masked patches of a 128-frame input (64 frame patches): before any data is read.
    message = _pretrain_recipe(*libri_only, *splits, "--target_frames", 128)
    assert "--num_masked 400 is more than the input can mask" in message
    assert "Pass --num_masked 64 --valid_num_masked 64 (or fewer)" in message
    assert "--target_frames 800 or more" in message
    assert not list((tmp_path / "out").glob("save/*.csv"))  # nothing was prepared
