"""The MSPM pretraining Brain (docs/fidelity.md c).

One training step draws two independent masks, runs the discriminative and
the generative pass (as one encoder call on a doubled batch) and returns
``nce + 10 * mse``. The optimisation follows the original trainer by default:
Adam, the staircase warm-up, ReduceLROnPlateau on the validation masked-patch
classification (MPC) accuracy, fp32 and no gradient clipping. The best
checkpoint is chosen by validation MPC accuracy (the original picked it by the
last training batch's accuracy, docs/fidelity.md f.7).

Hyperparameters read from the YAML: ``model`` (an
:class:`~ssast_sb.models.SSASTPretrainModel`, also in ``modules``), ``lr``,
``warmup`` (bool), ``warmup_steps``, ``warmup_interval``, ``plateau_factor``,
``plateau_patience``, ``num_masked``, ``valid_num_masked``, ``seed``,
``train_logger``, ``keep_checkpoints`` and ``epoch_counter``; ``passes`` (the
original's run length, :func:`pass_budget`) when the YAML has it.

Authors
 * ssast-sb contributors
"""

import logging
import os
from pathlib import Path

import speechbrain as sb
import torch

from ssast_sb.brains.common import RunningMeans, SeededGenerator, apply_warmup
from ssast_sb.brains.run_checks import RunChecks
from ssast_sb.brains.run_record import open_run
from ssast_sb.checkpoints import export_original, save_speechbrain_checkpoint
from ssast_sb.dataio import (
    SkippingPaddedBatch,
    cropped_fbank_pipeline,
    fbank_pipeline,
    manifest_dataset,
)
from ssast_sb.errors import OptionError
from ssast_sb.fileio import save_atomic
from ssast_sb.models import SSASTPretrainModel, check_mask_count
from ssast_sb.sampler import IntervalSampler
from ssast_sb.schedules import current_lr

logger = logging.getLogger(__name__)

#: Quantities averaged and logged for each stage.
LOGGED = ("loss", "nce", "mse", "acc", "chance")


class MSPMBrain(RunChecks, sb.core.Brain):
    """Masked spectrogram patch modeling in SpeechBrain's training loop.

    The batch must provide ``fbank``: ``(B, T, F)`` normalised features of a
    fixed length (see :func:`ssast_sb.dataio.fbank_pipeline`).
    """

    def on_fit_start(self):
        """Seeds the mask generator per run and per DDP rank before recovery."""
        check_mask_count(self.hparams.valid_num_masked, self.model, "--valid_num_masked")
        # SpeechBrain seeds every rank alike; the rank is mixed in so ranks mask differently.
        self.mask_rng = SeededGenerator(self.hparams.seed)
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("mask_rng", self.mask_rng)
        super().on_fit_start()
        self.check_run()

    def init_optimizers(self):
        """Adam from the YAML plus the original ReduceLROnPlateau (mode max)."""
        super().init_optimizers()
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer,
            mode="max",
            factor=self.hparams.plateau_factor,
            patience=self.hparams.plateau_patience,
        )
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("plateau", self.plateau)

    @property
    def model(self):
        """The pretraining model without any DDP wrapper."""
        return self.hparams.model

    def draw_masks(self, batch_size, stage):
        """The two masks of a batch, drawn on the CPU by the model's own ``draw_masks``.

        Training draws ``model.num_masked`` patches from the checkpointed generator;
        evaluation draws ``valid_num_masked`` from a generator reseeded at every
        stage start, so every validation sees the same masks. The masks stay on the
        CPU (moved to the device by :meth:`compute_forward`), so the sequence is the
        same on every device.
        """
        if stage == sb.Stage.TRAIN:
            return self.model.draw_masks(batch_size, self.mask_rng.generator, "cpu")
        count = self.hparams.valid_num_masked
        return self.model.draw_masks(batch_size, self.eval_rng, "cpu", num_masked=count)

    def compute_forward(self, batch, stage):
        """Draws two masks and runs both MSPM passes (padding-aware when the model is)."""
        batch = batch.to(self.device)
        features, _ = batch.fbank
        masks = self.draw_masks(features.shape[0], stage)
        mpc_mask, mpg_mask = (mask.to(self.device, non_blocking=True) for mask in masks)
        num_frames = batch.num_frames if self.model.padding_aware else None
        return self.modules.model(features, mpc_mask, mpg_mask, num_frames=num_frames)

    def compute_objectives(self, predictions, batch, stage):
        """Returns the joint loss and records nce, mse and MPC accuracy."""
        self.running.update(predictions, weight=len(batch.id))
        return predictions["loss"]

    def on_fit_batch_start(self, batch, should_step):
        """The original staircase warm-up (lr 0 for the first 50 steps)."""
        if should_step:
            apply_warmup(self)

    def on_stage_start(self, stage, epoch=None):
        """Resets the running means; evaluation reuses the same masks every time."""
        self.running = RunningMeans(LOGGED)
        if stage != sb.Stage.TRAIN:
            self.eval_rng = torch.Generator(device="cpu").manual_seed(self.hparams.seed)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs, steps the plateau scheduler and keeps the best checkpoint."""
        stats = self.running.summarize()
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        if stage == sb.Stage.VALID:
            lr = current_lr(self.optimizer)
            self.plateau.step(stats["acc"])
            meta = {"epoch": epoch, "optimizer_step": self.optimizer_step, "lr": lr}
            self.hparams.train_logger.log_stats(
                stats_meta=meta, train_stats=self.train_stats, valid_stats=stats
            )
            self.checkpointer.save_and_keep_only(
                meta={
                    "acc": stats["acc"],
                    "chance": stats["chance"],
                    "loss": stats["loss"],
                    "epoch": epoch,
                    "optimizer_step": self.optimizer_step,
                },
                max_keys=["acc"],
                num_to_keep=self.hparams.keep_checkpoints,
            )
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )
        self.last_eval_stats = stats


def train_loader_options(hparams, dataset_size, world_size=1, grad_accumulation=1):
    """Loader options; with ``steps_per_epoch`` an epoch is that many optimiser steps.

    Arguments
    ---------
    hparams : dict
        Needs ``train_dataloader_opts`` (with ``batch_size``), ``steps_per_epoch``
        (null: one pass per epoch) and ``seed``.
    dataset_size : int
        Items in the training set.
    world_size : int
        DDP processes.
    grad_accumulation : int
        Batches per optimiser step.

    Returns
    -------
    dict
        Keyword arguments for ``Brain.fit``'s train loader.

    Example
    -------
    >>> opts = train_loader_options(
    ...     {"train_dataloader_opts": {"batch_size": 4}, "steps_per_epoch": 10, "seed": 0}, 100)
    >>> len(opts["sampler"]), opts["collate_fn"].__name__
    (40, 'SkippingPaddedBatch')
    """
    options = dict(hparams["train_dataloader_opts"], collate_fn=SkippingPaddedBatch)
    steps = hparams["steps_per_epoch"]
    if steps:
        samples = steps * options["batch_size"] * world_size * grad_accumulation
        options["sampler"] = IntervalSampler(dataset_size, samples, seed=hparams["seed"])
        options.pop("shuffle", None)
    else:
        options.setdefault("shuffle", True)
    return options


def export_summary(meta, total_steps):
    """How far an exported pretraining got, from its checkpoint's meta, as one phrase.

    Arguments
    ---------
    meta : dict
        The best checkpoint's meta: ``acc``, and ``chance`` and ``optimizer_step``
        (absent from checkpoints of earlier versions).
    total_steps : int or None
        Optimiser steps of the whole run.

    Returns
    -------
    str

    Example
    -------
    >>> export_summary({"acc": 0.3, "chance": 0.1, "optimizer_step": 240}, 240)
    'best validation masked-patch accuracy 0.300, 3.0x a random guess (0.100), at step 240 of 240'
    >>> print(export_summary({"acc": 0.1, "chance": 0.1, "optimizer_step": 40}, 40)[-64:])
    step 40 of 40: NO BETTER THAN A RANDOM GUESS, it has not learned
    """
    acc, chance = meta["acc"], meta.get("chance")
    text = f"best validation masked-patch accuracy {acc:.3f}"
    if chance:
        text += f", {acc / chance:.1f}x a random guess ({chance:.3f})"
    step = meta.get("optimizer_step")
    if step is not None:
        text += f", at step {step}" + (f" of {total_steps}" if total_steps else "")
    if chance and acc < UNTRAINED_RATIO * chance:
        text += ": NO BETTER THAN A RANDOM GUESS, it has not learned"
    return text


#: Below this multiple of a random guess's accuracy, an exported model is called untrained.
UNTRAINED_RATIO = 1.2


def export_pretrained(brain, hparams):
    """Writes the best model as a SpeechBrain checkpoint and as an original ``.pth``.

    The ``.pth`` holds only what the run trained under the original names: the
    encoder, the MSPM heads and the mask embedding of an :class:`SSASTPretrainModel`;
    the encoder alone for an MAE-style model, whose decoder has no original
    counterpart (its full state is in the ``.ckpt``). The log line that announces
    it says how far the run got (:func:`export_summary`).

    Arguments
    ---------
    brain : MSPMBrain
        A Brain after ``fit``.
    hparams : dict
        Needs ``pretrained_folder``.

    Returns
    -------
    dict
        Paths of ``ssast_pretrained.ckpt`` (our layout) and ``ssast_pretrained.pth``
        (the original layout, loadable by the original code and by
        :func:`ssast_sb.checkpoints.encoder_from_original`), and ``summary``.
    """
    folder = Path(hparams["pretrained_folder"])
    paths = {"ckpt": folder / "ssast_pretrained.ckpt", "pth": folder / "ssast_pretrained.pth"}
    best = brain.checkpointer.find_checkpoint(max_key="acc")
    steps = brain.steps_per_epoch
    total = steps * hparams["epoch_counter"].limit if steps else None
    summary = export_summary(best.meta, total) if best is not None else "no checkpoint"
    if sb.utils.distributed.if_main_process():
        brain.checkpointer.recover_if_possible(max_key="acc")
        save_speechbrain_checkpoint(brain.model, paths["ckpt"])
        trained = brain.model
        if not isinstance(trained, SSASTPretrainModel):
            trained = brain.model.encoder
            name = type(brain.model).__name__
            logger.info("Exporting the encoder only: %s has no original MSPM heads", name)
        save_atomic(export_original(trained), paths["pth"])
        logger.info("Pretrained SSAST written to %s: %s", folder, summary)
    sb.utils.distributed.ddp_barrier()
    return {**{name: str(path) for name, path in paths.items()}, "summary": summary}


def run_pretraining(hparams, run_opts, manifests, stage=None):
    """Builds the datasets, fits an :class:`MSPMBrain` and exports the best model.

    A recipe's run first checks and writes its run record
    (:func:`ssast_sb.brains.run_record.open_run`).

    Arguments
    ---------
    hparams : dict
        The loaded YAML (see the module docstring and ``hparams/pretrain_*.yaml``).
    run_opts : dict
        SpeechBrain run options from the command line.
    manifests : dict
        ``{"train": csv, "valid": csv}``.
    stage : dict, optional
        Which run of its recipe this is (default ``{"name": "pretraining"}``).

    Returns
    -------
    tuple
        The Brain and what :func:`export_pretrained` returns.
    """
    stage = stage or {"name": "pretraining"}
    open_run(hparams["checkpointer"].checkpoints_dir, stage, run_opts, manifests)
    datasets = {}
    for split, path in manifests.items():
        if hparams["model"].padding_aware:
            pipeline = cropped_fbank_pipeline(
                hparams["frontend"], hparams["on_bad_audio"], random_crop=split == "train"
            )
            keys = ["id", "fbank", "num_frames"]
        else:
            pipeline = fbank_pipeline(hparams["frontend"], hparams["on_bad_audio"])
            keys = ["id", "fbank"]
        datasets[split] = manifest_dataset(path, [pipeline], keys)
    brain = MSPMBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.allow_zero_lr = getattr(run_opts, "allow_zero_lr", False)
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    brain.step_budget = pass_budget(
        hparams, len(datasets["train"]), world_size, brain.grad_accumulation_factor
    )
    loader = train_loader_options(
        hparams, len(datasets["train"]), world_size, brain.grad_accumulation_factor
    )
    brain.fit(
        hparams["epoch_counter"],
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=loader,
        valid_loader_kwargs=dict(hparams["valid_dataloader_opts"], collate_fn=SkippingPaddedBatch),
    )
    return brain, export_pretrained(brain, hparams)


def pass_budget(hparams, pool_size, world_size=1, grad_accumulation=1):
    """The original's run length: ``passes`` passes over the pool, each ``pool // batch`` steps.

    The original trains ``n_epochs`` epochs of a loader that drops the last
    partial batch (its ``run.py``), so the run's length follows the pool size.

    Arguments
    ---------
    hparams : dict
        ``passes`` (null: None, the epochs decide) and ``train_dataloader_opts``.
    pool_size : int
        Clips of the training pool.
    world_size, grad_accumulation : int
        DDP processes and batches per optimiser step.

    Returns
    -------
    int or None
        Optimiser steps of the run.

    Example
    -------
    >>> opts = {"passes": 10, "train_dataloader_opts": {"batch_size": 120}}
    >>> pass_budget(opts, 120_000), pass_budget(opts, 120_119), pass_budget(opts, 120_000, 4)
    (10000, 10000, 2500)
    >>> pass_budget({"passes": None, "train_dataloader_opts": {"batch_size": 8}}, 100) is None
    True
    """
    passes = hparams.get("passes")
    if not passes:
        return None
    clips_per_step = hparams["train_dataloader_opts"]["batch_size"] * world_size * grad_accumulation
    steps_per_pass = pool_size // clips_per_step
    if steps_per_pass == 0:
        raise OptionError(
            f"The pool holds {pool_size} clips, fewer than one optimiser step takes "
            f"({clips_per_step}: --batch_size x processes x --grad_accumulation_factor): pass a "
            "smaller --batch_size, or --passes null to set the run in --number_of_epochs."
        )
    return passes * steps_per_pass


#: YAML keys passed to :func:`ssast_sb.data.pretraining.prepare_pretraining_data`.
DATA_KEYS = (
    "audioset_folder",
    "audioset_train_segments",
    "audioset_valid_segments",
    "librispeech_folder",
    "librispeech_train_splits",
    "librispeech_valid_splits",
    "extra_sources",
    "valid_source",
    "seed",
    "on_bad_audio",
)
