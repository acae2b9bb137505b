"""Encoder shapes, sizes, layers and pooling."""

import pytest
import torch

from ssast_sb.encoder import MODEL_SIZES, EncoderConfig, SSASTEncoder, pool_tokens
from ssast_sb.models import SSASTClassifier, SSASTPretrainModel, adapt_encoder


@pytest.mark.parametrize("size", sorted(MODEL_SIZES))
@pytest.mark.parametrize("shape", ["patch", "frame"])
def test_sizes_and_shapes_build(size, shape):
    config = EncoderConfig.from_names(size, shape, input_tdim=32, depth=1)
    encoder = SSASTEncoder(config)
    f_dim, t_dim = config.grid
    tokens = encoder(torch.randn(1, 32, 128))
    assert tokens.shape == (1, 2 + f_dim * t_dim, MODEL_SIZES[size]["embed_dim"])
    assert encoder.blocks[0].attn.num_heads == MODEL_SIZES[size]["num_heads"]


def test_parameter_count_matches_the_original_base_model():
    # docs/fidelity.md b.7: 88,763,346 numbers, minus timm's two unused 1000-class heads
    # and the two input-size scalars.
    model = SSASTPretrainModel(SSASTEncoder(EncoderConfig.from_names("base", "patch")))
    assert sum(p.numel() for p in model.parameters()) == 88_763_346 - 2 * (1000 * 768 + 1000) - 2


def test_explicit_depth_width_heads_and_strides():
    config = EncoderConfig(
        embed_dim=24, depth=3, num_heads=4, fstride=10, tstride=10, input_tdim=100
    )
    encoder = SSASTEncoder(config)
    assert config.grid == (12, 9) and len(encoder.blocks) == 3
    tokens, layers = encoder(torch.randn(2, 100, 128), return_layers=True)
    assert tokens.shape == (2, 110, 24) and len(layers) == 3
    # The last layer's output, normalised, is the final output.
    assert torch.allclose(encoder.norm(layers[-1]), tokens)
    with pytest.raises(ValueError, match="divisible"):
        SSASTEncoder(EncoderConfig(embed_dim=10, num_heads=3))


def test_wrong_input_size_is_a_clear_error():
    encoder = SSASTEncoder(EncoderConfig(embed_dim=8, depth=1, num_heads=2, input_tdim=64))
    with pytest.raises(ValueError, match="built for 64 frames x 128 mel bins, got 50 x 128"):
        encoder(torch.randn(1, 50, 128))
    with pytest.raises(ValueError, match="batch, frames, mel_bins"):
        encoder(torch.randn(50, 128))


def test_masked_positions_use_the_mask_token():
    encoder = SSASTEncoder(EncoderConfig(embed_dim=8, depth=1, num_heads=2, input_tdim=64))
    x = torch.randn(1, 64, 128)
    mask_embed = torch.randn(1, 1, 8)
    index = torch.tensor([[0, 5]])
    masked = encoder(x, index, mask_embed)
    # Changing the input inside a masked patch does not change anything.
    y = x.clone()
    y[0, :16, :16] += 5.0  # patch 0 = first 16 frames of the lowest 16 mel bins
    assert torch.allclose(encoder(y, index, mask_embed), masked)
    assert not torch.allclose(encoder(y), encoder(x))


def test_pooling_modes():
    tokens = torch.randn(3, 10, 4)
    assert torch.allclose(pool_tokens(tokens, "mean"), tokens[:, 2:].mean(1))
    assert torch.allclose(pool_tokens(tokens, "cls"), (tokens[:, 0] + tokens[:, 1]) / 2)
    with pytest.raises(ValueError, match="pooling"):
        pool_tokens(tokens, "max")


def test_mean_pooling_over_real_audio_tokens_ignores_the_padding_tokens():
    tokens = torch.randn(3, 10, 4)
    valid = torch.zeros(3, 8, dtype=torch.bool)
    valid[0, :3], valid[1, :] = True, True  # clip 2: no real token (falls back to all)
    pooled = pool_tokens(tokens, "mean", valid=valid)
    torch.testing.assert_close(pooled[0], tokens[0, 2:5].mean(0))
    torch.testing.assert_close(pooled[1:], tokens[1:, 2:].mean(1))
    changed = tokens.clone()
    changed[0, 5:] += 100.0  # the padding's tokens
    torch.testing.assert_close(pool_tokens(changed, "mean", valid=valid)[0], pooled[0])


def test_eval_and_train_modes_agree():
    # No dropout or drop-path in SSAST: train and eval give identical outputs.
    encoder = SSASTEncoder(EncoderConfig(embed_dim=8, depth=2, num_heads=2, input_tdim=64))
    x = torch.randn(2, 64, 128)
    assert torch.equal(encoder.train()(x), encoder.eval()(x))


def test_adapt_encoder_keeps_weights_and_changes_stride():
    pre = SSASTEncoder(EncoderConfig.from_names("tiny", "frame", depth=1))
    ft = adapt_encoder(pre, tstride=1, input_tdim=128)
    assert ft.grid == (1, 127) and ft.patch_embed.proj.stride == (128, 1)
    assert torch.equal(ft.patch_embed.proj.weight, pre.patch_embed.proj.weight)
    assert torch.equal(ft.blocks[0].attn.qkv.weight, pre.blocks[0].attn.qkv.weight)
    classifier = SSASTClassifier(ft, 35, pooling="cls")
    assert classifier(torch.randn(2, 128, 128)).shape == (2, 35)
    with pytest.raises(ValueError, match="adaptation method"):
        adapt_encoder(pre, method="nearest")


def test_variable_length_input_equals_an_encoder_built_for_that_length():
    torch.manual_seed(0)
    config = EncoderConfig(embed_dim=16, depth=2, num_heads=2, input_tdim=64, variable_length=True)
    encoder = SSASTEncoder(config).eval()
    short = SSASTEncoder(EncoderConfig(embed_dim=16, depth=2, num_heads=2, input_tdim=32)).eval()
    state = encoder.state_dict()
    pos = state["pos_embed"]
    patches = pos[:, 2:].view(1, 8, 4, 16)[:, :, :2].reshape(1, 16, 16)
    short.load_state_dict({**state, "pos_embed": torch.cat((pos[:, :2], patches), dim=1)})
    x = torch.randn(2, 32, 128)
    assert torch.allclose(encoder(x), short(x), atol=1e-6)
    with pytest.raises(ValueError, match="at least one patch"):
        encoder(torch.randn(1, 8, 128))
    with pytest.raises(ValueError, match="built for 64 frames"):
        encoder(torch.randn(1, 80, 128))
