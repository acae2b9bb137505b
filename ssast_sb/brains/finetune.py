"""The fine-tuning Brain for clip classification (SSAST_SPEC.md section d.1).

By default it follows the original fine-tuning trainer: Adam with two
parameter groups (the backbone at ``lr``, the ``mlp_head`` at
``lr * head_lr``), weight decay 5e-7, betas (0.95, 0.999), the optional
staircase warm-up, a MultiStepLR stepped once per epoch, cross-entropy or
binary cross-entropy, and the best checkpoint chosen on validation accuracy.

Hyperparameters read from the YAML: ``model`` (an
:class:`~ssast_sb.models.SSASTClassifier`, also in ``modules``), ``loss``
(``ce`` or ``bce``), ``lr``, ``head_lr``, ``warmup``, ``warmup_steps``,
``warmup_interval``, ``lr_milestones``, ``lr_decay``, ``keep_checkpoints``,
``train_logger`` and ``epoch_counter``.

Authors
 * ssast-sb contributors
"""

from pathlib import Path

import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.utils.epoch_loop import EpochCounter
from speechbrain.utils.train_logger import FileTrainLogger

from ssast_sb.brains.common import AtomicCheckpointer, RunningMeans
from ssast_sb.schedules import set_lr, staircase_warmup_lr

#: Quantities averaged and logged for each stage.
LOGGED = ("loss", "acc")


def classification_loss(logits, targets, loss="ce"):
    """Cross-entropy on class indices, or BCE on (soft) multi-hot targets.

    Arguments
    ---------
    logits : torch.Tensor
        ``(B, C)``.
    targets : torch.Tensor
        ``(B,)`` class indices for ``ce``; ``(B, C)`` in [0, 1] for ``bce``.
    loss : str
        ``ce`` or ``bce``.

    Returns
    -------
    torch.Tensor
        Scalar.

    Example
    -------
    >>> logits = torch.tensor([[2.0, 0.0]])
    >>> round(classification_loss(logits, torch.tensor([0])).item(), 4)
    0.1269
    >>> round(classification_loss(logits, torch.tensor([[1.0, 0.0]]), "bce").item(), 4)
    0.41
    """
    logits = logits.float()
    if loss == "ce":
        return F.cross_entropy(logits, targets.long())
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(logits, targets.float())
    raise ValueError(f"Unknown loss {loss!r}; use 'ce' or 'bce'")


def top1_hits(logits, targets):
    """Per-clip top-1 hits; for multi-hot targets, the target's argmax is the class.

    Example
    -------
    >>> top1_hits(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))
    tensor([1., 0.])
    """
    if targets.dim() == 2:
        targets = targets.argmax(dim=-1)
    return (logits.argmax(dim=-1) == targets).float()


class ClassifierBrain(sb.core.Brain):
    """Fine-tunes an :class:`~ssast_sb.models.SSASTClassifier`.

    The batch must provide ``fbank`` ``(B, T, F)`` and ``target``: a class
    index ``(1,)`` per clip for ``ce``, or a multi-hot ``(C,)`` vector for ``bce``.
    """

    def init_optimizers(self):
        """Two parameter groups: backbone at ``lr``, head at ``lr * head_lr``."""
        model = self.hparams.model
        head_params = list(model.mlp_head.parameters())
        head_ids = {id(p) for p in head_params}
        backbone = [p for p in model.parameters() if id(p) not in head_ids]
        self.lr_multipliers = [1.0, self.hparams.head_lr]
        self.optimizer = self.opt_class(
            [
                {"params": backbone, "lr": self.hparams.lr},
                {"params": head_params, "lr": self.hparams.lr * self.hparams.head_lr},
            ]
        )
        self.optimizers_dict = {"optimizer": self.optimizer}
        self.lr_schedule = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=list(self.hparams.lr_milestones), gamma=self.hparams.lr_decay
        )
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("optimizer", self.optimizer)
            self.checkpointer.add_recoverable("lr_schedule", self.lr_schedule)

    def compute_forward(self, batch, stage):
        """Logits of the batch's features."""
        batch = batch.to(self.device)
        features, _ = batch.fbank
        return self.modules.model(features)

    def compute_objectives(self, predictions, batch, stage):
        """The classification loss; records loss and accuracy."""
        targets = batch.target.data.to(self.device)
        if self.hparams.loss == "ce":
            targets = targets.view(-1)
        loss = classification_loss(predictions, targets, self.hparams.loss)
        hits = top1_hits(predictions.detach(), targets)
        self.running.update({"loss": loss, "acc": hits.mean()}, weight=len(batch.id))
        if stage != sb.Stage.TRAIN:
            self.outputs.append((batch.id, predictions.detach().float().cpu(), targets.cpu()))
        return loss

    def on_fit_batch_start(self, batch, should_step):
        """The optional staircase warm-up, applied to both groups."""
        if should_step and self.hparams.warmup:
            lr = staircase_warmup_lr(
                self.optimizer_step,
                self.hparams.lr,
                self.hparams.warmup_steps,
                self.hparams.warmup_interval,
            )
            if lr is not None:
                set_lr(self.optimizer, lr, self.lr_multipliers)

    def on_stage_start(self, stage, epoch=None):
        """Resets the running means and the collected outputs."""
        self.running = RunningMeans(LOGGED)
        self.outputs = []

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs, steps the epoch schedule and keeps the best checkpoint by accuracy."""
        stats = self.running.summarize()
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        if stage == sb.Stage.VALID:
            meta = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]}
            self.lr_schedule.step()
            self.hparams.train_logger.log_stats(
                stats_meta=meta, train_stats=self.train_stats, valid_stats=stats
            )
            self.checkpointer.save_and_keep_only(
                meta={"acc": stats["acc"], "epoch": epoch},
                max_keys=["acc"],
                num_to_keep=self.hparams.keep_checkpoints,
            )
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )
        self.last_eval_stats = stats


def fit_classifier(model, datasets, settings, run_opts, folder):
    """Fine-tunes ``model`` with its own checkpointer and log in ``folder``, then tests.

    Arguments
    ---------
    model : SSASTClassifier
        Model to train (pretrained or fresh).
    datasets : dict
        ``train``, ``valid`` and optionally ``test`` datasets providing ``fbank``
        and ``target``.
    settings : dict
        ``opt_class``, ``lr``, ``head_lr``, ``loss``, ``number_of_epochs``,
        ``batch_size``, ``num_workers``, ``warmup``, ``warmup_steps``,
        ``warmup_interval``, ``lr_milestones``, ``lr_decay``, ``keep_checkpoints``
        and ``max_grad_norm``.
    run_opts : dict
        SpeechBrain run options (device, precision, ...).
    folder : str
        Output folder of this run.

    Returns
    -------
    brain : ClassifierBrain
    test_stats : dict or None
        Loss and accuracy on ``test`` with the best validation checkpoint.
    """
    folder = Path(folder)
    counter = EpochCounter(settings["number_of_epochs"])
    checkpointer = AtomicCheckpointer(folder / "save", {"model": model, "counter": counter})
    hparams = dict(
        settings,
        model=model,
        epoch_counter=counter,
        train_logger=FileTrainLogger(folder / "train_log.txt"),
    )
    brain = ClassifierBrain(
        modules={"model": model},
        opt_class=settings["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=checkpointer,
    )
    loader = {"batch_size": settings["batch_size"], "num_workers": settings["num_workers"]}
    brain.fit(
        counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=dict(loader, shuffle=True),
        valid_loader_kwargs=loader,
    )
    test_stats = None
    if datasets.get("test") is not None:
        test_stats = brain.evaluate(datasets["test"], max_key="acc", test_loader_kwargs=loader)
        test_stats = brain.last_eval_stats
    return brain, test_stats
