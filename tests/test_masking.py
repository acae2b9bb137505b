"""Masking: counts, uniqueness and the original's per-row statistics."""

import pytest
import torch

from ssast_sb.masking import (
    cluster_mask,
    default_strategy,
    draw_mask,
    random_mask,
    unbiased_cluster_mask,
)

# Measured on the original code (docs/fidelity.md c.1, 4000 draws, M=400 of 8x64).
ORIGINAL_ROW_RATES_400 = [0.415, 0.669, 0.813, 0.873, 0.888, 0.887, 0.885, 0.820]


def _row_rates(mask, grid):
    hits = torch.zeros(mask.shape[0], grid[0] * grid[1])
    hits.scatter_(1, mask, 1.0)
    return hits.view(-1, *grid).mean(dim=(0, 2))


@pytest.mark.parametrize("masker", [cluster_mask, unbiased_cluster_mask])
@pytest.mark.parametrize("num_masked", [1, 100, 250, 400])
def test_cluster_counts_and_uniqueness(masker, num_masked):
    mask = masker(16, (8, 64), num_masked, generator=torch.Generator().manual_seed(1))
    assert mask.shape == (16, num_masked) and mask.dtype == torch.long
    assert ((mask >= 0) & (mask < 512)).all()
    assert all(len(set(row.tolist())) == num_masked for row in mask)
    assert (mask.diff(dim=1) > 0).all()  # sorted, as list(set(...)) in the original


def test_cluster_reproduces_original_statistics():
    mask = cluster_mask(4000, (8, 64), 400, generator=torch.Generator().manual_seed(0))
    rates = _row_rates(mask, (8, 64))
    assert torch.allclose(rates, torch.tensor(ORIGINAL_ROW_RATES_400), atol=0.02)
    assert abs(rates[0].item() - 0.415) < 0.02 and abs(rates.mean().item() - 400 / 512) < 1e-6
    assert not (mask == 0).any()  # index 0 is never masked (GitHub issue #39)
    m250 = cluster_mask(4000, (8, 64), 250, generator=torch.Generator().manual_seed(0))
    assert abs(_row_rates(m250, (8, 64))[0].item() - 0.197) < 0.02


def test_cluster_blocks_wrap_across_rows():
    # A block starting in the last time column continues at the start of the next row.
    mask = cluster_mask(2000, (8, 64), 20, generator=torch.Generator().manual_seed(3))
    hits = torch.zeros(2000, 512).scatter_(1, mask, 1.0).view(2000, 8, 64)
    assert hits[:, 1:, 0].sum() > 0 and hits[:, :, 63].sum() > 0
    # Small masks are spatially clustered: far more masked neighbours than chance.
    right_neighbour = (hits[:, :, :-1] * hits[:, :, 1:]).sum() / hits[:, :, :-1].sum()
    assert right_neighbour > 0.5


def test_unbiased_cluster_rates_are_uniform_and_reach_index_zero():
    mask = unbiased_cluster_mask(4000, (8, 64), 400, generator=torch.Generator().manual_seed(0))
    rates = _row_rates(mask, (8, 64))
    assert (rates - 400 / 512).abs().max() < 0.02
    assert (mask == 0).any()


def test_random_mask_is_uniform_unsorted_and_may_include_zero():
    mask = random_mask(2000, 512, 400, generator=torch.Generator().manual_seed(0))
    assert all(len(set(row.tolist())) == 400 for row in mask[:50])
    assert (mask == 0).any() and not (mask.diff(dim=1) > 0).all()
    rates = torch.zeros(2000, 512).scatter_(1, mask, 1.0).mean(0)
    assert (rates - 400 / 512).abs().max() < 0.05


def test_masks_follow_the_generator_and_differ_per_clip():
    first = cluster_mask(4, (8, 64), 400, generator=torch.Generator().manual_seed(7))
    again = cluster_mask(4, (8, 64), 400, generator=torch.Generator().manual_seed(7))
    other = cluster_mask(4, (8, 64), 400, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert not torch.equal(first[0], first[1])


def test_impossible_counts_are_errors():
    # The original loop never terminates for M >= N - 1; we refuse instead.
    with pytest.raises(ValueError, match="Cannot mask"):
        cluster_mask(1, (8, 64), 511)
    with pytest.raises(ValueError, match="Cannot mask"):
        random_mask(1, 512, 513)
    with pytest.raises(ValueError, match="Unknown masking"):
        draw_mask("checkerboard", 1, (8, 64), 10)


def test_default_strategy_follows_patch_shape():
    assert default_strategy(16) == "cluster" and default_strategy(128) == "random"
    assert draw_mask("cluster", 2, (8, 64), 400).shape == (2, 400)
