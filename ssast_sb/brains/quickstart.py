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

from ssast_sb.brains.finetune_runner import run_fold
from ssast_sb.brains.pretrain import run_pretraining
from ssast_sb.plots import plot_curves, read_train_log

logger = logging.getLogger(__name__)


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
        The quickstart YAML (pretraining keys as ``hparams/pretrain_*.yaml`` plus a
        ``finetune`` section whose keys override them for the fine-tuning runs).
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
    settings = dict(hparams, **hparams["finetune"])
    results = {}
    for name, pretrained_path in (("pretrained", exported["pth"]), ("scratch", None)):
        start = time.time()
        fold = run_fold(
            dict(settings, pretrained_path=pretrained_path),
            run_opts,
            {split: manifests[split] for split in ("train", "valid", "test")},
            output / f"finetune_{name}",
        )
        results[name] = {
            "test_acc": fold["test"]["acc"],
            "valid_acc": fold["valid"]["acc"],
            "minutes": (time.time() - start) / 60,
        }
    table = format_table(results, pretrain_minutes)
    print(table)
    results["pretrain_minutes"] = pretrain_minutes
    if sb.utils.distributed.if_main_process():
        (output / "results.md").write_text(table + "\n", encoding="utf-8")
        (output / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results
