"""Small pieces shared by the pretraining and fine-tuning Brains.

Authors
 * ssast-sb contributors
"""

import logging
import os
import shutil

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.checkpoints import (
    Checkpoint,
    Checkpointer,
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.distributed import ddp_barrier, if_main_process

from ssast_sb.fileio import save_atomic
from ssast_sb.schedules import set_lr, staircase_warmup_lr


def process_rank():
    """This process's DDP rank (0 when not distributed).

    Example
    -------
    >>> isinstance(process_rank(), int)
    True
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", 0))


@register_checkpoint_hooks
class SeededGenerator:
    """A ``torch.Generator`` seeded from the run seed and the DDP rank, checkpointed.

    SpeechBrain seeds every DDP process with the same seed; mixing the rank in
    makes the processes draw different masks. Its state is saved with the
    checkpoints, so a resumed run continues the same random sequence.

    Arguments
    ---------
    seed : int
        Run seed.
    rank : int
        DDP rank.
    device : str or torch.device
        Device of the generator.

    Example
    -------
    >>> a, b = SeededGenerator(1, 0), SeededGenerator(1, 1)
    >>> torch.equal(torch.rand(3, generator=a.generator), torch.rand(3, generator=b.generator))
    False
    """

    def __init__(self, seed, rank=0, device="cpu"):
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(int(seed) * 1_000_003 + 7919 * int(rank) + 1)

    @mark_as_saver
    def save(self, path):
        """Saves the generator state."""
        save_atomic(self.generator.get_state(), path)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Restores the generator state."""
        del end_of_epoch
        self.generator.set_state(torch.load(path, weights_only=True))


class RunningMeans:
    """Weighted running means of named scalar outputs.

    Arguments
    ---------
    names : sequence of str
        Keys to average.

    Example
    -------
    >>> means = RunningMeans(["loss"])
    >>> means.update({"loss": torch.tensor(1.0)}, weight=1)
    >>> means.update({"loss": torch.tensor(4.0)}, weight=3)
    >>> means.summarize()
    {'loss': 3.25}
    """

    def __init__(self, names):
        self.names = tuple(names)
        self.sums = dict.fromkeys(self.names, 0.0)
        self.weight = 0.0

    def update(self, values, weight=1):
        """Adds one batch's values with a weight (its number of clips)."""
        for name in self.names:
            # Tensors are summed as they are, so no step waits for the device.
            self.sums[name] = self.sums[name] + values[name].detach() * weight
        self.weight += weight

    def summarize(self):
        """The means so far (empty stages give NaN)."""
        return {
            name: (float(self.sums[name]) / self.weight if self.weight else float("nan"))
            for name in self.names
        }


#: Prefix of checkpoint folders still being written (SpeechBrain ignores them).
PARTIAL_PREFIX = ".partial-"


class AtomicCheckpointer(Checkpointer):
    """A SpeechBrain ``Checkpointer`` whose checkpoints appear only once complete.

    SpeechBrain writes a checkpoint's ``CKPT.yaml`` first and its tensors after,
    so a process killed during a save leaves a folder that looks valid and
    fails to load. Here every checkpoint is written into a hidden
    ``.partial-CKPT+...`` folder and renamed when complete; leftovers of a killed
    save are removed on the next recovery.

    Arguments
    ---------
    checkpoints_dir : str
        Folder of the checkpoints.
    recoverables : dict, optional
        Objects to save and load.
    **kwargs
        Other ``Checkpointer`` arguments.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> checkpointer = AtomicCheckpointer(folder, {"layer": torch.nn.Linear(2, 2)})
    >>> ckpt = checkpointer.save_checkpoint()
    >>> ckpt.path.name.startswith("CKPT+"), sorted(p.name for p in ckpt.path.iterdir())
    (True, ['CKPT.yaml', 'layer.ckpt'])
    """

    def _new_checkpoint_dirpath(self):
        final = super()._new_checkpoint_dirpath()
        return final.with_name(PARTIAL_PREFIX + final.name)

    def save_checkpoint(self, *args, **kwargs):
        """Saves into a partial folder, then renames it to its final name.

        Under DDP every process waits for the rename: SpeechBrain's deletion of old
        checkpoints lists the folder on every process and calls one collective per
        deletion, so a process that listed it before the rename would disagree on
        the deletions and the processes would block each other.
        """
        ckpt = super().save_checkpoint(*args, **kwargs)
        if ckpt is not None and ckpt.path.name.startswith(PARTIAL_PREFIX):
            final = ckpt.path.with_name(ckpt.path.name[len(PARTIAL_PREFIX) :])
            os.replace(ckpt.path, final)
            files = {name: final / path.name for name, path in ckpt.paramfiles.items()}
            ckpt = Checkpoint(final, ckpt.meta, files)
        ddp_barrier()
        return ckpt

    def recover_if_possible(self, *args, **kwargs):
        """Removes folders of interrupted saves, then recovers as SpeechBrain does."""
        if if_main_process() and self.checkpoints_dir.exists():
            for leftover in self.checkpoints_dir.glob(PARTIAL_PREFIX + "*"):
                logging.getLogger(__name__).warning("Removing interrupted checkpoint %s", leftover)
                shutil.rmtree(leftover, ignore_errors=True)
        return super().recover_if_possible(*args, **kwargs)


def load_recipe(argv):
    """What every recipe does first: parse, start DDP if asked, load the YAML, make the folder.

    Arguments
    ---------
    argv : list of str
        ``hparams.yaml [--key value ...]`` plus SpeechBrain's run options.

    Returns
    -------
    tuple
        ``(hparams, run_opts)``.
    """
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    sb.utils.distributed.ddp_init_group(run_opts)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    return hparams, run_opts


def apply_warmup(brain, multipliers=None):
    """The original staircase warm-up on a Brain's optimiser, if ``hparams.warmup``.

    Reads ``lr``, ``warmup_steps`` and ``warmup_interval`` from the Brain's hparams and
    its ``optimizer_step`` counter (see :func:`ssast_sb.schedules.staircase_warmup_lr`).
    """
    if not brain.hparams.warmup:
        return
    lr = staircase_warmup_lr(
        brain.optimizer_step,
        brain.hparams.lr,
        brain.hparams.warmup_steps,
        brain.hparams.warmup_interval,
    )
    if lr is not None:
        set_lr(brain.optimizer, lr, multipliers)
