"""MSPM pretraining for a fixed budget of minutes, on a corpus held in memory.

The recipes' :class:`~ssast_sb.brains.pretrain.MSPMBrain` is the way to pretrain
on a real corpus; this loop serves small-scale studies where the question is
"how good is the encoder after N CPU-minutes?": it stops on the clock, takes
its learning-rate schedule from the fraction of the budget spent, and records
the held-out curve (MPC accuracy and MSE against training minutes).

Authors
 * ssast-sb contributors
"""

import math
import time

import torch

from ssast_sb.schedules import set_lr


def budget_lr(base_lr, step, elapsed_fraction, warmup_steps, schedule="cosine"):
    """Learning rate after ``step`` steps with ``elapsed_fraction`` of the budget spent.

    Arguments
    ---------
    base_lr : float
        Peak rate.
    step : int
        Optimiser steps taken so far.
    elapsed_fraction : float
        Training time spent / budget, in [0, 1].
    warmup_steps : int
        Linear warm-up from 0 over these steps.
    schedule : str
        ``cosine`` (decay to 0 at the end of the budget) or ``constant``.

    Returns
    -------
    float

    Example
    -------
    >>> budget_lr(1.0, 4, 0.0, 10), budget_lr(1.0, 50, 0.5, 10)
    (0.5, 0.5)
    >>> budget_lr(1.0, 50, 0.5, 10, "constant")
    1.0
    """
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if schedule == "constant":
        return base_lr * warm
    if schedule != "cosine":
        raise ValueError(f"Unknown schedule {schedule!r}; use 'cosine' or 'constant'")
    return base_lr * warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, elapsed_fraction)))


@torch.no_grad()
def evaluate_mspm(model, bank, indices, target_frames, batch_size=64, seed=0):
    """Held-out MSPM loss, MPC accuracy and MSE with fixed crops and masks.

    Arguments
    ---------
    model : SSASTPretrainModel or MAEPretrainModel
        The model (its ``padding_aware`` flag decides whether real lengths are used).
    bank : ClipBank
        Held-out clips.
    indices : list of int
        Which clips of ``bank``.
    target_frames : int
        Input length.
    batch_size : int
        Clips per forward pass.
    seed : int
        Crops and masks are drawn from this seed, the same at every call.

    Returns
    -------
    dict
        ``loss``, ``nce``, ``acc``, ``mse`` averaged over clips.
    """
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    totals, count = {"loss": 0.0, "nce": 0.0, "acc": 0.0, "mse": 0.0}, 0
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        features, num_frames = bank.batch(chunk, target_frames, generator)
        masks = model.draw_masks(len(chunk), generator)
        out = model(features, *masks, num_frames=num_frames)
        for key in totals:
            totals[key] += float(out[key]) * len(chunk)
        count += len(chunk)
    model.train(was_training)
    return {key: value / count for key, value in totals.items()}


def pretrain_for_minutes(
    model,
    bank,
    minutes,
    target_frames,
    batch_size=32,
    lr=5e-4,
    warmup_steps=100,
    schedule="cosine",
    weight_decay=5e-7,
    valid=None,
    eval_every_minutes=2.0,
    seed=0,
    log=print,
    on_record=None,
    max_steps=None,
):
    """Pretrains ``model`` on random crops of ``bank`` until ``minutes`` of training pass.

    With ``max_steps``, the budget is that many optimiser steps instead (the
    schedule runs over the steps, ``minutes`` only times the curve), so that a
    run does not depend on the machine's speed or load.

    Evaluation time is not counted in the budget. Adam with the original's
    betas and weight decay (docs/fidelity.md e.1); clips are visited in a fresh
    random order every epoch.

    Arguments
    ---------
    model : SSASTPretrainModel or MAEPretrainModel
        Trained in place.
    bank : ClipBank
        Unlabeled training clips.
    minutes : float
        Training budget (wall clock).
    target_frames : int
        Input length; longer clips are randomly cropped.
    batch_size : int
        Clips per step.
    lr : float
        Peak learning rate.
    warmup_steps : int
        Linear warm-up steps.
    schedule : str
        ``cosine`` over the budget, or ``constant``.
    weight_decay : float
        Adam weight decay.
    valid : tuple, optional
        ``(bank, indices)`` of held-out clips for the curve.
    eval_every_minutes : float
        Training minutes between evaluations.
    seed : int
        Order, crops and masks.
    log : callable
        Receives one line per evaluation.
    on_record : callable, optional
        Called as ``on_record(point, model)`` after each curve point (e.g. to
        save a snapshot of the encoder).
    max_steps : int, optional
        A budget of optimiser steps instead of minutes.

    Returns
    -------
    list of dict
        The curve: ``minutes``, ``step``, ``train_loss`` and the held-out
        ``loss``, ``nce``, ``acc``, ``mse`` (at 0 minutes, every
        ``eval_every_minutes`` and at the end).
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.95, 0.999)
    )
    budget_s, spent_s, step = minutes * 60.0, 0.0, 0
    curve, recent = [], []

    def record():
        point = {"minutes": spent_s / 60.0, "step": step}
        point["train_loss"] = sum(recent) / len(recent) if recent else float("nan")
        if valid is not None:
            point.update(evaluate_mspm(model, valid[0], valid[1], target_frames, seed=seed))
        curve.append(point)
        recent.clear()
        if on_record is not None:
            on_record(point, model)
        log(
            " ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items()
            )
        )

    def left():
        return step < max_steps if max_steps else spent_s < budget_s

    def elapsed_fraction():
        return step / max_steps if max_steps else spent_s / budget_s

    record()
    next_eval_s = eval_every_minutes * 60.0
    model.train()
    while left():
        order = torch.randperm(len(bank), generator=generator).tolist()
        for start in range(0, len(order) - batch_size + 1, batch_size):
            tick = time.perf_counter()
            features, num_frames = bank.batch(
                order[start : start + batch_size], target_frames, generator
            )
            masks = model.draw_masks(batch_size, generator)
            set_lr(optimizer, budget_lr(lr, step, elapsed_fraction(), warmup_steps, schedule))
            loss = model(features, *masks, num_frames=num_frames)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            recent.append(loss.item())
            spent_s += time.perf_counter() - tick
            if spent_s >= next_eval_s and left():
                record()
                next_eval_s += eval_every_minutes * 60.0
            if not left():
                break
    record()
    return curve
