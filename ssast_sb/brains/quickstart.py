"""Pretrain, then fine-tune a pretrained model and its from-scratch twin, and compare.

Used by ``recipes/quickstart`` (synthetic audio) and by the small-scale
benchmarks: the same protocol for any unlabeled pool and labeled task.

Authors
 * ssast-sb contributors
"""

import json
import logging
import time
from pathlib import Path

import speechbrain as sb
import torch

from ssast_sb.brains.finetune import fit_classifier
from ssast_sb.brains.pretrain import run_pretraining
from ssast_sb.checkpoints import pretrain_model_from_original
from ssast_sb.dataio import fbank_pipeline, fit_label_encoder, label_pipeline, manifest_dataset
from ssast_sb.encoder import SSASTEncoder
from ssast_sb.models import SSASTClassifier, adapt_encoder
from ssast_sb.plots import plot_curves, read_train_log

logger = logging.getLogger(__name__)


def labeled_datasets(manifests, frontend, encoder_path=None):
    """Train/valid/test datasets providing ``fbank`` and ``target``, and the label encoder.

    Arguments
    ---------
    manifests : dict
        ``train``, ``valid`` and ``test`` CSVs with a ``label`` column.
    frontend : SSASTFbank
        Feature settings.
    encoder_path : str, optional
        Where the label encoder is saved.

    Returns
    -------
    datasets : dict
    label_encoder : CategoricalEncoder
    """
    features = fbank_pipeline(frontend)
    datasets = {
        split: manifest_dataset(manifests[split], [features], ["id", "fbank", "label"])
        for split in ("train", "valid", "test")
    }
    label_encoder = fit_label_encoder(datasets["train"], encoder_path)
    targets = label_pipeline(label_encoder)
    for dataset in datasets.values():
        dataset.add_dynamic_item(targets)
        dataset.set_output_keys(["id", "fbank", "target"])
    return datasets, label_encoder


def twin_classifiers(pretrained_encoder, num_classes, pooling, seed):
    """A classifier on the pretrained encoder and an identically built one from scratch.

    Both heads get the same initial weights, so the two differ only in the encoder.

    Arguments
    ---------
    pretrained_encoder : SSASTEncoder
        The pretrained encoder (its grid is kept).
    num_classes : int
        Output size.
    pooling : str
        ``mean`` or ``cls``.
    seed : int
        Seed of the scratch encoder and the heads.

    Returns
    -------
    dict
        ``{"pretrained": SSASTClassifier, "scratch": SSASTClassifier}``.
    """
    torch.manual_seed(seed)
    scratch = SSASTClassifier(SSASTEncoder(pretrained_encoder.config), num_classes, pooling)
    pretrained = SSASTClassifier(adapt_encoder(pretrained_encoder), num_classes, pooling)
    pretrained.mlp_head.load_state_dict(scratch.mlp_head.state_dict())
    return {"pretrained": pretrained, "scratch": scratch}


def format_table(results, pretrain_minutes):
    """A plain-text results table.

    Example
    -------
    >>> print(format_table({"scratch": {"test_acc": 0.5, "valid_acc": 0.4, "minutes": 1.0}}, 2.0))
    | model | test accuracy | valid accuracy | fine-tuning minutes |
    |---|---|---|---|
    | scratch | 0.500 | 0.400 | 1.0 |
    pretraining: 2.0 minutes
    """
    lines = [
        "| model | test accuracy | valid accuracy | fine-tuning minutes |",
        "|---|---|---|---|",
    ]
    for name, row in results.items():
        lines.append(
            f"| {name} | {row['test_acc']:.3f} | {row['valid_acc']:.3f} | {row['minutes']:.1f} |"
        )
    lines.append(f"pretraining: {pretrain_minutes:.1f} minutes")
    return "\n".join(lines)


def run_quickstart(hparams, run_opts, manifests):
    """Pretrains on ``manifests["unlabeled"]``, fine-tunes twins, prints and saves the table.

    Arguments
    ---------
    hparams : dict
        The quickstart YAML (pretraining keys as ``hparams/pretrain_*.yaml`` plus
        ``finetune``, ``pooling`` and ``output_folder``).
    run_opts : dict
        SpeechBrain run options.
    manifests : dict
        ``unlabeled``, ``train``, ``valid`` and ``test`` CSVs.

    Returns
    -------
    dict
        Per model: test and valid accuracy and fine-tuning minutes, plus pretraining minutes.
    """
    output = Path(hparams["output_folder"])
    start = time.time()
    _, exported = run_pretraining(
        hparams, run_opts, {"train": manifests["unlabeled"], "valid": manifests["valid"]}
    )
    pretrain_minutes = (time.time() - start) / 60
    if sb.utils.distributed.if_main_process():
        plot_curves(
            read_train_log(hparams["train_log"]),
            ["train loss", "valid loss", "train acc", "valid acc"],
            output / "pretraining_curves.png",
            title="MSPM pretraining (acc = masked patch classification accuracy)",
        )
    pretrained, _ = pretrain_model_from_original(exported["pth"])
    datasets, label_encoder = labeled_datasets(
        manifests, hparams["frontend"], output / "label_encoder.txt"
    )
    models = twin_classifiers(
        pretrained.encoder, len(label_encoder.lab2ind), hparams["pooling"], hparams["seed"]
    )
    results = {}
    for name, model in models.items():
        start = time.time()
        brain, test_stats = fit_classifier(
            model, datasets, hparams["finetune"], run_opts, output / f"finetune_{name}"
        )
        best = brain.checkpointer.find_checkpoint(max_key="acc")
        results[name] = {
            "test_acc": test_stats["acc"],
            "valid_acc": best.meta["acc"],
            "minutes": (time.time() - start) / 60,
        }
    table = format_table(results, pretrain_minutes)
    print(table)
    results["pretrain_minutes"] = pretrain_minutes
    if sb.utils.distributed.if_main_process():
        (output / "results.md").write_text(table + "\n", encoding="utf-8")
        (output / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results
