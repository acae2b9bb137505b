"""Few-shot fine-tuning and linear probing on features held in memory.

The building blocks of the small-scale protocol (``benchmarks/ssl_gain.py``):
draw ``k`` labeled clips per class, fine-tune an :class:`~ssast_sb.models.SSASTClassifier`
end to end for a fixed number of steps (with optional layer-wise learning-rate
decay and SpecAugment), and fit a logistic-regression probe on the frozen
encoder's mean-pooled layers.

Authors
 * ssast-sb contributors
"""


import torch
import torch.nn.functional as F

from ssast_sb.encoder import pool_tokens
from ssast_sb.padding import valid_patches
from ssast_sb.schedules import layerwise_param_groups, warmup_cosine_scale


def k_shot_indices(labels, k, seed=0):
    """``k`` random examples of every class (all of them when ``k`` is None).

    Arguments
    ---------
    labels : torch.Tensor
        ``(N,)`` class indices.
    k : int or None
        Examples per class; classes with fewer keep all theirs.
    seed : int
        Which examples.

    Returns
    -------
    torch.Tensor
        Sorted indices into ``labels``.

    Example
    -------
    >>> k_shot_indices(torch.tensor([0, 0, 0, 1, 1, 2]), 2).tolist()
    [0, 2, 3, 4, 5]
    """
    if k is None:
        return torch.arange(len(labels))
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in labels.unique():
        members = (labels == label).nonzero().flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:k]])
    return torch.cat(chosen).sort().values


def spec_augment(features, freq_width, time_width, generator=None):
    """One frequency and one time mask per clip, of random width up to the limits (set to 0).

    Arguments
    ---------
    features : torch.Tensor
        ``(B, T, F)`` normalised features.
    freq_width, time_width : int
        Largest mask widths (0: none).
    generator : torch.Generator, optional
        Source of randomness.

    Returns
    -------
    torch.Tensor
        A masked copy.

    Example
    -------
    >>> out = spec_augment(torch.ones(2, 20, 16), 4, 5, torch.Generator().manual_seed(0))
    >>> out.shape, bool((out == 0).any())
    (torch.Size([2, 20, 16]), True)
    """
    batch = features.shape[0]
    keep = torch.ones_like(features, dtype=torch.bool)
    for axis, width in ((2, freq_width), (1, time_width)):
        if width <= 0:
            continue
        size = features.shape[axis]
        widths = torch.randint(width + 1, (batch, 1), generator=generator)
        starts = (torch.rand(batch, 1, generator=generator) * (size - widths + 1)).long()
        position = torch.arange(size).unsqueeze(0)
        hit = (position >= starts) & (position < starts + widths)
        shape = (batch, 1, size) if axis == 2 else (batch, size, 1)
        keep &= ~hit.view(shape)
    return features * keep


def finetune_classifier(
    classifier,
    features,
    labels,
    steps,
    batch_size=16,
    lr=1e-4,
    head_lr_scale=10.0,
    layer_decay=1.0,
    warmup_fraction=0.1,
    freq_width=0,
    time_width=0,
    seed=0,
    num_frames=None,
):
    """Trains a classifier end to end for ``steps`` steps (AdamW, warm-up + cosine).

    Arguments
    ---------
    classifier : SSASTClassifier
        Trained in place.
    features : torch.Tensor
        ``(N, T, F)`` training clips.
    labels : torch.Tensor
        ``(N,)`` class indices.
    steps : int
        Optimiser steps.
    batch_size : int
        Clips per step (at most N).
    lr : float
        Encoder rate (top block).
    head_lr_scale : float
        Head rate / ``lr``.
    layer_decay : float
        Layer-wise rate decay (1.0: off).
    warmup_fraction : float
        Fraction of the steps with a linear warm-up.
    freq_width, time_width : int
        SpecAugment limits (0: off).
    seed : int
        Batch order and augmentation.
    num_frames : torch.Tensor, optional
        ``(N,)`` real frames per clip: pool only real-audio patches (see
        :meth:`~ssast_sb.models.SSASTClassifier.embed`).

    Returns
    -------
    list of float
        Training loss of every step.
    """
    generator = torch.Generator().manual_seed(seed)
    groups = layerwise_param_groups(classifier, lr, layer_decay, head_lr_scale)
    peak = [group["lr"] for group in groups]
    optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
    warmup = max(1, int(steps * warmup_fraction))
    batch_size = min(batch_size, len(labels))
    classifier.train()
    losses, order, cursor = [], torch.randperm(len(labels), generator=generator), 0
    for step in range(steps):
        if cursor + batch_size > len(order):
            order, cursor = torch.randperm(len(labels), generator=generator), 0
        index = order[cursor : cursor + batch_size]
        cursor += batch_size
        scale = warmup_cosine_scale(step, steps, warmup)
        for group, rate in zip(optimizer.param_groups, peak):
            group["lr"] = rate * scale
        batch = spec_augment(features[index], freq_width, time_width, generator)
        frames = None if num_frames is None else num_frames[index]
        loss = F.cross_entropy(classifier(batch, frames), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def accuracy(classifier, features, labels, batch_size=64, num_frames=None):
    """Top-1 accuracy of ``classifier`` on ``(N, T, F)`` clips.

    Arguments
    ---------
    classifier : SSASTClassifier
        Evaluated in eval mode.
    features : torch.Tensor
        ``(N, T, F)`` clips.
    labels : torch.Tensor
        ``(N,)`` class indices.
    batch_size : int
        Clips per forward pass.
    num_frames : torch.Tensor, optional
        ``(N,)`` real frames per clip (pool only real-audio patches).

    Returns
    -------
    float

    Example
    -------
    >>> from ssast_sb.encoder import EncoderConfig, SSASTEncoder
    >>> from ssast_sb.models import SSASTClassifier
    >>> enc = SSASTEncoder(EncoderConfig(embed_dim=8, depth=1, num_heads=2, input_tdim=32))
    >>> acc = accuracy(SSASTClassifier(enc, 3), torch.randn(4, 32, 128), torch.zeros(4).long())
    >>> 0.0 <= acc <= 1.0
    True
    """
    classifier.eval()
    correct = 0
    for start in range(0, len(labels), batch_size):
        frames = None if num_frames is None else num_frames[start : start + batch_size]
        logits = classifier(features[start : start + batch_size], frames)
        correct += int((logits.argmax(-1) == labels[start : start + batch_size]).sum())
    return correct / len(labels)


@torch.no_grad()
def layer_embeddings(encoder, features, batch_size=64, num_frames=None):
    """Mean-pooled patch tokens of every block and of the final norm, ``(L + 1, N, D)``.

    Arguments
    ---------
    encoder : SSASTEncoder
        Frozen encoder (put in eval mode).
    features : torch.Tensor
        ``(N, T, F)`` clips.
    batch_size : int
        Clips per forward pass.
    num_frames : torch.Tensor, optional
        ``(N,)`` real frames of each clip: when given, only the tokens of
        patches that hold real audio are pooled (see
        :func:`ssast_sb.encoder.pool_tokens`); otherwise every patch token is,
        padding included, as the original.

    Returns
    -------
    torch.Tensor
        ``(L + 1, N, D)``.

    Example
    -------
    >>> from ssast_sb.encoder import EncoderConfig, SSASTEncoder
    >>> enc = SSASTEncoder(EncoderConfig(embed_dim=8, depth=2, num_heads=2, input_tdim=32))
    >>> layer_embeddings(enc, torch.randn(3, 32, 128)).shape
    torch.Size([3, 3, 8])
    >>> layer_embeddings(enc, torch.randn(3, 32, 128), num_frames=torch.tensor([5, 32, 20])).shape
    torch.Size([3, 3, 8])
    """
    encoder.eval()
    valid = None
    if num_frames is not None:
        valid = valid_patches(num_frames, encoder.grid, encoder.config.tstride)
    chunks = []
    for start in range(0, features.shape[0], batch_size):
        final, layers = encoder(features[start : start + batch_size], return_layers=True)
        chunk_valid = None if valid is None else valid[start : start + batch_size]
        pooled = [
            pool_tokens(layer, "mean", encoder.num_class_tokens, chunk_valid)
            for layer in (*layers, final)
        ]
        chunks.append(torch.stack(pooled))
    return torch.cat(chunks, dim=1)


def _fit_logistic(train_x, train_y, num_classes, weight_decay, steps=100):
    """L2-regularised logistic regression by L-BFGS from zero weights.

    The start is fixed (not drawn from the global random state), so that a probe
    gives the same answer whatever ran before it.

    Returns
    -------
    callable
        Logits of ``(N, D)`` inputs.
    """
    weight = torch.zeros(num_classes, train_x.shape[1], requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=steps, history_size=20)

    def logits(x):
        return F.linear(x, weight, bias)

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(logits(train_x), train_y) + weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return logits


def linear_probe(train, valid, test, weight_decays=(1e-4, 1e-3, 1e-2, 1e-1)):
    """Logistic regression on frozen embeddings; layer and L2 chosen on ``valid``.

    Arguments
    ---------
    train, valid, test : tuple
        ``(embeddings (L, N, D), labels (N,))`` each, from :func:`layer_embeddings`.
    weight_decays : tuple of float
        L2 strengths tried.

    Returns
    -------
    dict
        ``test_acc``, ``valid_acc``, ``layer`` and ``weight_decay`` of the best.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> y = torch.arange(40) % 2
    >>> x = torch.randn(2, 40, 4, generator=g) + y.view(1, -1, 1) * 3.0
    >>> linear_probe((x, y), (x, y), (x, y))["test_acc"]
    1.0
    """
    num_classes = int(max(train[1].max(), valid[1].max(), test[1].max())) + 1
    best = None
    with torch.enable_grad():
        for layer in range(train[0].shape[0]):
            mean = train[0][layer].mean(0)
            std = train[0][layer].std(0, unbiased=False).clamp(min=1e-6)

            def norm(x, layer=layer, mean=mean, std=std):
                return (x[layer] - mean) / std

            for weight_decay in weight_decays:
                probe = _fit_logistic(norm(train[0]), train[1], num_classes, weight_decay)
                with torch.no_grad():
                    valid_acc = (probe(norm(valid[0])).argmax(-1) == valid[1]).float().mean()
                    test_acc = (probe(norm(test[0])).argmax(-1) == test[1]).float().mean()
                if best is None or valid_acc > best["valid_acc"]:
                    best = {
                        "valid_acc": float(valid_acc),
                        "test_acc": float(test_acc),
                        "layer": layer,
                        "weight_decay": weight_decay,
                    }
    return best
