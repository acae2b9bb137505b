"""MSPM objectives: InfoNCE as the original code and as the paper, MSE, joint step."""

import pytest
import torch

from ssast_sb.encoder import EncoderConfig, SSASTEncoder
from ssast_sb.models import SSASTPretrainModel
from ssast_sb.objectives import (
    PredictionHead,
    chance_accuracy,
    info_nce,
    joint_loss,
    patch_mse,
    unfold_patches,
)


def _loop_reference(pred, target):
    """The original per-clip loop (ast_models.py:347-354), written out."""
    nce, correct = 0.0, 0
    for b in range(pred.shape[0]):
        total = target[b] @ pred[b].T
        correct += (total.softmax(-1).argmax(0) == torch.arange(pred.shape[1])).sum()
        nce += total.log_softmax(-1).diag().sum()
    count = pred.shape[0] * pred.shape[1]
    return nce / (-count), correct / count


def test_info_nce_matches_the_original_loop():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(3, 20, 16, generator=g), torch.randn(3, 20, 16, generator=g)
    nce, acc = info_nce(pred, target)
    ref_nce, ref_acc = _loop_reference(pred, target)
    assert torch.allclose(nce, ref_nce, atol=1e-6) and torch.allclose(acc, ref_acc.float())


def test_paper_direction_differs_and_is_the_transpose():
    g = torch.Generator().manual_seed(1)
    pred, target = torch.randn(2, 10, 8, generator=g), torch.randn(2, 10, 8, generator=g)
    code, _ = info_nce(pred, target, "code")
    paper, _ = info_nce(pred, target, "paper")
    assert not torch.allclose(code, paper)
    # The paper's direction on (pred, target) is the code's direction with roles swapped.
    swapped, _ = info_nce(target, pred, "code")
    assert torch.allclose(paper, swapped, atol=1e-6)
    with pytest.raises(ValueError, match="direction"):
        info_nce(pred, target, "both")


def test_code_direction_gives_zero_gradient_to_the_last_mpc_bias():
    # docs/fidelity.md f.1: the bias adds <x_j, b> to a whole row, which the softmax cancels.
    torch.manual_seed(0)
    head = PredictionHead(8, 16)
    tokens, target = torch.randn(2, 12, 8), torch.randn(2, 12, 16)
    info_nce(head(tokens), target, "code")[0].backward()
    assert head[2].bias.grad.abs().max() < 1e-6
    head.zero_grad()
    info_nce(head(tokens), target, "paper")[0].backward()
    assert head[2].bias.grad.abs().max() > 1e-4


def test_accuracy_is_column_argmax_of_row_softmax():
    # A case where the column argmax of the row softmax differs from the argmax of S.
    target = torch.eye(2).unsqueeze(0)
    pred = torch.tensor([[[10.0, 5.0], [11.0, 0.0]]])  # S = target @ pred^T = pred^T
    _, acc = info_nce(pred, target)
    scores = target[0] @ pred[0].T
    expected = (scores.softmax(-1).argmax(0) == torch.arange(2)).float().mean()
    assert acc.item() == expected.item()
    assert expected.item() != (scores.argmax(0) == torch.arange(2)).float().mean().item()


def test_mse_unfold_and_joint():
    x = torch.arange(2 * 32 * 128.0).view(2, 32, 128)
    patches = unfold_patches(x, 16, 16)
    assert patches.shape == (2, 16, 256)
    # Patch 1 is mel bins 0-15 of frames 16-31; value index kf * 16 + kt.
    assert patches[0, 1, 0] == x[0, 16, 0] and patches[0, 1, 1] == x[0, 17, 0]
    assert patches[0, 1, 16] == x[0, 16, 1]
    assert patch_mse(torch.zeros(2, 3), torch.full((2, 3), 2.0)) == 4.0
    assert joint_loss(torch.tensor(1.0), torch.tensor(0.1)).item() == pytest.approx(2.0)


def test_joint_step_in_one_batch_equals_two_passes():
    torch.manual_seed(0)
    config = EncoderConfig(embed_dim=16, depth=2, num_heads=2, input_tdim=64)
    model = SSASTPretrainModel(SSASTEncoder(config), num_masked=12)
    x = torch.randn(3, 64, 128)
    mpc_mask, mpg_mask = model.draw_masks(3, torch.Generator().manual_seed(0))
    joint = model(x, mpc_mask, mpg_mask)
    joint["loss"].backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    mpc, mpg = model.mpc(x, mpc_mask), model.mpg(x, mpg_mask)
    (mpc["nce"] + 10 * mpg["mse"]).backward()
    assert torch.allclose(joint["nce"], mpc["nce"], atol=1e-6)
    assert torch.allclose(joint["mse"], mpg["mse"], atol=1e-6)
    for ours, reference in zip(grads, (p.grad for p in model.parameters())):
        assert torch.allclose(ours, reference, atol=1e-6, rtol=1e-4)


def test_losses_stay_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    config = EncoderConfig(embed_dim=16, depth=1, num_heads=2, input_tdim=64)
    model = SSASTPretrainModel(SSASTEncoder(config), num_masked=12)
    x = torch.randn(2, 64, 128)
    masks = model.draw_masks(2, torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, *masks)
    assert out["loss"].dtype == torch.float32 and torch.isfinite(out["loss"])
    reference = model(x, *masks)
    assert abs(out["loss"].item() - reference["loss"].item()) < 0.05 * reference["loss"].item()


@pytest.mark.parametrize("direction", ["code", "paper"])
def test_chance_is_the_accuracy_of_random_predictions(direction):
    # Unrelated predictions and targets, clips with different numbers of real masked patches:
    # the accuracy averaged over many batches is the chance that chance_accuracy states.
    generator = torch.Generator().manual_seed(0)
    real = torch.tensor([2, 3, 5, 8, 8, 12])
    keep = torch.arange(12).unsqueeze(0) < real.unsqueeze(1)
    mask_index = torch.zeros(6, 12, dtype=torch.long)
    expected = chance_accuracy(mask_index, keep)
    accuracies = []
    for _ in range(400):
        predictions = torch.randn(6, 12, 16, generator=generator)
        targets = torch.randn(6, 12, 16, generator=generator)
        accuracies.append(info_nce(predictions, targets, direction, keep)[1])
    assert torch.stack(accuracies).mean() == pytest.approx(expected.item(), abs=0.01)
    assert expected.item() == pytest.approx(6 / real.sum().item())
    assert chance_accuracy(mask_index).item() == pytest.approx(1 / 12)


def test_pretraining_model_reports_chance_of_its_real_masked_patches():
    encoder = SSASTEncoder(
        EncoderConfig(
            embed_dim=16,
            depth=1,
            num_heads=2,
            fshape=128,
            tshape=2,
            fstride=128,
            tstride=2,
            input_tdim=16,
        )
    )
    model = SSASTPretrainModel(encoder, num_masked=4, padding_aware=True)
    masks = (torch.tensor([[0, 1, 6, 7], [0, 1, 2, 3]]),) * 2
    out = model(torch.randn(2, 16, 128), *masks, num_frames=torch.tensor([4, 16]))
    # Clip 0 has 2 real patches, both masked; clip 1 has 4 masked: (2 * 1/2 + 4 * 1/4) / 6.
    assert out["chance"].item() == pytest.approx(2 / 6)
