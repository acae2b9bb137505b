"""Original checkpoints: strict loading, round trip, SpeechBrain loading."""

import pytest
import torch
from speechbrain.utils.parameter_transfer import Pretrainer

from ssast_sb.checkpoints import (
    CheckpointError,
    classifier_from_original_finetuned,
    classifier_from_original_pretrained,
    export_original,
    load_original,
    pretrain_model_from_original,
    save_speechbrain_checkpoint,
)
from ssast_sb.encoder import EncoderConfig, SSASTEncoder
from ssast_sb.models import SSASTPretrainModel


def _same(a, b):
    return list(a) == list(b) and all(
        torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a
    )


def test_round_trip_original_ours_original_is_identical(model_dump, tmp_path):
    original = model_dump["pretrain_state_dict"]
    path = tmp_path / "SSAST-Tiny.pth"
    torch.save(original, path)
    model, leftovers = pretrain_model_from_original(str(path), model_size="tiny")
    assert _same(export_original(model, leftovers), original)
    assert len(original) == 166 and not leftovers.keys() - {
        "v.head.weight",
        "v.head.bias",
        "v.head_dist.weight",
        "v.head_dist.bias",
    }


def test_checkpoint_without_module_prefix_loads(model_dump):
    bare = {k.removeprefix("module."): v for k, v in model_dump["pretrain_state_dict"].items()}
    model, _ = pretrain_model_from_original(bare)
    exported = export_original(model, prefix="")
    kept = [k for k in bare if not k.startswith(("v.head.", "v.head_dist."))]
    assert all(torch.equal(exported[k], bare[k]) for k in kept)
    # Without the leftovers, timm's unused heads are exported as zeros of the right shape.
    assert exported["v.head.weight"].shape == bare["v.head.weight"].shape
    assert torch.equal(model.encoder.pos_embed, bare["v.pos_embed"])


def test_missing_and_unexpected_keys_are_listed(model_dump):
    state = dict(model_dump["pretrain_state_dict"])
    del state["module.v.blocks.3.attn.qkv.weight"]
    with pytest.raises(CheckpointError, match=r"missing \['encoder.blocks.3.attn.qkv.weight'\]"):
        pretrain_model_from_original(state)
    state = dict(model_dump["pretrain_state_dict"])
    state["module.v.extra_token"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="unexpected"):
        pretrain_model_from_original(state)
    state = dict(model_dump["pretrain_state_dict"])
    state["module.decoder.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="module|decoder.weight"):
        pretrain_model_from_original(state)


def test_finetuning_checkpoint_round_trip(model_dump):
    pretrain = model_dump["pretrain_state_dict"]
    for name, entry in model_dump["ft"].items():
        cfg = entry["cfg"]
        state = {k: entry["state_dict_delta"].get(k, pretrain.get(k)) for k in entry["ft_keys"]}
        model, leftovers = classifier_from_original_finetuned(
            state, cfg["input_tdim"], cfg["fstride"], cfg["tstride"]
        )
        assert _same(export_original(model, leftovers), state), name


def test_pretraining_checkpoint_is_refused_as_finetuned_and_vice_versa(model_dump):
    entry = next(iter(model_dump["ft"].values()))
    state = {
        k: entry["state_dict_delta"].get(k, model_dump["pretrain_state_dict"].get(k))
        for k in entry["ft_keys"]
    }
    with pytest.raises(CheckpointError, match="not a pretraining checkpoint"):
        pretrain_model_from_original(state)


def test_speechbrain_pretrainer_loads_every_key(model_dump, tmp_path):
    model, _ = pretrain_model_from_original(model_dump["pretrain_state_dict"])
    save_speechbrain_checkpoint(model, tmp_path / "ssast.ckpt")
    fresh = SSASTPretrainModel(SSASTEncoder(model.encoder.config))
    saved = torch.load(tmp_path / "ssast.ckpt", weights_only=True)
    assert set(saved) == set(
        fresh.state_dict()
    )  # Pretrainer is non-strict: check no key is missing
    pretrainer = Pretrainer(
        collect_in=tmp_path / "collect",
        loadables={"ssast": fresh},
        paths={"ssast": str(tmp_path / "ssast.ckpt")},
    )
    pretrainer.collect_files()
    pretrainer.load_collected()
    assert _same(fresh.state_dict(), model.state_dict())


def test_classifier_from_pretrained_adapts_grid(model_dump):
    cfg = model_dump["meta"]["cfg"]
    strides = (10, 10) if cfg["fshape"] == 16 else (128, 1)
    model = classifier_from_original_pretrained(
        model_dump["pretrain_state_dict"],
        num_classes=7,
        input_tdim=300,
        fstride=strides[0],
        tstride=strides[1],
        method="resize",
    )
    logits = model(torch.randn(2, 300, 128))
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()


def test_load_original_reads_files_with_weights_only(tmp_path):
    path = tmp_path / "x.pth"
    torch.save({"module.v.cls_token": torch.ones(1, 1, 4)}, path)
    assert list(load_original(str(path))) == ["v.cls_token"]
    torch.save({"module.v.cls_token": EncoderConfig()}, path)  # a pickled object, not tensors
    with pytest.raises(Exception, match="[Ww]eights only"):
        load_original(str(path))
