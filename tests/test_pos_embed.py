"""Position-embedding adaptation against every fine-tuning configuration of the dumps."""

import pytest
import torch

from ssast_sb.checkpoints import load_original
from ssast_sb.pos_embed import adapt_pos_embed_original, patch_grid, resize_pos_embed


def test_original_adaptation_matches_every_dumped_config(model_dump):
    state = load_original(model_dump["pretrain_state_dict"])
    fshape, tshape = model_dump["meta"]["cfg"]["fshape"], model_dump["meta"]["cfg"]["tshape"]
    source_grid = patch_grid(128, 1024, fshape, tshape, fshape, tshape)
    for name, entry in model_dump["ft"].items():
        cfg = entry["cfg"]
        target_grid = patch_grid(
            128, cfg["input_tdim"], fshape, tshape, cfg["fstride"], cfg["tstride"]
        )
        adapted = adapt_pos_embed_original(state["v.pos_embed"], source_grid, target_grid)
        expected = entry["state_dict_delta"].get("module.v.pos_embed", state["v.pos_embed"])
        assert torch.equal(adapted, expected), name


def test_official_shapes_from_the_spec():
    pos = torch.randn(1, 514, 4)
    assert adapt_pos_embed_original(pos, (8, 64), (12, 9)).shape == (1, 110, 4)
    frame = torch.randn(1, 514, 4)
    out = adapt_pos_embed_original(frame, (1, 512), (1, 127))
    # tstride 1: a centre crop [193:320] of the 2-frame-spaced positions.
    assert torch.equal(out[0, 2:], frame[0, 2 + 193 : 2 + 320])
    assert torch.equal(out[0, :2], frame[0, :2])


def test_original_frequency_crop_quirk_is_reported():
    # The original slices the frequency axis with t_dim; a 4x10 target cannot be made.
    with pytest.raises(ValueError, match="resize_pos_embed"):
        adapt_pos_embed_original(torch.randn(1, 514, 4), (8, 64), (4, 10))


def test_general_resize_any_grid():
    pos = torch.randn(1, 2 + 8 * 64, 4)
    out = resize_pos_embed(pos, (8, 64), (4, 10))
    assert out.shape == (1, 42, 4) and torch.equal(out[:, :2], pos[:, :2])
    # A ramp along time stays an increasing ramp on the new grid.
    ramp = torch.arange(64.0).repeat(8).view(1, 512, 1).expand(1, 512, 4)
    ramp = torch.cat((torch.zeros(1, 2, 4), ramp), dim=1)
    stretched = resize_pos_embed(ramp, (8, 64), (3, 100))[0, 2:, 0].view(3, 100)
    assert (stretched.diff(dim=1) >= 0).all() and torch.allclose(stretched[0], stretched[2])
    const = torch.ones(1, 2 + 8 * 64, 4)
    assert torch.allclose(resize_pos_embed(const, (8, 64), (5, 33)), torch.ones(1, 2 + 165, 4))
    with pytest.raises(ValueError, match="does not match the grid"):
        resize_pos_embed(pos, (8, 32), (4, 4))


def test_patch_grid_rejects_inputs_smaller_than_a_patch():
    with pytest.raises(ValueError, match="smaller than one"):
        patch_grid(128, 1, 16, 16, 16, 16)
