"""Padding-aware pretraining: masks on real audio only, padding out of the losses."""

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from ssast_sb.dataio import cropped_fbank_pipeline
from ssast_sb.encoder import EncoderConfig, SSASTEncoder
from ssast_sb.frontend import SSASTFbank
from ssast_sb.mae import MAEPretrainModel
from ssast_sb.masking import random_mask
from ssast_sb.models import SSASTPretrainModel
from ssast_sb.objectives import info_nce, patch_mse
from ssast_sb.padding import random_crop, restrict_mask, valid_patches


def _frame_encoder(tdim=32):
    torch.manual_seed(0)
    return SSASTEncoder(
        EncoderConfig(
            embed_dim=16,
            depth=2,
            num_heads=2,
            fshape=128,
            tshape=2,
            fstride=128,
            tstride=2,
            input_tdim=tdim,
        )
    )


def test_restricted_masks_only_touch_real_audio():
    generator = torch.Generator().manual_seed(0)
    num_frames = torch.tensor([64, 10, 33, 2])
    valid = valid_patches(num_frames, (1, 32), 2)
    assert valid.sum(1).tolist() == [32, 5, 17, 1]
    drawn = random_mask(4, 32, 16, generator)
    index, keep = restrict_mask(drawn, valid)
    assert torch.equal(keep, valid.gather(1, drawn))  # exactly the drawn real patches count
    for row in range(4):
        if not keep[row].any():
            continue  # no real patch drawn: nothing counts in the losses
        assert bool(valid[row, index[row]].all())  # nothing padded is masked
        kept = set(drawn[row][keep[row]].tolist())
        assert set(index[row].tolist()) == kept  # dropped slots re-point to a kept patch


def test_patch_grid_validity_spans_every_frequency_row():
    valid = valid_patches(torch.tensor([40]), (8, 4), 16)  # 16x16 patches, 3 of 4 columns real
    assert valid.view(8, 4)[:, :3].all() and not valid.view(8, 4)[:, 3].any()


@pytest.mark.parametrize("direction", ["code", "paper"])
def test_losses_with_keep_equal_the_losses_over_kept_patches(direction):
    generator = torch.Generator().manual_seed(1)
    pred, target = (
        torch.randn(1, 9, 6, generator=generator),
        torch.randn(1, 9, 6, generator=generator),
    )
    keep = torch.tensor([[True, False, True, True, False, True, True, False, True]])
    subset = keep[0].nonzero().flatten()
    nce, acc = info_nce(pred, target, direction, keep)
    ref_nce, ref_acc = info_nce(pred[:, subset], target[:, subset], direction)
    assert torch.allclose(nce, ref_nce, atol=1e-6) and torch.allclose(acc, ref_acc)
    assert torch.allclose(
        patch_mse(pred, target, keep), patch_mse(pred[:, subset], target[:, subset])
    )


def test_padded_candidates_cannot_win_or_lose_the_contrast():
    # A padded position whose prediction matches every target perfectly would wreck the
    # accuracy and the loss; flagged as not kept it is invisible.
    target = torch.eye(4).unsqueeze(0)
    pred = target.clone()
    pred[0, 3] = 100.0
    keep = torch.tensor([[True, True, True, False]])
    nce, acc = info_nce(pred, target, "code", keep)
    assert acc.item() == 1.0 and nce.item() < 1.0
    assert info_nce(pred, target, "code")[1].item() < 1.0


@pytest.mark.parametrize("single_pass", [False, True])
def test_full_length_clips_give_the_original_objective(single_pass):
    encoder = _frame_encoder()
    model = SSASTPretrainModel(encoder, num_masked=8, single_pass=single_pass)
    aware = SSASTPretrainModel(encoder, num_masked=8, single_pass=single_pass, padding_aware=True)
    aware.load_state_dict(model.state_dict())
    x = torch.randn(3, 32, 128)
    masks = model.draw_masks(3, torch.Generator().manual_seed(0))
    plain = model(x, *masks)
    padded = aware(x, *masks, num_frames=torch.full((3,), 32))
    for key in ("loss", "nce", "acc", "mse"):
        assert torch.allclose(plain[key], padded[key], atol=1e-6), key
    with pytest.raises(ValueError, match="num_frames"):
        aware(x, *masks)


def test_mae_padding_aware_ignores_padded_targets():
    model = MAEPretrainModel(
        _frame_encoder(),
        num_masked=8,
        decoder_dim=8,
        decoder_depth=1,
        decoder_heads=2,
        padding_aware=True,
    )
    x = torch.randn(2, 32, 128)
    masks = model.draw_masks(2, torch.Generator().manual_seed(0))
    full = model(x, *masks, num_frames=torch.tensor([32, 32]))
    plain = MAEPretrainModel(
        model.encoder, num_masked=8, decoder_dim=8, decoder_depth=1, decoder_heads=2
    )
    plain.load_state_dict(model.state_dict())
    assert torch.allclose(full["loss"], plain(x, *masks)["loss"], atol=1e-6)
    # Real audio only in the first 8 frames: the MSE only sees those patches' targets.
    y = x.clone()
    y[:, 8:] = 1e3  # huge padding values would dominate an unaware MSE
    short = model(y, *masks, num_frames=torch.tensor([8, 8]))
    assert torch.isfinite(short["loss"]) and short["mse"] < 1e3


def test_padding_aware_training_step_has_gradients_everywhere_needed():
    model = SSASTPretrainModel(_frame_encoder(), num_masked=8, padding_aware=True)
    x = torch.randn(4, 32, 128)
    masks = model.draw_masks(4, torch.Generator().manual_seed(0))
    out = model(x, *masks, num_frames=torch.tensor([32, 5, 12, 1]))
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert model.mpc_head[0].weight.grad.abs().sum() > 0
    assert model.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_random_crop_is_a_window_of_the_clip():
    clip = torch.arange(50.0).view(25, 2)
    generator = torch.Generator().manual_seed(3)
    starts = set()
    for _ in range(20):
        crop, frames = random_crop(clip, 10, generator)
        assert frames == 10 and torch.equal(crop, clip[int(crop[0, 0]) // 2 :][:10])
        starts.add(int(crop[0, 0]))
    assert len(starts) > 3


def test_cropped_pipeline_reports_real_frames(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, np.random.default_rng(0).standard_normal(4000).astype("float32") * 0.1, 16000)
    frontend = SSASTFbank(target_frames=64)
    pipeline = cropped_fbank_pipeline(frontend, random_crop=False)
    item = DynamicItemDataset(
        {"a": {"wav": str(path)}}, dynamic_items=[pipeline], output_keys=["fbank", "num_frames"]
    )[0]
    fbank, frames = item["fbank"], item["num_frames"]
    assert fbank.shape == (64, 128) and frames == 23
    padding_value = (0.0 - frontend.mean) / (2 * frontend.std)  # zeros before normalising
    assert torch.allclose(fbank[frames:], torch.full_like(fbank[frames:], padding_value))
