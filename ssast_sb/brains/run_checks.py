"""Checks at the start of a run: settings that would give a wrong or slow run without a word.

* :func:`schedule_warnings`: a warm-up or learning-rate milestones that the run
  never reaches (a short run whose learning rate stays 0 trains nothing and
  reports chance accuracy);
* :func:`precision_warning`: a ``--precision`` that the device runs slowly
  (bf16 autocast on a CPU without native bf16 is emulated, many times slower
  than fp32).

:class:`RunChecks` is the Brain mixin that calls them once the training loader
and the recovered state are known.

Authors
 * ssast-sb contributors
"""

import logging
import math
from pathlib import Path

import speechbrain as sb
import torch

from ssast_sb.compat import cuda_has_native_bf16
from ssast_sb.console import workers_for_this_machine

logger = logging.getLogger(__name__)


def warmup_peak(total_steps, lr, warmup_steps, interval):
    """The highest rate the original staircase warm-up reaches in ``total_steps`` steps.

    Arguments
    ---------
    total_steps : int
        Optimiser steps of the whole run.
    lr : float
        Target rate.
    warmup_steps, interval : int
        See :func:`ssast_sb.schedules.staircase_warmup_lr`.

    Returns
    -------
    float

    Example
    -------
    >>> warmup_peak(40, 1e-3, 1000, 50), warmup_peak(120, 1e-3, 1000, 50)
    (0.0, 0.0001)
    >>> warmup_peak(5000, 1e-3, 1000, 50)
    0.001
    """
    if total_steps > warmup_steps:
        return lr
    last = (total_steps - 1) // interval * interval  # the last step that sets a rate
    return lr * max(last, 0) / warmup_steps


def schedule_warnings(
    total_steps, epochs, lr, warmup=False, warmup_steps=0, interval=1, milestones=None
):
    """What in a learning-rate schedule the run will not reach, as messages.

    Arguments
    ---------
    total_steps : int
        Optimiser steps the run takes in all.
    epochs : int
        Epochs of the run.
    lr : float
        The YAML's rate.
    warmup : bool
        Whether the staircase warm-up is on.
    warmup_steps, interval : int
        Its length and step (see :func:`ssast_sb.schedules.staircase_warmup_lr`).
    milestones : sequence of int, optional
        Epochs after which a MultiStepLR decays the rate.

    Returns
    -------
    list of str
        Empty when the run reaches everything.

    Example
    -------
    >>> warmup, decay = schedule_warnings(40, 2, 2.5e-4, True, 1000, 50, range(5, 1000))
    >>> print(warmup[:95])
    The warm-up lasts 1000 optimiser steps but the run takes 40 (2 epochs): the learning rate stays
    >>> print(decay)
    The learning rate decays after epoch 5 (lr_milestones) but the run has 2 epochs: it never decays
    >>> schedule_warnings(5000, 10, 1e-3, True, 1000, 50, [5, 6])
    []
    """
    messages = []
    if warmup and total_steps <= warmup_steps:
        peak = warmup_peak(total_steps, lr, warmup_steps, interval)
        reached = (
            "the learning rate stays 0 for the whole run"
            if peak == 0
            else f"the learning rate reaches {peak:.2e} of {lr:.2e}"
        )
        messages.append(
            f"The warm-up lasts {warmup_steps} optimiser steps but the run takes {total_steps} "
            f"({epochs} epochs): {reached}. Lower warmup_steps (e.g. --warmup_steps "
            f"{max(1, total_steps // 10)}), set --warmup False, or train longer"
        )
    milestones = sorted(milestones or [])
    if milestones and milestones[0] > epochs:
        messages.append(
            f"The learning rate decays after epoch {milestones[0]} (lr_milestones) but the run "
            f"has {epochs} epochs: it never decays"
        )
    return messages


#: CPU flags of native bf16 arithmetic (Linux ``/proc/cpuinfo``).
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU's feature flags, or None where they cannot be read (not Linux).

    Example
    -------
    >>> isinstance(cpu_flags(), (set, type(None)))
    True
    """
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return None


def precision_warning(device, precision, flags=None):
    """A warning when ``device`` runs ``precision`` slowly, saying what to use instead.

    Arguments
    ---------
    device : str or torch.device
        The run's device.
    precision : str
        ``fp32``, ``fp16`` or ``bf16``.
    flags : set of str, optional
        CPU flags (default: read from ``/proc/cpuinfo``).

    Returns
    -------
    str or None

    Example
    -------
    >>> print(precision_warning("cpu", "bf16", flags={"avx2", "fma"})[-82:])
    (the tiny joint step ran 17 times slower on an AVX2 machine); use --precision fp32
    >>> precision_warning("cpu", "bf16", flags={"avx512_bf16"}) is None
    True
    >>> precision_warning("cpu", "fp32") is None
    True
    """
    device = torch.device(device)
    if precision == "fp32":
        return None
    if device.type == "cpu" and precision == "bf16":
        flags = cpu_flags() if flags is None else flags
        if flags is None or any(flag in flags for flag in NATIVE_BF16_FLAGS):
            return None
        return (
            "--precision bf16 on a CPU without native bf16 (no AVX512-BF16 or AMX): autocast "
            "emulates it, several times slower than fp32 (the tiny joint step ran 17 times "
            "slower on an AVX2 machine); use --precision fp32"
        )
    if device.type == "cuda" and precision == "bf16" and torch.cuda.is_available():
        if not cuda_has_native_bf16():
            name = torch.cuda.get_device_name(device)
            return f"--precision bf16 on {name}, which has no native bf16; use --precision fp16"
    return None


class ZeroLearningRateError(SystemExit):
    """A run whose learning rate stays 0 throughout: it would export an untrained model."""


def schedule_line(epochs, steps_per_epoch, done, epochs_done, step_budget=None):
    """The run's length, and after a resume what is done and what is left, in numbers that add up.

    Arguments
    ---------
    epochs : int
        Epochs of the whole run.
    steps_per_epoch : int
        Optimiser steps of one epoch.
    done : int
        Optimiser steps already taken (recovered from a checkpoint).
    epochs_done : int
        Epochs finished.
    step_budget : int, optional
        A run length in optimiser steps, which ends the last epoch early.

    Returns
    -------
    str

    Example
    -------
    >>> schedule_line(2, 15, 0, 0)
    '2 epochs x 15 optimiser steps = 30 steps'
    >>> schedule_line(2, 15, 10, 0)
    '2 epochs x 15 optimiser steps = 30 steps; resumed after 10 (epoch 1 of 2 under way): 20 left'
    >>> schedule_line(2, 15, 30, 2)
    '2 epochs x 15 optimiser steps = 30 steps; all 30 done: the run has finished'
    >>> schedule_line(2, 15, 0, 0, step_budget=25)
    '25 optimiser steps (2 epochs of 15, the last one cut at the budget)'
    """
    total = epochs * steps_per_epoch
    line = f"{epochs} epochs x {steps_per_epoch} optimiser steps = {total} steps"
    if step_budget is not None:
        total = step_budget
        line = (
            f"{total} optimiser steps ({epochs} epochs of {steps_per_epoch}"
            + (", the last one cut at the budget)" if total < epochs * steps_per_epoch else ")")
        )
    if epochs_done >= epochs:
        return f"{line}; all {done} done: the run has finished"
    if done:
        where = f"epoch {epochs_done + 1} of {epochs} under way"
        line += f"; resumed after {done} ({where}): {max(total - done, 0)} left"
    return line


class RunChecks:
    """Brain mixin: checks schedule and precision at the start of ``fit``; says what a rerun does.

    It records the training loader's length in ``make_dataloader`` and, after
    SpeechBrain's ``on_fit_start`` (so that a resumed run counts only what is
    left), logs the schedule in one line (what is done and left after a resume),
    says when the folder holds a finished run that this call only reloads, warns
    of any of :func:`schedule_warnings` and :func:`precision_warning`, and stops a
    run whose learning rate would stay 0 for the whole run
    (:class:`ZeroLearningRateError`) unless ``allow_zero_lr`` is set (the
    recipes' ``--allow_zero_lr True``). The Brain's hparams need ``lr``,
    ``warmup``, ``warmup_steps``, ``warmup_interval`` and ``epoch_counter``; a
    ``lr_milestones`` attribute is read when the Brain has one.
    """

    #: Set from the recipes' ``--allow_zero_lr True``.
    allow_zero_lr = False
    #: A run length in optimiser steps (set before ``fit``), or None: the epochs decide.
    step_budget = None

    def make_dataloader(self, dataset, stage, *args, **kwargs):
        """SpeechBrain's loader; the training one's length is kept for the checks.

        Its ``num_workers`` is at most the CPU cores here (see
        :func:`ssast_sb.console.workers_for_this_machine`).

        With a :attr:`step_budget`, the run takes the epochs that budget needs
        (the epoch counter's limit), and SpeechBrain's ``optimizer_step_limit``
        ends the last one at the budget: that epoch still validates and saves
        its checkpoint, and a rerun of the finished run trains nothing.
        """
        kwargs = workers_for_this_machine(kwargs)
        loader = super().make_dataloader(dataset, stage, *args, **kwargs)
        if stage == sb.Stage.TRAIN:
            try:
                self.train_batches = len(loader)
            except TypeError:  # an iterable dataset has no length
                self.train_batches = None
            if self.step_budget is not None and self.steps_per_epoch:
                epochs = math.ceil(self.step_budget / self.steps_per_epoch)
                self.hparams.epoch_counter.limit = epochs
                self.optimizer_step_limit = self.step_budget
        return loader

    @property
    def steps_per_epoch(self):
        """Optimiser steps of one epoch (None when the loader has no length).

        SpeechBrain steps after every ``grad_accumulation_factor`` batches and
        drops an unfinished group at the end of an epoch, so an epoch takes the
        whole groups only.
        """
        batches = getattr(self, "train_batches", None)
        if not batches:
            return None
        return batches // self.grad_accumulation_factor

    def check_run(self):
        """Logs the schedule, says if the run has finished, warns; stops a run that cannot learn."""
        warning = precision_warning(self.device, self.precision)
        if warning:
            logger.warning(warning)
        steps_per_epoch = self.steps_per_epoch
        if steps_per_epoch == 0 and not self.debug:
            raise ZeroLearningRateError(
                f"An epoch has {self.train_batches} batches but --grad_accumulation_factor is "
                f"{self.grad_accumulation_factor}: no optimiser step is ever taken, so the run "
                "would export an untrained model. Lower --grad_accumulation_factor or the "
                "batch size."
            )
        if self.debug or not steps_per_epoch:
            return
        counter, hparams = self.hparams.epoch_counter, self.hparams
        epochs = counter.limit
        milestones = list(getattr(hparams, "lr_milestones", None) or [])
        logger.info(
            "Schedule: %s; lr %.2e%s%s",
            schedule_line(
                epochs, steps_per_epoch, self.optimizer_step, counter.current, self.step_budget
            ),
            hparams.lr,
            f", staircase warm-up over {hparams.warmup_steps} steps" if hparams.warmup else "",
            f", decay x{hparams.lr_decay} after epoch {min(milestones)}" if milestones else "",
        )
        if counter.current >= epochs:
            folder = getattr(self.checkpointer, "checkpoints_dir", "the checkpoint folder")
            logger.warning(
                "%s holds a finished run (epoch %d of %d): it is "
                "reloaded, evaluated and exported again; nothing is trained. To train again, "
                "write to another --output_folder or pass --fresh_run True",
                folder,
                counter.current,
                epochs,
            )
            return
        total = self.step_budget or epochs * steps_per_epoch
        warmup = (hparams.warmup_steps, hparams.warmup_interval)
        never_learns = hparams.warmup and warmup_peak(total, hparams.lr, *warmup) == 0
        messages = schedule_warnings(total, epochs, hparams.lr, hparams.warmup, *warmup, milestones)
        if never_learns and not self.allow_zero_lr:
            raise ZeroLearningRateError(
                f"{messages[0]}. The run would train nothing and export an untrained model, so "
                "it stops here. (--allow_zero_lr True runs it anyway.)"
            )
        for message in messages:
            logger.warning(message)
