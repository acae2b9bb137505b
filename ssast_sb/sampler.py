"""Samplers and loader options: fixed-size epochs, the balanced sampler, duration batches.

:class:`IntervalSampler` makes epochs fixed-size slices of an endless shuffled stream.

The original pretraining validates, steps its learning-rate scheduler and
saves a checkpoint every ``epoch_iter`` optimiser steps (4000 base, 800 tiny;
docs/fidelity.md c.5), not once per pass over the data. With this sampler a
SpeechBrain epoch is exactly such an interval: epoch ``e`` yields items
``[e * n, (e + 1) * n)`` of the concatenation of shuffled passes over the
dataset, each pass a permutation drawn from ``seed`` and the pass number. The
order depends only on the epoch, so SpeechBrain's intra-epoch checkpoints
resume at the exact batch.

Authors
 * ssast-sb contributors
"""

import torch
from speechbrain.dataio.sampler import DynamicBatchSampler, ReproducibleWeightedRandomSampler
from torch.utils.data import Sampler

from ssast_sb.dataio import SkippingPaddedBatch
from ssast_sb.errors import OptionError


class IntervalSampler(Sampler):
    """Yields ``samples_per_epoch`` indices per epoch from consecutive shuffled passes.

    Arguments
    ---------
    dataset_size : int
        Number of items in the dataset.
    samples_per_epoch : int
        Items per epoch (steps per interval x batch size x processes).
    seed : int
        Seed of the pass permutations.

    Example
    -------
    >>> sampler = IntervalSampler(5, 3, seed=0)
    >>> sampler.set_epoch(1)
    >>> first = list(sampler)
    >>> len(first), len(sampler)
    (3, 3)
    >>> sampler.set_epoch(2)
    >>> second = list(sampler)
    >>> sorted(first + second[:2])  # the first pass covers every item once
    [0, 1, 2, 3, 4]
    """

    def __init__(self, dataset_size, samples_per_epoch, seed=0):
        if samples_per_epoch <= 0:
            raise OptionError(
                f"An interval of {samples_per_epoch} clips (--steps_per_epoch x --batch_size) "
                "trains on nothing: pass a positive --steps_per_epoch (e.g. 800) and "
                "--batch_size, or --steps_per_epoch 0 for epochs of one pass over the data."
            )
        if dataset_size <= 0:
            raise ValueError("IntervalSampler needs a non-empty dataset")
        self.dataset_size = dataset_size
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch):
        """Selects the interval; SpeechBrain calls this with its epoch number (from 1)."""
        self.epoch = epoch

    def _permutation(self, pass_index):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + pass_index)
        return torch.randperm(self.dataset_size, generator=generator)

    def __iter__(self):
        start = max(self.epoch - 1, 0) * self.samples_per_epoch
        stop = start + self.samples_per_epoch
        first_pass, last_pass = start // self.dataset_size, (stop - 1) // self.dataset_size
        stream = torch.cat([self._permutation(p) for p in range(first_pass, last_pass + 1)])
        offset = first_pass * self.dataset_size
        return iter(stream[start - offset : stop - offset].tolist())

    def __len__(self):
        return self.samples_per_epoch


def balanced_weights(label_lists):
    """Per-clip sampling weights of the original balanced sampler (``--bal bal``).

    Each label weighs ``1000 / (count + 0.01)``; a clip weighs the sum of its labels'
    weights, so clips of rare classes are drawn more often.

    Arguments
    ---------
    label_lists : list of list of str
        The labels of each clip.

    Returns
    -------
    torch.Tensor
        ``(num_clips,)`` float64 weights.

    Example
    -------
    >>> balanced_weights([["speech"], ["speech"], ["speech", "dog"]]).round()
    tensor([ 332.,  332., 1322.], dtype=torch.float64)
    """
    counts = {}
    for labels in label_lists:
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
    weight = {label: 1000.0 / (count + 0.01) for label, count in counts.items()}
    return torch.tensor(
        [sum(weight[label] for label in labels) for labels in label_lists], dtype=torch.float64
    )


def duration_batch_options(dataset, loader, max_batch_length_s, num_buckets, seed, shuffle):
    """Loader options with SpeechBrain's ``DynamicBatchSampler``: batches of similar duration.

    Each batch holds at most ``max_batch_length_s`` seconds of audio (from the
    manifest's ``duration``), drawn from ``num_buckets`` duration buckets, so
    short clips come in large batches and little of a batch is padding (with
    ``variable_length``).

    Arguments
    ---------
    dataset : DynamicItemDataset
        With a ``duration`` column.
    loader : dict
        Common loader options; ``batch_size``, ``shuffle`` and ``drop_last`` are
        replaced by the sampler.
    max_batch_length_s : float
        Seconds of audio per batch.
    num_buckets : int
        Duration buckets.
    seed : int
        Seed of the batch order.
    shuffle : bool
        Random batch order (training) or ascending duration (evaluation).

    Returns
    -------
    dict
        Loader options with ``batch_sampler``.
    """
    sampler = DynamicBatchSampler(
        dataset,
        max_batch_length=float(max_batch_length_s),
        num_buckets=int(num_buckets),
        length_func=lambda row: float(row["duration"]),
        shuffle=shuffle,
        batch_ordering="random" if shuffle else "ascending",
        seed=seed,
    )
    kept = {k: v for k, v in loader.items() if k not in ("batch_size", "shuffle", "drop_last")}
    return dict(kept, batch_sampler=sampler)


def classification_loader_options(hparams, dataset, train):
    """Loader options of a fine-tuning split, as the YAML asks.

    Training batches are shuffled, or drawn by the original balanced sampler
    (``balanced_sampling``), or grouped by duration (``dynamic_batching``);
    evaluation batches are fixed, or grouped by duration.

    Arguments
    ---------
    hparams : dict
        ``dataloader_opts``, ``dynamic_batching``, ``max_batch_length_s``,
        ``num_buckets``, ``balanced_sampling``, ``multi_label``,
        ``label_separator``, ``label_column`` and ``seed``; optionally ``drop_last``
        (the training loader drops the last partial batch, as the original's;
        batches grouped by duration keep every clip).
    dataset : DynamicItemDataset
        The split.
    train : bool
        Training split.

    Returns
    -------
    dict
        Keyword arguments of the split's ``DataLoader``.
    """
    loader = dict(hparams["dataloader_opts"], collate_fn=SkippingPaddedBatch)
    if hparams["dynamic_batching"]:
        if train and hparams["balanced_sampling"]:
            raise OptionError(
                "--dynamic_batching True and --balanced_sampling True cannot be combined (the "
                "batches are grouped by duration or drawn class-balanced, not both): pass "
                "--balanced_sampling False or --dynamic_batching False."
            )
        return duration_batch_options(
            dataset,
            loader,
            hparams["max_batch_length_s"],
            hparams["num_buckets"],
            hparams["seed"],
            shuffle=train,
        )
    if not train:
        return loader
    # The original's training loaders drop the last partial batch (its run.py).
    drop_last = bool(hparams.get("drop_last", False))
    if not hparams["balanced_sampling"]:
        return dict(loader, shuffle=True, drop_last=drop_last)
    separator = hparams["label_separator"] if hparams["multi_label"] else None
    column = hparams["label_column"]
    labels = [
        [name for name in (row[column].split(separator) if separator else [row[column]]) if name]
        for row in dataset.data.values()
    ]
    sampler = ReproducibleWeightedRandomSampler(
        balanced_weights(labels), num_samples=len(labels), replacement=True, seed=hparams["seed"]
    )
    return dict(loader, sampler=sampler, drop_last=drop_last)
