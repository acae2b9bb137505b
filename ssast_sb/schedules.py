"""Learning-rate schedules of the original trainers (docs/fidelity.md c.5, d.1).

Authors
 * ssast-sb contributors
"""

import math


def staircase_warmup_lr(step, base_lr, warmup_steps=1000, interval=50):
    """The original warm-up: at every ``interval``-th step up to ``warmup_steps``.

    The learning rate becomes ``base_lr * step / warmup_steps``; steps 0-49 therefore
    run at lr 0 (Adam's moments still update). The full rate is also set at
    ``warmup_steps`` itself when it is not a multiple of ``interval`` (the original
    uses 1000 and 50, where both rules agree).

    Arguments
    ---------
    step : int
        Optimiser steps taken so far (0 for the first update).
    base_lr : float
        Target learning rate.
    warmup_steps : int
        Step at which the full rate is reached.
    interval : int
        The rate changes every ``interval`` steps.

    Returns
    -------
    float or None
        The rate to set now, or None to leave it as it is.

    Example
    -------
    >>> [staircase_warmup_lr(s, 1e-3) for s in (0, 1, 50, 999, 1000, 1050)]
    [0.0, None, 5e-05, None, 0.001, None]
    >>> staircase_warmup_lr(30, 1e-3, warmup_steps=30)
    0.001
    """
    if step <= warmup_steps and (step % interval == 0 or step == warmup_steps):
        return base_lr * step / warmup_steps
    return None


def set_lr(optimizer, lr, multipliers=None):
    """Sets the learning rate of every parameter group.

    Arguments
    ---------
    optimizer : torch.optim.Optimizer
        The optimiser.
    lr : float
        New base rate.
    multipliers : list of float, optional
        One factor per group (e.g. the head-lr multiplier of fine-tuning).

    Example
    -------
    >>> import torch
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> set_lr(opt, 0.5); opt.param_groups[0]["lr"]
    0.5
    """
    for index, group in enumerate(optimizer.param_groups):
        group["lr"] = lr * (multipliers[index] if multipliers else 1.0)


def current_lr(optimizer):
    """Learning rate of the first parameter group.

    Example
    -------
    >>> import torch
    >>> current_lr(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))
    0.1
    """
    return optimizer.param_groups[0]["lr"]


def layerwise_param_groups(classifier, lr, layer_decay=1.0, head_lr_scale=1.0):
    """Optimiser groups with layer-wise learning-rate decay (BEiT style).

    The head gets ``lr * head_lr_scale``; block ``i`` of ``L`` gets
    ``lr * layer_decay ** (L - i)``; the patch and position embeddings, class
    and mask tokens get ``lr * layer_decay ** (L + 1)``; the final norm gets ``lr``.

    Arguments
    ---------
    classifier : SSASTClassifier
        Needs ``encoder`` (blocks in ``encoder.blocks``) and ``head_parameters()``.
    lr : float
        Rate of the top of the encoder.
    layer_decay : float
        Factor per block towards the input (1.0: one rate for all).
    head_lr_scale : float
        Head rate / ``lr``.

    Returns
    -------
    list of dict
        Groups with ``params`` and ``lr``.

    Example
    -------
    >>> from ssast_sb.encoder import EncoderConfig, SSASTEncoder
    >>> from ssast_sb.models import SSASTClassifier
    >>> enc = SSASTEncoder(EncoderConfig(embed_dim=8, depth=2, num_heads=2, input_tdim=32))
    >>> groups = layerwise_param_groups(SSASTClassifier(enc, 3), 1.0, 0.5, 10.0)
    >>> [g["lr"] for g in groups]
    [10.0, 1.0, 0.25, 0.5, 0.125]
    """
    encoder = classifier.encoder
    depth = len(encoder.blocks)
    head = classifier.head_parameters()
    head_ids = {id(p) for p in head}
    groups = [{"params": head, "lr": lr * head_lr_scale}]
    groups.append({"params": list(encoder.norm.parameters()), "lr": lr})
    in_blocks = set()
    for index, block in enumerate(encoder.blocks):
        params = list(block.parameters())
        in_blocks.update(id(p) for p in params)
        groups.append({"params": params, "lr": lr * layer_decay ** (depth - index)})
    taken = head_ids | in_blocks | {id(p) for p in encoder.norm.parameters()}
    rest = [p for p in classifier.parameters() if id(p) not in taken]
    groups.append({"params": rest, "lr": lr * layer_decay ** (depth + 1)})
    return [g for g in groups if g["params"]]


def warmup_cosine_scale(step, total_steps, warmup_steps):
    """Rate factor at ``step``: linear warm-up over ``warmup_steps``, then cosine to 0.

    The few-shot schedule of the small-scale protocol (a departure; the original
    fine-tuning decays in epoch milestones): the factor is
    ``min(1, (step + 1) / warmup_steps) * (1 + cos(pi * step / total_steps)) / 2``.

    Arguments
    ---------
    step : int
        Optimiser steps taken so far.
    total_steps : int
        Steps of the whole run.
    warmup_steps : int
        Steps of the warm-up (0: none).

    Returns
    -------
    float

    Example
    -------
    >>> [round(warmup_cosine_scale(s, 10, 2), 3) for s in (0, 1, 5, 10)]
    [0.5, 0.976, 0.5, 0.0]
    """
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    return warm * 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
