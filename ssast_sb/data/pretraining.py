"""Assembles the unlabeled pretraining set from several sources (docs/fidelity.md a.5).

The paper mixes AudioSet-2M and LibriSpeech-960 into one shuffled list and
validates on the AudioSet eval set. Any folder, CSV or JSON of one's own audio
can join (or replace) them.

Authors
 * ssast-sb contributors
"""

import logging
from pathlib import Path

from .audioset import prepare_audioset
from .generic import mix_manifests, prepare_generic
from .librispeech import prepare_librispeech

logger = logging.getLogger(__name__)


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
    save_folder = Path(save_folder)
    train, valid = {}, {}
    if audioset_folder:
        segments = list(dict.fromkeys([*audioset_train_segments, *audioset_valid_segments]))
        prepare_audioset(audioset_folder, save_folder, segments, on_bad_audio=on_bad_audio)
        train.update(
            {f"audioset_{s}": save_folder / f"audioset_{s}.csv" for s in audioset_train_segments}
        )
        valid.update(
            {f"audioset_{s}": save_folder / f"audioset_{s}.csv" for s in audioset_valid_segments}
        )
    if librispeech_folder:
        splits = list(dict.fromkeys([*librispeech_train_splits, *librispeech_valid_splits]))
        prepare_librispeech(librispeech_folder, save_folder, splits, on_bad_audio=on_bad_audio)
        train.update({s: save_folder / f"librispeech_{s}.csv" for s in librispeech_train_splits})
        valid.update({s: save_folder / f"librispeech_{s}.csv" for s in librispeech_valid_splits})
    for index, source in enumerate(extra_sources):
        name = f"source{index}_{Path(source).stem}"
        prepare_generic(source, save_folder, name, on_bad_audio=on_bad_audio)
        train[name] = save_folder / f"{name}.csv"
    if valid_source:
        prepare_generic(valid_source, save_folder, "valid_source", on_bad_audio=on_bad_audio)
        valid["valid_source"] = save_folder / "valid_source.csv"
    if not train or not valid:
        raise ValueError(
            "Pretraining needs at least one training and one validation source: set "
            "audioset_folder, librispeech_folder (with validation splits), extra_sources "
            "or valid_source"
        )
    outputs = {
        "train": save_folder / "pretrain_train.csv",
        "valid": save_folder / "pretrain_valid.csv",
    }
    for split, sources in (("train", train), ("valid", valid)):
        counts = mix_manifests(sources, outputs[split], seed=seed)
        logger.info("Pretraining %s set: %s", split, counts)
    return {split: str(path) for split, path in outputs.items()}
