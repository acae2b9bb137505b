"""The fine-tuning Brain for clip classification (docs/fidelity.md d).

By default it follows the original fine-tuning trainer: features computed as
the original loader (mixup on waveforms, SpecAugment before normalisation,
noise and roll after it), Adam with two parameter groups (the backbone at
``lr``, the head at ``lr * head_lr``), weight decay 5e-7, betas (0.95, 0.999),
the optional staircase warm-up, a MultiStepLR stepped once per epoch,
cross-entropy or binary cross-entropy, and the best checkpoint chosen on the
validation metric (accuracy, or mAP for multi-label tasks).

One departure: a mixup partner is drawn from the same batch rather than from
the whole dataset (batches are shuffled, so the partner is a random clip of the
epoch, but one of the batch's); it is read from the batch as it came, so every
mix holds two unmixed clips, as the original's.

Hyperparameters read from the YAML: ``model``, ``frontend`` (an
:class:`~ssast_sb.frontend.SSASTFbank`), ``augmentation`` (a
:class:`~ssast_sb.augment.FinetuneAugmentation`), ``num_classes``,
``multi_label``, ``loss`` (``ce`` or ``bce``), ``lr``, ``head_lr``, ``layer_decay``,
``pool_real_audio`` (mean pooling over the patches of real audio only, a
departure; the original averages the padding's patches too), ``eval_windows``
(validation and test clips longer than the input scored by windows, a
departure; the original cuts them), ``warmup``,
``warmup_steps``, ``warmup_interval``, ``lr_milestones``, ``lr_decay``, optionally
``lr_schedule`` (``milestones``, the default, or ``cosine`` with ``warmup_fraction``),
``keep_checkpoints``, ``seed``, ``train_logger`` and ``epoch_counter``; optionally
``total_steps`` (a run length in optimiser steps, the SUPERB recipes': the last
epoch ends at the budget) and ``drop_last`` (read by the training loader).

Authors
 * ssast-sb contributors
"""

import json
import logging
from pathlib import Path

import numpy as np
import speechbrain as sb
import torch
import torch.nn.functional as F

from ssast_sb.augment import draw_mixup_lambda, mixup_waveforms
from ssast_sb.batch_padding import counted_frames
from ssast_sb.brains.common import (
    GlobalNormClipping,
    RunningMeans,
    SeededGenerator,
    apply_warmup,
    load_hparams,
)
from ssast_sb.brains.run_checks import RunChecks
from ssast_sb.brains.run_record import open_run
from ssast_sb.checkpoints import describe_config
from ssast_sb.dataio import classification_datasets
from ssast_sb.fileio import atomic_open, save_atomic
from ssast_sb.inference import export_inference_folder
from ssast_sb.metrics import ScoreStats
from ssast_sb.reports import summarize_folds, write_class_report
from ssast_sb.sampler import classification_loader_options
from ssast_sb.schedules import layerwise_param_groups, warmup_cosine_scale
from ssast_sb.windows import clip_frames, combine_windows, window_bounds

logger = logging.getLogger(__name__)


def classification_loss(logits, targets, loss="ce"):
    """Cross-entropy on class indices or soft targets, or BCE on (soft) multi-hot targets.

    Arguments
    ---------
    logits : torch.Tensor
        ``(B, C)``.
    targets : torch.Tensor
        ``(B,)`` class indices or ``(B, C)`` probabilities; for ``bce``, indices are
        taken as one-hot targets.
    loss : str
        ``ce`` or ``bce``.

    Returns
    -------
    torch.Tensor
        Scalar, computed in fp32.

    Example
    -------
    >>> logits = torch.tensor([[2.0, 0.0]])
    >>> round(classification_loss(logits, torch.tensor([0])).item(), 4)
    0.1269
    >>> round(classification_loss(logits, torch.tensor([[1.0, 0.0]]), "bce").item(), 2)
    0.41
    >>> round(classification_loss(logits, torch.tensor([0]), "bce").item(), 2)
    0.41
    """
    logits = logits.float()
    if loss == "ce":
        return F.cross_entropy(logits, targets if targets.dim() == 2 else targets.long())
    if loss == "bce":
        if targets.dim() == 1:
            # Single-label tasks trained with BCE on one-hot targets (the original SC-V2).
            targets = F.one_hot(targets.long(), logits.shape[-1])
        return F.binary_cross_entropy_with_logits(logits, targets.float())
    raise ValueError(f"Unknown loss {loss!r}; use 'ce' or 'bce'")


def top1_hits(logits, targets):
    """Per-clip top-1 hits; for soft or multi-hot targets, the target's argmax is the class.

    Example
    -------
    >>> top1_hits(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))
    tensor([1., 0.])
    """
    if targets.dim() == 2:
        targets = targets.argmax(dim=-1)
    return (logits.argmax(dim=-1) == targets).float()


class ClassifierBrain(RunChecks, GlobalNormClipping, sb.core.Brain):
    """Fine-tunes an SSAST classifier on waveforms.

    The batch must provide ``sig`` (waveforms with relative lengths) and
    ``target``: a class index ``(1,)`` per clip, or a multi-hot ``(C,)`` vector
    when ``multi_label``.

    Gradients are clipped at ``max_grad_norm`` by their global norm over the
    backbone and the head together, as s3prl does (see
    :class:`~ssast_sb.brains.common.GlobalNormClipping`; SpeechBrain would clip
    the backbone's group alone). Every augmentation draw comes from a CPU
    generator, whatever the device.
    """

    def on_fit_start(self):
        """Seeds the augmentation generator per run and rank before recovery."""
        self.aug_rng = SeededGenerator(self.hparams.seed)
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("augmentation_rng", self.aug_rng)
        super().on_fit_start()
        self.check_run()

    def init_optimizers(self):
        """Parameter groups, the optimiser from the YAML and the per-epoch MultiStepLR.

        With ``layer_decay: 1.0`` (the original) there are two groups, the backbone
        at ``lr`` and the head at ``lr * head_lr``. Below 1, every block gets its own
        rate, ``lr * layer_decay ** (depth - i)`` for block ``i`` and one more factor
        for the embeddings (:func:`ssast_sb.schedules.layerwise_param_groups`, a
        departure that the small-scale protocol measured). The warm-up and the
        schedule scale every group alike.
        """
        model, lr = self.hparams.model, self.hparams.lr
        if self.hparams.layer_decay != 1.0:
            groups = layerwise_param_groups(
                model, lr, self.hparams.layer_decay, self.hparams.head_lr
            )
            groups = [
                dict(group, params=[p for p in group["params"] if p.requires_grad])
                for group in groups
            ]
            groups = [group for group in groups if group["params"]]
        else:
            head_params = [p for p in model.head_parameters() if p.requires_grad]
            head_ids = {id(p) for p in head_params}
            backbone = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
            groups = [{"params": head_params, "lr": lr * self.hparams.head_lr}]
            if backbone:
                groups.insert(0, {"params": backbone, "lr": lr})
        self.lr_multipliers = [group["lr"] / lr for group in groups]
        self.optimizer = self.opt_class(groups)
        self.optimizers_dict = {"optimizer": self.optimizer}
        self.lr_schedule = self.make_lr_schedule()
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("optimizer", self.optimizer)
            self.checkpointer.add_recoverable("lr_schedule", self.lr_schedule)

    @property
    def steps_schedule(self):
        """True when the rate follows optimiser steps (``lr_schedule: cosine``), not epochs."""
        kind = getattr(self.hparams, "lr_schedule", "milestones")
        if kind not in ("milestones", "cosine"):
            raise ValueError(f"lr_schedule {kind!r}: use 'milestones' (the original) or 'cosine'")
        return kind == "cosine"

    def make_lr_schedule(self):
        """The per-epoch ``MultiStepLR`` of the original, or a per-step warm-up + cosine.

        ``lr_schedule: cosine`` (a departure, the small-scale protocol's few-shot
        schedule) warms up linearly over ``warmup_fraction`` of the run's optimiser
        steps (epochs x batches per epoch), then decays to 0 along a cosine
        (:func:`ssast_sb.schedules.warmup_cosine_scale`); it is stepped after
        every optimiser step and checkpointed like the epoch schedule.
        """
        if not self.steps_schedule:
            return torch.optim.lr_scheduler.MultiStepLR(
                self.optimizer,
                milestones=list(self.hparams.lr_milestones),
                gamma=self.hparams.lr_decay,
            )
        steps_per_epoch = self.steps_per_epoch
        if not steps_per_epoch:
            raise ValueError("lr_schedule: cosine needs a training loader with a length")
        total = max(1, self.step_budget or self.hparams.epoch_counter.limit * steps_per_epoch)
        warmup = int(total * self.hparams.warmup_fraction)
        return torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: warmup_cosine_scale(step, total, warmup)
        )

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Steps the per-step schedule (``lr_schedule: cosine``) after each optimiser step."""
        if should_step and self.steps_schedule:
            self.lr_schedule.step()

    def _targets(self, batch):
        targets = batch.target.data.to(self.device)
        return targets.float() if self.hparams.multi_label else targets.view(-1)

    def _mixup(self, wavs, lens, targets):
        """Mixes each clip, with the configured probability, with a random clip of the batch.

        Partners are read from the batch as it came, never from a clip already
        mixed, so every mix holds two clips, as the original's (whose partner is
        a random clip of the whole dataset: the in-batch partner is a departure).
        """
        generator = self.aug_rng.generator
        batch, num_samples = wavs.shape
        # CPU draws (the generator is a CPU one); only indices and ratios leave them.
        rng = np.random.default_rng(int(torch.randint(2**31, (1,), generator=generator)))
        chosen = torch.rand(batch, generator=generator)
        partners = torch.randint(batch, (batch,), generator=generator)
        if targets.dim() == 1:
            targets = F.one_hot(targets, self.hparams.num_classes).float()
        mixed_wavs, mixed_targets = wavs.clone(), targets.clone()
        lengths = (lens * num_samples).round().long().tolist()
        for i in torch.nonzero(chosen < self.hparams.augmentation.mixup).flatten().tolist():
            j, lam = int(partners[i]), float(draw_mixup_lambda(rng))
            mixed = mixup_waveforms(wavs[i, : lengths[i]], wavs[j, : lengths[j]], lam)
            mixed_wavs[i, : lengths[i]] = mixed
            mixed_targets[i] = lam * targets[i] + (1 - lam) * targets[j]
        return mixed_wavs, mixed_targets

    def featurize(self, wavs, lens, stage):
        """Features per clip as the original loader: fbank, SpecAugment, normalise, noise."""
        frontend, augmentation = self.hparams.frontend, self.hparams.augmentation
        train = stage == sb.Stage.TRAIN
        generator = self.aug_rng.generator if train else None
        lengths = (lens * wavs.shape[1]).round().long().tolist()
        features = []
        for wav, length in zip(wavs, lengths):
            fbank = frontend.raw_features(wav[:length])
            if train:
                fbank = augmentation.augment_fbank(fbank, generator)
            fbank = frontend.normalize(fbank)
            if train:
                fbank = augmentation.augment_features(fbank, generator)
            features.append(fbank)
        return frontend.stack(features)

    def compute_forward(self, batch, stage):
        """Returns logits and the (possibly mixed) targets."""
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        targets = self._targets(batch)
        if stage == sb.Stage.TRAIN and self.hparams.augmentation.mixup > 0:
            wavs, targets = self._mixup(wavs, lens, targets)
        if stage != sb.Stage.TRAIN and self.hparams.eval_windows:
            return self.windowed_logits(wavs, lens), targets
        return self.clip_logits(wavs, lens, stage), targets

    def clip_logits(self, wavs, lens, stage):
        """Logits of one model input per clip: the frontend pads or cuts each clip.

        With real-audio pooling, or in variable-length mode (a batch padded to its
        longest clip), the model is given each clip's frames
        (:func:`ssast_sb.batch_padding.counted_frames`): it pools over them and
        attends within each clip, so that a clip's logits do not depend on the
        clips it shares a batch with.
        """
        features = self.featurize(wavs, lens, stage)
        frontend = self.hparams.frontend
        samples = (lens * wavs.shape[1]).round().long()
        num_frames = counted_frames(
            frontend.real_frames(samples), self.hparams.pool_real_audio, frontend.variable_length
        )
        if num_frames is None:
            return self.modules.model(features)
        return self.modules.model(features, num_frames.to(features.device))

    def windowed_logits(self, wavs, lens):
        """Evaluation by windows (``eval_windows``, a departure): every frame of a long clip counts.

        Each clip is cut into windows of the model's input length
        (:func:`ssast_sb.windows.window_bounds`, as ``classify_file`` does), and
        its score is the mean of the windows' probabilities weighted by their
        frames of audio (:func:`ssast_sb.windows.combine_windows`), returned as
        log-probabilities (single-label) or logits (multi-label). A clip that fits
        is one window, scored as without windows. The original cuts every clip
        to its first ``target_frames`` frames.
        """
        samples = (lens * wavs.shape[1]).round().long().tolist()
        pieces, owners, weights = [], [], []
        for row, count in enumerate(samples):
            for start, end in window_bounds(count, self.hparams.frontend.target_frames):
                pieces.append(wavs[row, start:end])
                owners.append(row)
                weights.append(clip_frames(end - start))
        windows = torch.nn.utils.rnn.pad_sequence(pieces, batch_first=True)
        window_lens = torch.tensor([piece.numel() / windows.shape[1] for piece in pieces])
        logits = self.clip_logits(windows, window_lens.to(windows.device), sb.Stage.VALID)
        if self.hparams.multi_label:
            log_probs = F.logsigmoid(logits.float())
        else:
            log_probs = F.log_softmax(logits.float(), dim=-1)
        owners, weights = torch.tensor(owners), torch.tensor(weights, dtype=torch.float)
        combined = torch.stack(
            [
                combine_windows(log_probs[owners == row], weights[owners == row])
                for row in range(len(samples))
            ]
        )
        if self.hparams.multi_label:  # back to logits for BCE and the ranking metrics
            return combined - torch.log1p(-combined.exp().clamp(max=1 - 1e-7))
        return combined

    def compute_objectives(self, predictions, batch, stage):
        """The classification loss; records loss, accuracy and the scores."""
        logits, targets = predictions
        loss = classification_loss(logits, targets, self.hparams.loss)
        hits = top1_hits(logits.detach(), targets)
        self.running.update({"loss": loss, "acc": hits.mean()}, weight=len(batch.id))
        if stage != sb.Stage.TRAIN:
            self.scores.append(batch.id, logits.detach().float().cpu(), targets.cpu())
        return loss

    def on_fit_batch_start(self, batch, should_step):
        """The optional staircase warm-up, applied to both groups."""
        if should_step:
            apply_warmup(self, self.lr_multipliers)

    def on_stage_start(self, stage, epoch=None):
        """Resets the running means and the collected scores."""
        self.running = RunningMeans(("loss", "acc"))
        self.scores = ScoreStats(multi_label=self.hparams.multi_label)

    @property
    def selection_key(self):
        """The validation metric that picks the best checkpoint."""
        return "mAP" if self.hparams.multi_label else "acc"

    def stage_stats(self, stage):
        """Loss, accuracy and (validation/test) the task metrics of the stage."""
        stats = self.running.summarize()
        if stage != sb.Stage.TRAIN and self.hparams.multi_label:
            summary = self.scores.summarize()
            stats.update(mAP=summary["mAP"], AUC=summary["mAUC"])
        return stats

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs, steps the epoch schedule and keeps the best checkpoint."""
        stats = self.stage_stats(stage)
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        if stage == sb.Stage.VALID:
            meta = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]}
            if not self.steps_schedule:
                self.lr_schedule.step()
            self.hparams.train_logger.log_stats(
                stats_meta=meta, train_stats=self.train_stats, valid_stats=stats
            )
            self.checkpointer.save_and_keep_only(
                meta={self.selection_key: stats[self.selection_key], "epoch": epoch},
                max_keys=[self.selection_key],
                num_to_keep=self.hparams.keep_checkpoints,
            )
            self.keep_epoch_state(epoch)
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )
        self.last_eval_stats = stats

    def evaluate_fold(self, datasets):
        """Validation and test stats of the best (or weight-averaged) model after ``fit``.

        With ``weight_averaging: [start, end]`` the model becomes the mean of the
        epoch states saved in that window (the original AudioSet recipe) and is
        evaluated on the validation and test sets; otherwise the best validation
        checkpoint is loaded and tested.

        Arguments
        ---------
        datasets : dict
            ``valid`` and optionally ``test``.

        Returns
        -------
        dict
        """
        hparams, key = self.hparams, self.selection_key
        best = self.checkpointer.find_checkpoint(max_key=key)
        results = {"valid": {key: best.meta[key], "epoch": best.meta["epoch"]}}
        window = hparams.weight_averaging
        if window:
            averaged = average_epoch_states(hparams.epoch_states_folder, *window)
            hparams.model.load_state_dict(averaged)
            loader = classification_loader_options(vars(hparams), datasets["valid"], False)
            self.evaluate(datasets["valid"], test_loader_kwargs=loader)
            results["valid_weight_averaged"] = self.last_eval_stats
        if "test" in datasets:
            loader = classification_loader_options(vars(hparams), datasets["test"], False)
            best_key = {} if window else {"max_key": key}
            self.evaluate(datasets["test"], test_loader_kwargs=loader, **best_key)
            results["test"] = self.last_eval_stats
        elif not window:
            self.checkpointer.recover_if_possible(max_key=key)
        return results

    def keep_epoch_state(self, epoch):
        """Saves the model of the epochs to be averaged (``weight_averaging: [start, end]``)."""
        window = self.hparams.weight_averaging
        if window and window[0] <= epoch <= window[1] and sb.utils.distributed.if_main_process():
            path = Path(self.hparams.epoch_states_folder) / f"epoch_{epoch}.ckpt"
            save_atomic(self.hparams.model.state_dict(), path)


def average_epoch_states(folder, start, end):
    """The element-wise mean of the model states saved for epochs ``start..end``.

    Arguments
    ---------
    folder : str
        Where :meth:`ClassifierBrain.keep_epoch_state` wrote ``epoch_<n>.ckpt``.
    start, end : int
        Epoch window (inclusive), 6 and 25 in the original AudioSet recipe.

    Returns
    -------
    dict
        The averaged state dict.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for epoch, value in ((1, 1.0), (2, 3.0)):
    ...     save_atomic({"w": torch.full((2,), value)}, f"{folder}/epoch_{epoch}.ckpt")
    >>> average_epoch_states(folder, 1, 2)["w"]
    tensor([2., 2.])
    """
    paths = [Path(folder) / f"epoch_{epoch}.ckpt" for epoch in range(start, end + 1)]
    paths = [path for path in paths if path.exists()]
    if not paths:
        raise FileNotFoundError(f"No epoch states {start}..{end} in {folder} to average")
    total = None
    for path in paths:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if total is None:
            total = {k: v.double().clone() for k, v in state.items()}
        else:
            for key, value in state.items():
                total[key] += value.double()
    return {key: (value / len(paths)).to(state[key].dtype) for key, value in total.items()}


def check_num_classes(hparams, label_encoder):
    """The YAML's ``num_classes`` must be the label encoder's class count.

    Arguments
    ---------
    hparams : dict
        With ``num_classes``.
    label_encoder : CategoricalEncoder
        Fitted on the training set.

    Example
    -------
    >>> from speechbrain.dataio.encoder import CategoricalEncoder
    >>> encoder = CategoricalEncoder()
    >>> encoder.update_from_iterable(["dog", "rain"])
    >>> check_num_classes({"num_classes": 2}, encoder)
    >>> try:
    ...     check_num_classes({"num_classes": 50}, encoder)
    ... except ValueError as error:
    ...     print(str(error)[-66:])
    2 classes (dog, rain); pass --num_classes 2 (or fix the manifests)
    """
    found = len(label_encoder.lab2ind)
    label_encoder.expect_len(found)  # checked here, so SpeechBrain need not warn about it
    if hparams["num_classes"] != found:
        names = ", ".join(sorted(label_encoder.lab2ind)[:10])
        more = ", ..." if found > 10 else ""
        raise ValueError(
            f"The YAML's num_classes is {hparams['num_classes']} but the training labels have "
            f"{found} classes ({names}{more}); pass --num_classes {found} "
            "(or fix the manifests)"
        )


def run_classification(hparams, run_opts, manifests, stage=None):
    """Fine-tunes the YAML's model on one fold, then tests and exports it.

    Before anything is read or written, a recipe's run checks the run record in
    the checkpoint folder and writes it
    (:func:`ssast_sb.brains.run_record.open_run`): checkpoints made with other
    settings, input files or manifests stop the run instead of being reused.

    Everything is written under ``hparams["experiment_folder"]``: the label
    encoder, the checkpoints (the YAML's ``checkpointer``), ``train_log.txt``,
    ``results.json``, the per-class report and confusion matrix (single-label
    tasks with a test set) and the inference folder
    (:func:`ssast_sb.inference.export_inference_folder`).

    Arguments
    ---------
    hparams : dict
        A fine-tuning YAML loaded for this fold: ``model``, ``modules``,
        ``opt_class``, ``checkpointer``, ``epoch_counter``, ``train_logger``,
        ``frontend``, ``num_classes``, ``weight_averaging`` and the keys of
        :func:`ssast_sb.dataio.classification_datasets` and
        :func:`ssast_sb.sampler.classification_loader_options`.
    run_opts : dict
        SpeechBrain run options.
    manifests : dict
        ``train``, ``valid`` and optionally ``test`` CSVs.
    stage : dict, optional
        Which run of its recipe this is, for the run record (default
        ``{"name": "fine-tuning"}``).

    Returns
    -------
    dict
        ``valid`` and ``test`` stats of the best (or weight-averaged) model.
    """
    folder = Path(hparams["experiment_folder"])
    window = hparams["weight_averaging"]
    if window and window[0] > hparams["number_of_epochs"]:
        raise ValueError(
            f"weight_averaging {list(window)} starts after the last epoch "
            f"({hparams['number_of_epochs']}); set weight_averaging: null or more epochs"
        )
    folder.mkdir(parents=True, exist_ok=True)
    stage = stage or {"name": "fine-tuning"}
    open_run(hparams["checkpointer"].checkpoints_dir, stage, run_opts, manifests)
    datasets, label_encoder = classification_datasets(
        hparams, manifests, folder / "label_encoder.txt"
    )
    check_num_classes(hparams, label_encoder)
    brain = ClassifierBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.allow_zero_lr = getattr(run_opts, "allow_zero_lr", False)
    brain.step_budget = hparams.get("total_steps")
    brain.fit(
        hparams["epoch_counter"],
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=classification_loader_options(hparams, datasets["train"], True),
        valid_loader_kwargs=classification_loader_options(hparams, datasets["valid"], False),
    )
    results = brain.evaluate_fold(datasets)
    results["encoder"] = describe_config(hparams["model"].encoder.config)  # what was built
    if "test" in results:  # the task's metric under its usual name
        metric = ("mAP", "mAP") if hparams["multi_label"] else ("accuracy", "acc")
        results["metrics"] = {metric[0]: results["test"][metric[1]]}
    if sb.utils.distributed.if_main_process():
        if "test" in datasets and not hparams["multi_label"]:
            write_class_report(brain.scores.scores, brain.scores.targets, label_encoder, folder)
        model = hparams["model"]
        export_inference_folder(
            model,
            label_encoder,
            hparams["frontend"],
            folder / "inference",
            hparams["multi_label"],
            hparams["pool_real_audio"],
        )
        with atomic_open(folder / "results.json") as stream:
            stream.write(json.dumps(results, indent=2))
    return results


def run_folds(hparams, hparams_file, overrides, run_opts, folds):
    """Fine-tunes every fold with fresh YAML objects; prints and saves the fold table.

    Each fold reloads the YAML with the command line's overrides and
    ``experiment_folder`` set to its own folder, then runs
    :func:`run_classification`. A cross-validation recipe (its YAML has
    ``folds``) writes every fold into ``<output_folder>/<fold>``, also when one
    fold runs, so that folds run one at a time never share a folder; a recipe
    with one split writes into the output folder. The table covers the folds of
    this call and the finished folds already in the output folder (their run
    records matched this command line, or the recipe would have stopped).

    Arguments
    ---------
    hparams : dict
        The YAML as first loaded (``output_folder``, ``multi_label``, and ``folds``
        for cross-validation).
    hparams_file : str
        The YAML, reloaded per fold.
    overrides : dict
        Command-line overrides.
    run_opts : dict
        SpeechBrain run options.
    folds : dict
        Per fold name, its ``train``/``valid``/``test`` manifests.

    Returns
    -------
    dict
        Per fold, its results: this call's folds, then earlier finished ones.
    """
    output = Path(hparams["output_folder"])
    cross_validation = hparams.get("folds") is not None
    results = {}
    for name, manifests in folds.items():
        folder = output / name if cross_validation or len(folds) > 1 else output
        logger.info("Fine-tuning fold %s in %s", name, folder)
        fold_hparams = load_hparams(hparams_file, overrides, experiment_folder=str(folder))
        stage = {"name": "fine-tuning", **({"fold": name} if cross_validation else {})}
        results[name] = run_classification(fold_hparams, run_opts, manifests, stage)
    if cross_validation:
        for path in sorted(output.glob("*/results.json")):
            if path.parent.name not in results:
                results[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
        results = dict(sorted(results.items()))
    table = summarize_folds(results, "mAP" if hparams["multi_label"] else "acc")
    if sb.utils.distributed.if_main_process():  # once under DDP, like the file
        print(table)
        with atomic_open(output / "results.md") as stream:
            stream.write(table + "\n")
    return results
