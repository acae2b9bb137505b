"""ClassifierBrain's optimiser groups: the original two, or layer-wise decay from the YAML."""

import pytest

from ssast_sb.augment import FinetuneAugmentation
from tests.test_device import _classifier_brain


def test_the_original_two_groups(tmp_path):
    brain = _classifier_brain(tmp_path, FinetuneAugmentation(), lr=1e-3, head_lr=10.0)
    brain.init_optimizers()
    rates = [group["lr"] for group in brain.optimizer.param_groups]
    assert rates == pytest.approx([1e-3, 1e-2]) and brain.lr_multipliers == [1.0, 10.0]


def test_layer_decay_gives_each_block_its_rate(tmp_path):
    brain = _classifier_brain(
        tmp_path, FinetuneAugmentation(), lr=1e-3, head_lr=10.0, layer_decay=0.5
    )
    brain.init_optimizers()
    groups = brain.optimizer.param_groups
    model = brain.hparams.model
    depth = len(model.encoder.blocks)
    # head, final norm, 12 blocks, embeddings: every trainable parameter exactly once.
    assert len(groups) == depth + 3
    ids = [id(p) for group in groups for p in group["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    rates = [group["lr"] for group in groups]
    assert rates[0] == pytest.approx(1e-2) and rates[1] == pytest.approx(1e-3)
    assert rates[2] == pytest.approx(1e-3 * 0.5**depth) and rates[-1] == pytest.approx(
        1e-3 * 0.5 ** (depth + 1)
    )
    assert brain.lr_multipliers == pytest.approx([rate / 1e-3 for rate in rates])
