"""Assembles the unlabeled pretraining set from several sources (docs/fidelity.md a.5).

The paper mixes AudioSet-2M and LibriSpeech-960 into one shuffled list and
validates on the AudioSet eval set. Any folder, CSV or JSON of one's own audio
can join (or replace) them.

Authors
 * ssast-sb contributors
"""

import logging
from pathlib import Path

from ssast_sb.errors import OptionError, UserError

from .audioset import SEGMENT_FILES, prepare_audioset
from .generic import mix_manifests, prepare_generic
from .librispeech import (
    DOWNLOAD_URL,
    SPLIT_SIZES,
    check_splits,
    prepare_librispeech,
    splits_on_disk,
)
from .options import MissingDataError, as_list, cli_list

logger = logging.getLogger(__name__)

#: The two datasets of the paper's mix: option, name, and an example of the value.
DATASET_FOLDERS = {
    "audioset_folder": ("AudioSet", "/path/to/audioset"),
    "librispeech_folder": ("LibriSpeech", "/path/to/the/folder/of/LibriSpeech"),
}


def _check_dataset_folder(key, folder):
    """A dataset folder option: unset (an empty string) or absent is an error naming it."""
    if folder is None:
        return None
    option, (dataset, example) = f"--{key}", DATASET_FOLDERS[key]
    without = f"or {option} null to pretrain without {dataset}"
    if not str(folder).strip():
        raise OptionError(
            f"{option} is not set (the YAML leaves it a !PLACEHOLDER). Pass {option} {example}, "
            f"{without}."
        )
    if not Path(folder).is_dir():
        raise MissingDataError(f"{option} {folder} does not exist. Pass the folder, {without}.")
    return folder


def _check_sources(key, sources):
    """The folders, CSV or JSON files of ``--key``; a missing one is an error naming it."""
    for source in sources:
        path = Path(source)
        if not path.exists():
            raise MissingDataError(
                f"--{key}: {source} does not exist. Pass existing folders of audio, or CSV or "
                f"JSON lists of clips, e.g. --{key} {_example_of(key)}."
            )
        if path.is_file() and path.suffix.lower() not in (".csv", ".json"):
            raise OptionError(
                f"--{key}: {source} is neither a folder nor a .csv or .json list of clips. "
                f"Pass the folder that holds it, or a list, e.g. --{key} {_example_of(key)}."
            )


def _prepare_source(key, source, save_folder, name, on_bad_audio):
    """:func:`prepare_generic` of a source of ``--key``; a folder without audio names the option."""
    try:
        prepare_generic(source, save_folder, name, on_bad_audio=on_bad_audio)
    except FileNotFoundError as error:
        if isinstance(error, UserError):
            raise
        raise MissingDataError(
            f"--{key}: {error}. Pass folders that hold audio, or CSV or JSON lists of clips."
        ) from error


def _example_of(key):
    return "/path/to/held-out/clips" if key == "valid_source" else cli_list(["/path/to/clips"])


def _check_segments(key, segments):
    """AudioSet segment lists of ``--key``: unknown names are an error naming the option."""
    unknown = [segment for segment in segments if segment not in SEGMENT_FILES]
    if unknown:
        known = [segment for segment in segments if segment in SEGMENT_FILES]
        raise OptionError(
            f"--{key} {cli_list(segments)} names unknown AudioSet segment list(s) {unknown}; "
            f"they are {', '.join(SEGMENT_FILES)}. Pass e.g. --{key} "
            f"{cli_list(known or ['balanced_train'])}."
        )


def _no_validation_error(options):
    """Why the options give no validation set, and the options that would give one."""
    audioset, librispeech = options["audioset_folder"], options["librispeech_folder"]
    state = ["--valid_source is null"]
    fixes = []
    if librispeech is None:
        state.append("LibriSpeech is left out (--librispeech_folder null)")
    else:
        state.append("--librispeech_valid_splits is []")
        found = splits_on_disk(librispeech)
        held_out = [s for s in found if s.startswith("dev-")] + [
            s for s in found if s.startswith("test-")
        ]
        if held_out:
            fixes.append(
                f"--librispeech_valid_splits {cli_list(held_out[:1])} (found in {librispeech})"
            )
        else:
            fixes.append(
                f'--librispeech_valid_splits "[dev-clean]" (download dev-clean.tar.gz, '
                f"{SPLIT_SIZES['dev-clean']}, from {DOWNLOAD_URL} and extract it inside "
                f"{librispeech})"
            )
    if audioset is None:
        state.append("AudioSet is left out (--audioset_folder null)")
    else:
        state.append("--audioset_valid_segments is []")
        fixes.append('--audioset_valid_segments "[eval]"')
    fixes.append("--valid_source /path/to/held-out/clips (a folder, CSV or JSON)")
    return OptionError(
        f"Pretraining needs a validation source, and the options give none: {'; '.join(state)}. "
        f"Pass {', or '.join(fixes)}."
    )


def check_pretraining_options(
    audioset_folder=None,
    audioset_train_segments=("unbalanced_train", "balanced_train"),
    audioset_valid_segments=("eval",),
    librispeech_folder=None,
    librispeech_train_splits=("train-clean-100", "train-clean-360", "train-other-500"),
    librispeech_valid_splits=(),
    extra_sources=(),
    valid_source=None,
):
    """Checks the data options of a pretraining run, in a second, before any preparation.

    Every error names the recipe option (``--audioset_folder``...) and a value
    that works: an unset dataset folder (an empty string: the recipes leave an
    unset ``!PLACEHOLDER`` so) says to pass the folder or ``null``; a missing
    folder, LibriSpeech split or source file is a
    :class:`~ssast_sb.data.options.MissingDataError`; options that give no
    training or no validation set say which ones would. A list option given as
    one string is a list of one.

    Arguments
    ---------
    audioset_folder, librispeech_folder : str, optional
        The dataset folders; None leaves the dataset out.
    audioset_train_segments, audioset_valid_segments : sequence of str
        AudioSet segment lists.
    librispeech_train_splits, librispeech_valid_splits : sequence of str
        LibriSpeech splits.
    extra_sources : sequence of str
        Folders, CSV or JSON lists of one's own audio, for training.
    valid_source : str, optional
        A folder, CSV or JSON list for validation.

    Returns
    -------
    dict
        The options, list options as lists.

    Raises
    ------
    ssast_sb.errors.OptionError
        Naming the option and what to pass (a ``MissingDataError`` for missing data).

    Example
    -------
    >>> try:
    ...     check_pretraining_options(audioset_folder="", librispeech_folder=None)
    ... except OptionError as error:
    ...     print(str(error).split(", ")[-1])
    or --audioset_folder null to pretrain without AudioSet.
    """
    options = {
        "audioset_folder": _check_dataset_folder("audioset_folder", audioset_folder),
        "audioset_train_segments": as_list(audioset_train_segments),
        "audioset_valid_segments": as_list(audioset_valid_segments),
        "librispeech_folder": _check_dataset_folder("librispeech_folder", librispeech_folder),
        "librispeech_train_splits": as_list(librispeech_train_splits),
        "librispeech_valid_splits": as_list(librispeech_valid_splits),
        "extra_sources": as_list(extra_sources),
        "valid_source": valid_source or None,
    }
    _check_sources("extra_sources", options["extra_sources"])
    _check_sources("valid_source", as_list(options["valid_source"]))
    if options["audioset_folder"] is not None:
        for key in ("audioset_train_segments", "audioset_valid_segments"):
            _check_segments(key, options[key])
    has_train = bool(options["extra_sources"])
    has_valid = options["valid_source"] is not None
    for dataset, train, valid in (
        ("audioset_folder", "audioset_train_segments", "audioset_valid_segments"),
        ("librispeech_folder", "librispeech_train_splits", "librispeech_valid_splits"),
    ):
        if options[dataset] is not None:
            has_train = has_train or bool(options[train])
            has_valid = has_valid or bool(options[valid])
    if not has_train:
        raise OptionError(
            "Pretraining needs a training source, and the options give none (no dataset folder "
            "with training splits, no --extra_sources). Pass --librispeech_folder "
            "/path/to/the/folder/of/LibriSpeech, --audioset_folder /path/to/audioset, or "
            f"--extra_sources {cli_list(['/path/to/clips'])}."
        )
    if not has_valid:
        raise _no_validation_error(options)
    if options["librispeech_folder"] is not None:
        for key in ("librispeech_train_splits", "librispeech_valid_splits"):
            check_splits(options["librispeech_folder"], options[key], f"--{key}")
    return options


def prepare_pretraining_data(
    save_folder,
    audioset_folder=None,
    audioset_train_segments=("unbalanced_train", "balanced_train"),
    audioset_valid_segments=("eval",),
    librispeech_folder=None,
    librispeech_train_splits=("train-clean-100", "train-clean-360", "train-other-500"),
    librispeech_valid_splits=(),
    extra_sources=(),
    valid_source=None,
    seed=0,
    on_bad_audio="error",
):
    """Prepares every source and writes ``pretrain_train.csv`` and ``pretrain_valid.csv``.

    Every manifest carries a preparation stamp (see
    :class:`ssast_sb.data.manifest.PreparationStamp`): a rerun into the same
    ``save_folder`` with other sources (``extra_sources``, ``valid_source``, the
    AudioSet or LibriSpeech folders and splits) or another ``on_bad_audio`` or
    ``seed`` rebuilds what changed, with a WARNING saying which option changed
    (old -> new), and the two pools follow the manifests they mix (their stamps
    record each source's path and content digest).

    Arguments
    ---------
    save_folder : str
        Where every manifest goes.
    audioset_folder : str, optional
        AudioSet root (official segment CSVs and ``audio/``); None leaves it out.
    audioset_train_segments, audioset_valid_segments : sequence of str
        AudioSet segment lists for training and validation.
    librispeech_folder : str, optional
        Folder holding ``LibriSpeech/``; None leaves it out.
    librispeech_train_splits, librispeech_valid_splits : sequence of str
        LibriSpeech splits for training and validation.
    extra_sources : sequence of str
        Folders, CSV or JSON manifests of one's own audio, mixed into training.
    valid_source : str, optional
        A folder/CSV/JSON used for validation (besides the splits above).
    seed : int
        Seed of the mixing shuffle.
    on_bad_audio : str
        ``error`` or ``skip`` (see :func:`ssast_sb.data.manifest.validate_audio_rows`).

    Returns
    -------
    dict
        ``{"train": path, "valid": path}``.

    Raises
    ------
    ssast_sb.errors.OptionError
        Before any preparation, when the options cannot work (see
        :func:`check_pretraining_options`): each error names the option and what to pass.

    Example
    -------
    >>> import os, tempfile, numpy as np, soundfile as sf
    >>> audio = tempfile.mkdtemp(); out = tempfile.mkdtemp()
    >>> for i in range(3):
    ...     sf.write(os.path.join(audio, f"{i}.wav"), np.zeros(1600, "float32"), 16000)
    >>> paths = prepare_pretraining_data(out, extra_sources=[audio], valid_source=audio)
    >>> sorted(paths)
    ['train', 'valid']
    """
    options = check_pretraining_options(
        audioset_folder,
        audioset_train_segments,
        audioset_valid_segments,
        librispeech_folder,
        librispeech_train_splits,
        librispeech_valid_splits,
        extra_sources,
        valid_source,
    )
    save_folder = Path(save_folder)
    train, valid = {}, {}
    if options["audioset_folder"] is not None:
        train_segments = options["audioset_train_segments"]
        valid_segments = options["audioset_valid_segments"]
        segments = list(dict.fromkeys([*train_segments, *valid_segments]))
        prepare_audioset(
            options["audioset_folder"],
            save_folder,
            segments,
            on_bad_audio=on_bad_audio,
            folder_option="--audioset_folder",
            segments_option="--audioset_train_segments",
        )
        train.update({f"audioset_{s}": save_folder / f"audioset_{s}.csv" for s in train_segments})
        valid.update({f"audioset_{s}": save_folder / f"audioset_{s}.csv" for s in valid_segments})
    if options["librispeech_folder"] is not None:
        train_splits = options["librispeech_train_splits"]
        valid_splits = options["librispeech_valid_splits"]
        splits = list(dict.fromkeys([*train_splits, *valid_splits]))
        prepare_librispeech(
            options["librispeech_folder"], save_folder, splits, on_bad_audio=on_bad_audio
        )
        train.update({s: save_folder / f"librispeech_{s}.csv" for s in train_splits})
        valid.update({s: save_folder / f"librispeech_{s}.csv" for s in valid_splits})
    for index, source in enumerate(options["extra_sources"]):
        name = f"source{index}_{Path(source).stem}"
        _prepare_source("extra_sources", source, save_folder, name, on_bad_audio)
        train[name] = save_folder / f"{name}.csv"
    if options["valid_source"] is not None:
        source = options["valid_source"]
        _prepare_source("valid_source", source, save_folder, "valid_source", on_bad_audio)
        valid["valid_source"] = save_folder / "valid_source.csv"
    outputs = {
        "train": save_folder / "pretrain_train.csv",
        "valid": save_folder / "pretrain_valid.csv",
    }
    for split, sources in (("train", train), ("valid", valid)):
        counts = mix_manifests(sources, outputs[split], seed=seed)
        logger.info("Pretraining %s set: %s", split, counts)
    return {split: str(path) for split, path in outputs.items()}
