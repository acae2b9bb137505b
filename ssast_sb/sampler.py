"""A sampler whose epochs are fixed-size slices of an endless shuffled stream.

The original pretraining validates, steps its learning-rate scheduler and
saves a checkpoint every ``epoch_iter`` optimiser steps (4000 base, 800 tiny;
SSAST_SPEC.md c.5), not once per pass over the data. With this sampler a
SpeechBrain epoch is exactly such an interval: epoch ``e`` yields items
``[e * n, (e + 1) * n)`` of the concatenation of shuffled passes over the
dataset, each pass a permutation drawn from ``seed`` and the pass number. The
order depends only on the epoch, so SpeechBrain's intra-epoch checkpoints
resume at the exact batch.

Authors
 * ssast-sb contributors
"""

import torch
from torch.utils.data import Sampler


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
        if dataset_size <= 0 or samples_per_epoch <= 0:
            raise ValueError("IntervalSampler needs a non-empty dataset and interval")
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
