"""Masked spectrogram patch modeling objectives (docs/fidelity.md c.2-c.4).

* discriminative (MPC): InfoNCE between predicted and true masked patches,
  negatives drawn from the other masked patches of the same clip;
* generative (MPG): mean squared error of the reconstructed patches;
* joint: ``nce + 10 * mse``.

By default the InfoNCE and its accuracy are computed as the original code
does (softmax over predictions for each target; row softmax then column
argmax for the accuracy). ``direction="paper"`` gives the paper's Eq. (1)
(softmax over targets for each prediction), an opt-in departure.

Authors
 * ssast-sb contributors
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

#: Weight of the generative loss in the joint objective (original trainer).
MPG_WEIGHT = 10.0


class PredictionHead(nn.Sequential):
    """``Linear(D, D) -> ReLU -> Linear(D, patch_dim)``: the original MPC/MPG heads.

    Arguments
    ---------
    embed_dim : int
        Encoder width D.
    patch_dim : int
        Values per patch (256 for 16x16 and 128x2).

    Example
    -------
    >>> PredictionHead(8, 256)(torch.randn(2, 3, 8)).shape
    torch.Size([2, 3, 256])
    """

    def __init__(self, embed_dim, patch_dim=256):
        super().__init__(
            nn.Linear(embed_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, patch_dim)
        )


def unfold_patches(spectrogram, fshape, tshape, fstride=None, tstride=None):
    """Flattened input patches, the MSPM targets.

    Arguments
    ---------
    spectrogram : torch.Tensor
        ``(B, T, F)`` normalised features.
    fshape, tshape : int
        Patch size.
    fstride, tstride : int, optional
        Patch stride (defaults to the patch size).

    Returns
    -------
    torch.Tensor
        ``(B, N, fshape * tshape)``: frequency-major patch order, each patch
        flattened as ``kf * tshape + kt``.

    Example
    -------
    >>> unfold_patches(torch.randn(2, 1024, 128), 16, 16).shape
    torch.Size([2, 512, 256])
    """
    image = spectrogram.transpose(1, 2).unsqueeze(1)
    columns = F.unfold(
        image, kernel_size=(fshape, tshape), stride=(fstride or fshape, tstride or tshape)
    )
    return columns.transpose(1, 2)


def gather_tokens(tokens, index):
    """Picks ``tokens[b, index[b, m]]``.

    Arguments
    ---------
    tokens : torch.Tensor
        ``(B, N, D)``.
    index : torch.Tensor
        ``(B, M)`` int64.

    Returns
    -------
    torch.Tensor
        ``(B, M, D)``.

    Example
    -------
    >>> gather_tokens(torch.arange(6.0).view(1, 3, 2), torch.tensor([[2, 0]]))
    tensor([[[4., 5.],
             [0., 1.]]])
    """
    return tokens.gather(1, index.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def info_nce(predictions, targets, direction="code", keep=None):
    """InfoNCE over the masked patches of each clip, and its accuracy.

    Arguments
    ---------
    predictions : torch.Tensor
        ``(B, M, P)`` outputs of the discriminative head.
    targets : torch.Tensor
        ``(B, M, P)`` true patches, in the same order.
    direction : str
        ``code`` (default, the original): ``S = targets @ predictions^T``,
        log-softmax along predictions, accuracy = column argmax of the
        row-softmaxed scores. ``paper``: softmax along targets for each
        prediction (Eq. 1), accuracy = the matching argmax.
    keep : torch.Tensor, optional
        ``(B, M)`` bool (padding-aware pretraining, :mod:`ssast_sb.padding`):
        positions flagged False are neither candidates nor counted in the loss
        and accuracy. None (the original) uses every position.

    Returns
    -------
    nce : torch.Tensor
        Scalar loss, averaged over B * M.
    accuracy : torch.Tensor
        Scalar fraction of patches matched to their own target.

    Example
    -------
    >>> x = torch.eye(4).unsqueeze(0)
    >>> nce, acc = info_nce(x, x)
    >>> round(nce.item(), 4), acc.item()
    (0.7437, 1.0)
    """
    with torch.autocast(predictions.device.type, enabled=False):
        # (B, M_target, M_pred), always in fp32 (also under mixed precision).
        scores = torch.bmm(targets.float(), predictions.float().transpose(1, 2))
    if direction == "paper":
        scores = scores.transpose(1, 2)  # rows are predictions, softmax over targets
    elif direction != "code":
        raise ValueError(f"Unknown InfoNCE direction {direction!r}; use 'code' or 'paper'")
    if keep is not None:
        # Dropped positions are no candidates; a large finite value keeps empty rows finite.
        scores = scores.masked_fill(~keep.unsqueeze(1), -1e9)
    log_probs = scores.log_softmax(dim=-1)
    identity = torch.arange(scores.shape[1], device=scores.device)
    if direction == "code":
        # The original: argmax over dim 0 of the row-softmaxed matrix (docs/fidelity.md c.2).
        probs = scores.softmax(dim=-1)
        if keep is not None:
            probs = probs.masked_fill(~keep.unsqueeze(2), -1.0)
        matched = probs.argmax(dim=1) == identity
    else:
        matched = scores.argmax(dim=-1) == identity
    losses = -log_probs.diagonal(dim1=1, dim2=2)
    if keep is None:
        return losses.mean(), matched.float().mean()
    return masked_mean(losses, keep), masked_mean(matched.float(), keep)


def chance_accuracy(mask_index, keep=None):
    """The masked-patch classification accuracy of a random guess, averaged as the accuracy.

    Each masked patch is matched among the masked patches of its clip, so a
    guess is right with probability one over their count: ``1 / M`` for the
    original, and one over the clip's real masked patches when padding-aware
    (``keep``), averaged over the kept patches as :func:`info_nce` averages
    its accuracy. Logged beside ``acc``, it says how far above chance a model is.

    Arguments
    ---------
    mask_index : torch.Tensor
        ``(B, M)`` masked patches.
    keep : torch.Tensor, optional
        ``(B, M)`` bool, the masked patches that count (padding-aware).

    Returns
    -------
    torch.Tensor
        Scalar.

    Example
    -------
    >>> chance_accuracy(torch.zeros(2, 4, dtype=torch.long))
    tensor(0.2500)
    >>> keep = torch.tensor([[True, True, False, False], [True, True, True, True]])
    >>> chance_accuracy(torch.zeros(2, 4, dtype=torch.long), keep)
    tensor(0.3333)
    """
    if keep is None:
        return torch.tensor(1.0 / mask_index.shape[1], device=mask_index.device)
    candidates = keep.sum(dim=1, keepdim=True).clamp(min=1).float()
    return masked_mean((1.0 / candidates).expand(keep.shape), keep)


def masked_mean(values, keep):
    """Mean of ``values`` where ``keep`` is True (0 when nothing is kept).

    Arguments
    ---------
    values : torch.Tensor
        ``(B, M)`` or ``(B, M, P)``.
    keep : torch.Tensor
        ``(B, M)`` bool.

    Returns
    -------
    torch.Tensor
        Scalar.

    Example
    -------
    >>> masked_mean(torch.tensor([[1.0, 3.0, 9.0]]), torch.tensor([[True, True, False]]))
    tensor(2.)
    """
    weights = keep.to(values.dtype)
    if values.dim() == 3:
        weights = weights.unsqueeze(-1).expand_as(values)
    return (values * weights).sum() / weights.sum().clamp(min=1.0)


def patch_mse(predictions, targets, keep=None):
    """Mean squared error over every value of every masked patch.

    Arguments
    ---------
    predictions : torch.Tensor
        ``(B, M, P)`` outputs of the generative head.
    targets : torch.Tensor
        ``(B, M, P)`` true patches.
    keep : torch.Tensor, optional
        ``(B, M)`` bool: average only over these patches (padding-aware).

    Returns
    -------
    torch.Tensor
        Scalar, averaged over ``B * M * P`` (or the kept patches' values).

    Example
    -------
    >>> patch_mse(torch.zeros(1, 2, 3), torch.ones(1, 2, 3))
    tensor(1.)
    """
    squared = (predictions.float() - targets.float()).pow(2)
    return squared.mean() if keep is None else masked_mean(squared, keep)


def joint_loss(nce, mse, mpg_weight=MPG_WEIGHT):
    """The joint MSPM objective ``nce + mpg_weight * mse``.

    Arguments
    ---------
    nce : torch.Tensor
        Discriminative loss.
    mse : torch.Tensor
        Generative loss.
    mpg_weight : float
        Weight of the generative loss (10 in the original).

    Returns
    -------
    torch.Tensor

    Example
    -------
    >>> joint_loss(torch.tensor(2.0), torch.tensor(0.5))
    tensor(7.)
    """
    return nce + mpg_weight * mse
