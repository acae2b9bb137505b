#!/usr/bin/env python3
"""Fine-tune SSAST on your own labeled audio: a folder per class, or a CSV/JSON list.

    python recipes/custom/train.py hparams/custom.yaml --data /my/clips
    python recipes/custom/train.py hparams/custom.yaml --data list.csv \
        --pretrained_path SSAST-Base-Patch-400.pth --columns "{label: emotion}"
    torchrun --nproc_per_node=4 recipes/custom/train.py hparams/custom.yaml --data ... \
        --device cuda:0 --precision bf16

The flow: read the YAML's data options (no object is built yet), write the manifests
and the split once (``run_on_main``), fill in what the data decides (the class count,
single- or multi-label and the loss, the input length, the fbank statistics; each
choice is logged), then load the YAML with those values and fine-tune, test and
export as every recipe (``ssast_sb.brains.finetune.run_folds``).

Authors
 * ssast-sb contributors
"""

import logging
import sys
from pathlib import Path

import speechbrain as sb
from speechbrain.utils.distributed import run_on_main

from ssast_sb.brains.common import (
    parse_recipe_arguments,
    resolve_checkpoint_intervals,
    resolved_yaml,
    save_resolved_hparams,
)
from ssast_sb.brains.finetune import run_folds
from ssast_sb.brains.process_group import finish_distributed_run
from ssast_sb.brains.run_record import plain_settings
from ssast_sb.data.labeled import labeled_manifests, prepare_labeled, summarize_labeled
from ssast_sb.data.statistics import input_frames, training_statistics
from ssast_sb.errors import OptionError, report_user_errors
from ssast_sb.frontend import FRAME_LENGTH, FRAME_SHIFT, NORM_STATS, SAMPLE_RATE

logger = logging.getLogger(__name__)


def prepare(options):
    """Writes the manifests and the split (on the main process); returns what they hold."""
    if not options["data"]:
        raise OptionError(
            "--data is empty: pass a folder with one sub-folder per class, or a CSV/JSON list "
            "with a path and a label column"
        )
    folder = options["manifest_folder"]
    run_on_main(
        prepare_labeled,
        kwargs={
            "source": options["data"],
            "save_folder": folder,
            "columns": options["columns"],
            "label_separator": options["label_separator"],
            "valid_ratio": options["valid_ratio"],
            "test_ratio": options["test_ratio"],
            "seed": options["split_seed"],
            "on_bad_audio": options["on_bad_audio"],
        },
    )
    return summarize_labeled(folder, options["label_separator"])


def normalization(options):
    """``(mean, std)`` of the fbank, and a log line saying where they come from."""
    if options["norm_mean"] is not None and options["norm_std"] is not None:
        mean, std = options["norm_mean"], options["norm_std"]
        return mean, std, f"norm_mean {mean}, norm_std {std} as given"
    choice = options["normalization"]
    if choice == "auto":
        manifest = labeled_manifests(options["manifest_folder"])["train"]
        kept = Path(options["manifest_folder"]) / "norm_stats.json"
        arguments = [manifest, kept, options["norm_max_clips"], options["split_seed"]]
        run_on_main(training_statistics, args=arguments)
        stats = training_statistics(*arguments)
        return (
            stats["mean"],
            stats["std"],
            f"mean {stats['mean']:.4f}, std {stats['std']:.4f} of the training split's fbank "
            f"({stats['clips']} clips; kept in {kept})",
        )
    if isinstance(choice, str):
        if choice not in NORM_STATS:
            raise OptionError(
                f"--normalization {choice} is none of auto, {', '.join(NORM_STATS)} or "
                "[mean, std]: pass one of them, e.g. --normalization auto (the training split's)"
            )
        mean, std = NORM_STATS[choice]
        return mean, std, f"the {choice} preset, mean {mean}, std {std}"
    mean, std = choice
    return float(mean), float(std), f"mean {mean}, std {std} as given"


def decide(options, summary):
    """The YAML values left null that the data decides, each choice logged.

    Arguments
    ---------
    options : dict
        The YAML's resolved data options.
    summary : dict
        What the manifests hold (:func:`ssast_sb.data.labeled.summarize_labeled`).

    Returns
    -------
    dict
        Overrides for the YAML.
    """
    decided = {}
    classes = summary["classes"]
    if options["num_classes"] is None:
        decided["num_classes"] = len(classes)
    multi_label = options["multi_label"]
    if multi_label is None:
        multi_label = decided["multi_label"] = summary["multi_label"]
    if options["loss"] is None:
        decided["loss"] = "bce" if multi_label else "ce"
    kind = "multi-label" if multi_label else "single-label"
    shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
    logger.info(
        "Task: %d classes (%s), %s, loss %s; clips train/valid/test %s",
        len(classes),
        shown,
        kind,
        decided.get("loss", options["loss"]),
        "/".join(str(count) for count in summary["splits"].values()),
    )
    frames = options["target_frames"]
    if frames is None:
        percentile = options["length_percentile"]
        frames, at = input_frames(summary["train_durations"], percentile)
        decided["target_frames"] = frames
        logger.info(
            "Input length: %d frames (%.2f s); %g%% of the training clips last at most %.2f s "
            "(longest %.2f s): shorter clips are not padded (variable_length), longer ones are "
            "cropped in training and scored by windows in evaluation",
            frames,
            frames / 100,
            percentile,
            at,
            max(summary["train_durations"]),
        )
    if options["max_train_crop_s"] is None:
        decided["max_train_crop_s"] = (FRAME_LENGTH + (frames - 1) * FRAME_SHIFT) / SAMPLE_RATE
    mean, std, source = normalization(options)
    decided.update(norm_mean=mean, norm_std=std)
    logger.info("Normalisation: %s", source)
    return decided


#: YAML values read before any object is built.
DATA_KEYS = (
    "data",
    "manifest_folder",
    "columns",
    "label_separator",
    "valid_ratio",
    "test_ratio",
    "split_seed",
    "on_bad_audio",
    "target_frames",
    "length_percentile",
    "normalization",
    "norm_max_clips",
    "norm_mean",
    "norm_std",
    "num_classes",
    "multi_label",
    "loss",
    "max_train_crop_s",
)


def main(argv):
    """Runs the recipe on the command line ``argv`` (the YAML, then its options)."""
    hparams_file, run_opts, overrides = parse_recipe_arguments(argv)
    values = resolved_yaml(hparams_file, overrides)
    # The folder and the log first, so that the preparation and the choices are logged.
    sb.create_experiment_directory(values["output_folder"], hparams_file, overrides)
    options = {key: plain_settings(values[key]) for key in DATA_KEYS}
    decided = decide(options, prepare(options))
    overrides = {**overrides, **decided}
    run_opts = resolve_checkpoint_intervals(run_opts, values)
    save_resolved_hparams(hparams_file, overrides, values["output_folder"])
    # run_folds builds the YAML's objects itself, with the decided values.
    multi_label = decided.get("multi_label", options["multi_label"])
    hparams = {"output_folder": values["output_folder"], "multi_label": multi_label}
    folds = {"custom": labeled_manifests(options["manifest_folder"])}
    run_folds(hparams, hparams_file, overrides, run_opts, folds)
    finish_distributed_run()


if __name__ == "__main__":
    report_user_errors(main)(sys.argv[1:])
