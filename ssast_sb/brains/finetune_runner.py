"""Everything a fine-tuning recipe does around its Brain: model, datasets, folds, results.

A recipe supplies its YAML and a ``prepare_folds(hparams)`` function that
prepares its dataset once (``run_on_main``) and returns, per fold, the
``train``/``valid``/``test`` manifests; :func:`finetuning_main` does the rest.

Authors
 * ssast-sb contributors
"""

import json
import logging
from pathlib import Path

import speechbrain as sb
import torch
from speechbrain.dataio.sampler import DynamicBatchSampler, ReproducibleWeightedRandomSampler
from speechbrain.utils.epoch_loop import EpochCounter
from speechbrain.utils.train_logger import FileTrainLogger

from ssast_sb.brains.common import AtomicCheckpointer, load_recipe
from ssast_sb.brains.finetune import ClassifierBrain, average_epoch_states
from ssast_sb.checkpoints import encoder_from_original
from ssast_sb.dataio import (
    SkippingPaddedBatch,
    fit_label_encoder,
    label_pipeline,
    manifest_dataset,
    multi_hot_pipeline,
    waveform_pipeline,
)
from ssast_sb.encoder import EncoderConfig, SSASTEncoder
from ssast_sb.inference import export_inference_folder
from ssast_sb.metrics import confusion_matrix, per_class_report, save_confusion_matrix_png
from ssast_sb.models import LayerWeightedClassifier, SSASTClassifier, adapt_encoder

logger = logging.getLogger(__name__)


def build_encoder(hparams):
    """The encoder at the task's grid: adapted from ``pretrained_path`` or from scratch.

    Arguments
    ---------
    hparams : dict
        ``pretrained_path`` (an original-format pretraining checkpoint: a released
        SSAST ``.pth`` or the ``ssast_pretrained.pth`` of our pretraining recipes;
        null for scratch), ``model_size``, ``patch_shape``, ``fstride``, ``tstride``,
        ``target_frames`` and ``pos_embed_adaptation`` (``original`` or ``resize``).

    Returns
    -------
    SSASTEncoder

    Example
    -------
    >>> encoder = build_encoder({"pretrained_path": None, "model_size": "tiny",
    ...     "patch_shape": "frame", "fstride": 128, "tstride": 1, "target_frames": 128})
    >>> encoder.grid
    (1, 127)
    """
    if hparams.get("pretrained_path"):
        pretrained, _ = encoder_from_original(hparams["pretrained_path"])
        return adapt_encoder(
            pretrained,
            hparams["fstride"],
            hparams["tstride"],
            hparams["target_frames"],
            method=hparams.get("pos_embed_adaptation", "original"),
            variable_length=hparams.get("variable_length", False),
        )
    config = EncoderConfig.from_names(
        hparams["model_size"],
        hparams["patch_shape"],
        fstride=hparams["fstride"],
        tstride=hparams["tstride"],
        input_tdim=hparams["target_frames"],
        variable_length=hparams.get("variable_length", False),
    )
    return SSASTEncoder(config)


def build_classifier(hparams, num_classes):
    """The task model: ``finetune`` (pooled tokens + LayerNorm/Linear) or ``layer_weighted``.

    Arguments
    ---------
    hparams : dict
        As :func:`build_encoder`, plus ``mode``, ``pooling``, ``projector_dim`` and
        ``freeze_upstream``.
    num_classes : int
        Output size.

    Returns
    -------
    torch.nn.Module
    """
    encoder = build_encoder(hparams)
    # Seeded here so that twins built on different encoders start from the same head.
    torch.manual_seed(hparams["seed"])
    if hparams["mode"] == "layer_weighted":
        return LayerWeightedClassifier(
            encoder, num_classes, hparams["projector_dim"], hparams["freeze_upstream"]
        )
    if hparams["mode"] == "finetune":
        return SSASTClassifier(encoder, num_classes, hparams["pooling"])
    raise ValueError(f"Unknown mode {hparams['mode']!r}; use 'finetune' or 'layer_weighted'")


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


def train_loader_options(hparams, train_set, loader):
    """Shuffled training batches, or the original balanced sampler (``balanced_sampling``).

    Arguments
    ---------
    hparams : dict
        ``balanced_sampling`` (optional, default False), ``label_separator``, ``seed``.
    train_set : DynamicItemDataset
        Training set with a ``label`` column.
    loader : dict
        Common loader options.

    Returns
    -------
    dict
        Loader options for ``Brain.fit``.
    """
    if hparams.get("dynamic_batching"):
        if hparams.get("balanced_sampling", False):
            raise ValueError("Choose dynamic_batching or balanced_sampling, not both")
        return duration_batches(train_set, hparams, loader, shuffle=True)
    if not hparams.get("balanced_sampling", False):
        return dict(loader, shuffle=True, drop_last=False)
    separator = hparams["label_separator"] if hparams["multi_label"] else None
    labels = [
        [name for name in (row["label"].split(separator) if separator else [row["label"]]) if name]
        for row in train_set.data.values()
    ]
    sampler = ReproducibleWeightedRandomSampler(
        balanced_weights(labels), num_samples=len(labels), replacement=True, seed=hparams["seed"]
    )
    return dict(loader, sampler=sampler, drop_last=False)


def duration_batches(dataset, hparams, loader, shuffle):
    """Loader options with SpeechBrain's ``DynamicBatchSampler``: batches of similar duration.

    Each batch holds at most ``max_batch_length_s`` seconds of audio (from the
    manifest's ``duration``), drawn from ``num_buckets`` duration buckets, so
    short clips come in large batches and little of a batch is padding (with
    ``variable_length``).

    Arguments
    ---------
    dataset : DynamicItemDataset
        With a ``duration`` column.
    hparams : dict
        ``max_batch_length_s``, ``num_buckets`` (optional, default 10) and ``seed``.
    loader : dict
        Common loader options; ``batch_size``, ``shuffle`` and ``drop_last`` are
        replaced by the sampler.
    shuffle : bool
        Random batch order (training) or ascending duration (evaluation).

    Returns
    -------
    dict
        Loader options with ``batch_sampler``.
    """
    sampler = DynamicBatchSampler(
        dataset,
        max_batch_length=float(hparams["max_batch_length_s"]),
        num_buckets=int(hparams.get("num_buckets", 10)),
        length_func=lambda row: float(row["duration"]),
        shuffle=shuffle,
        batch_ordering="random" if shuffle else "ascending",
        seed=hparams["seed"],
    )
    kept = {k: v for k, v in loader.items() if k not in ("batch_size", "shuffle", "drop_last")}
    return dict(kept, batch_sampler=sampler)


def eval_loader_options(hparams, dataset, loader):
    """Evaluation loader options: fixed batches, or duration batches with ``dynamic_batching``."""
    if hparams.get("dynamic_batching"):
        return duration_batches(dataset, hparams, loader, shuffle=False)
    return loader


def build_datasets(hparams, manifests, folder):
    """Datasets providing ``sig`` and ``target``, and the label encoder (saved in ``folder``).

    Arguments
    ---------
    hparams : dict
        ``multi_label``, ``label_separator``, ``max_train_crop_s`` and optionally
        ``on_bad_audio`` (``error``, the default, or ``skip``).
    manifests : dict
        ``train``, ``valid`` and optionally ``test`` CSVs with a ``label`` column.
    folder : pathlib.Path
        Where the label encoder is written.

    Returns
    -------
    datasets : dict
    label_encoder : CategoricalEncoder
    """
    separator = hparams["label_separator"] if hparams["multi_label"] else None
    on_bad_audio = hparams.get("on_bad_audio", "error")
    datasets = {
        split: manifest_dataset(path, [], ["id"])
        for split, path in manifests.items()
        if path is not None
    }
    for split, dataset in datasets.items():
        clashes = {"sig", "target"} & set(next(iter(dataset.data.values()), {}))
        if clashes:
            raise ValueError(
                f"The {split} manifest has column(s) {sorted(clashes)}, which the fine-tuning "
                "pipeline computes itself; rename or drop them"
            )
    path = folder / "label_encoder.txt"
    # Fitted and saved by the main process; every process then reads the same file.
    sb.utils.distributed.run_on_main(
        fit_label_encoder, args=[datasets["train"], path], kwargs={"separator": separator}
    )
    encoder = fit_label_encoder(datasets["train"], path, separator)
    targets = multi_hot_pipeline(encoder, separator) if separator else label_pipeline(encoder)
    for split, dataset in datasets.items():
        crop = hparams["max_train_crop_s"] if split == "train" else None
        dataset.add_dynamic_item(waveform_pipeline(crop, on_bad_audio=on_bad_audio))
        dataset.add_dynamic_item(targets)
        dataset.set_output_keys(["id", "sig", "target"])
    return datasets, encoder


def run_fold(hparams, run_opts, manifests, folder):
    """Fine-tunes one fold in ``folder``; returns its validation and test metrics.

    Arguments
    ---------
    hparams : dict
        The recipe's YAML.
    run_opts : dict
        SpeechBrain run options.
    manifests : dict
        ``train``, ``valid``, ``test`` CSVs.
    folder : str
        Output folder of the fold.

    Returns
    -------
    dict
        ``valid`` and ``test`` stats of the best (or weight-averaged) model, which is
        also written as an inference folder (``<folder>/inference``, see
        :func:`ssast_sb.inference.export_inference_folder`).
    """
    folder = Path(folder)
    window = hparams["weight_averaging"]
    if window and window[0] > hparams["number_of_epochs"]:
        raise ValueError(
            f"weight_averaging {list(window)} starts after the last epoch "
            f"({hparams['number_of_epochs']}); set weight_averaging: null or more epochs"
        )
    folder.mkdir(parents=True, exist_ok=True)
    datasets, label_encoder = build_datasets(hparams, manifests, folder)
    num_classes = len(label_encoder.lab2ind)
    torch.manual_seed(hparams["seed"])
    model = build_classifier(hparams, num_classes)
    counter = EpochCounter(hparams["number_of_epochs"])
    fold_hparams = dict(
        hparams,
        model=model,
        num_classes=num_classes,
        epoch_counter=counter,
        train_logger=FileTrainLogger(folder / "train_log.txt"),
        epoch_states_folder=folder / "epoch_states",
    )
    brain = ClassifierBrain(
        modules={"model": model},
        opt_class=hparams["opt_class"],
        hparams=fold_hparams,
        run_opts=run_opts,
        checkpointer=AtomicCheckpointer(folder / "save", {"model": model, "counter": counter}),
    )
    loader = dict(hparams["dataloader_opts"], collate_fn=SkippingPaddedBatch)
    brain.fit(
        counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=train_loader_options(hparams, datasets["train"], loader),
        valid_loader_kwargs=eval_loader_options(hparams, datasets["valid"], loader),
    )
    key = brain.selection_key
    best = brain.checkpointer.find_checkpoint(max_key=key)
    results = {"valid": {key: best.meta[key], "epoch": best.meta["epoch"]}}
    if window:
        # The original averages the epoch models wa_start..wa_end (AudioSet, spec d.1).
        model.load_state_dict(average_epoch_states(folder / "epoch_states", *window))
        brain.evaluate(
            datasets["valid"],
            test_loader_kwargs=eval_loader_options(hparams, datasets["valid"], loader),
        )
        results["valid_weight_averaged"] = brain.last_eval_stats
    if "test" in datasets:
        test_loader = eval_loader_options(hparams, datasets["test"], loader)
        if window:
            brain.evaluate(datasets["test"], test_loader_kwargs=test_loader)
        else:
            brain.evaluate(datasets["test"], max_key=key, test_loader_kwargs=test_loader)
        results["test"] = brain.last_eval_stats
        if not hparams["multi_label"] and sb.utils.distributed.if_main_process():
            write_class_report(brain, label_encoder, folder)
    elif not window:
        brain.checkpointer.recover_if_possible(max_key=key)
    if sb.utils.distributed.if_main_process():
        export_inference_folder(
            model, label_encoder, hparams["frontend"], folder / "inference", hparams["multi_label"]
        )
        (folder / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results


def write_class_report(brain, label_encoder, folder):
    """Per-class precision/recall table and confusion-matrix PNG of the last evaluation."""
    names = [label_encoder.ind2lab[i] for i in range(len(label_encoder.ind2lab))]
    scores = torch.as_tensor(brain.scores.scores)
    targets = torch.as_tensor(brain.scores.targets)
    labels = targets.argmax(-1) if targets.dim() == 2 else targets.long()
    predictions = scores.argmax(-1)
    _, table = per_class_report(predictions, labels, names)
    (folder / "per_class_report.txt").write_text(table + "\n", encoding="utf-8")
    matrix = confusion_matrix(predictions, labels, len(names))
    save_confusion_matrix_png(matrix, names, folder / "confusion_matrix.png")


def summarize_folds(results, metric):
    """Mean and per-fold values of a test metric, as a printable table.

    Example
    -------
    >>> print(summarize_folds({"fold1": {"test": {"acc": 0.5}}, "fold2": {"test": {"acc": 0.7}}},
    ...                       "acc"))
    | fold | test acc (valid when there is no test set) |
    |---|---|
    | fold1 | 0.500 |
    | fold2 | 0.700 |
    | mean | 0.600 |
    """
    lines = [f"| fold | test {metric} (valid when there is no test set) |", "|---|---|"]
    values = []
    for name, result in results.items():
        value = (result["test"] if "test" in result else result["valid"])[metric]
        values.append(value)
        lines.append(f"| {name} | {value:.3f} |")
    lines.append(f"| mean | {sum(values) / len(values):.3f} |")
    return "\n".join(lines)


def finetuning_main(argv, prepare_folds):
    """Command line of the fine-tuning recipes.

    Arguments
    ---------
    argv : list of str
        ``hparams.yaml [--key value ...]`` plus SpeechBrain's run options.
    prepare_folds : callable
        ``prepare_folds(hparams) -> {fold_name: {"train": csv, "valid": csv, "test": csv}}``.

    Returns
    -------
    dict
        Per fold, its results.
    """
    hparams, run_opts = load_recipe(argv)
    folds = prepare_folds(hparams)
    output = Path(hparams["output_folder"])
    results = {}
    for name, manifests in folds.items():
        folder = output / name if len(folds) > 1 else output
        logger.info("Fine-tuning fold %s in %s", name, folder)
        results[name] = run_fold(hparams, run_opts, manifests, folder)
    metric = "mAP" if hparams["multi_label"] else "acc"
    table = summarize_folds(results, metric)
    print(table)
    if sb.utils.distributed.if_main_process():
        (output / "results.md").write_text(table + "\n", encoding="utf-8")
    return results
