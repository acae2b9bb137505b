"""SpeechBrain data pipelines: manifest rows to SSAST features.

Features are computed in the data loader's workers, as the original loader
does: read the file (resampled to 16 kHz and mixed to mono by
:func:`ssast_sb.data.audio.load_audio`), Kaldi fbank, pad or cut, normalise.

Authors
 * ssast-sb contributors
"""

import logging
import os
import random
from pathlib import Path

import speechbrain as sb
import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.encoder import CategoricalEncoder

from ssast_sb.data.audio import (
    AudioError,
    announce_once,
    load_audio,
    share_announcements_with_workers,
)
from ssast_sb.data.manifest import ManifestError, read_manifest
from ssast_sb.errors import OptionError
from ssast_sb.frontend import SAMPLE_RATE, pad_or_cut
from ssast_sb.padding import random_crop as crop_or_pad

logger = logging.getLogger(__name__)


class SkippingPaddedBatch(PaddedBatch):
    """``PaddedBatch`` that drops the items whose audio was skipped (a None value).

    Arguments
    ---------
    examples : list of dict
        Items of the batch.
    *args, **kwargs
        Passed to ``PaddedBatch``.

    Example
    -------
    >>> batch = SkippingPaddedBatch([{"id": "a", "sig": torch.ones(3)}, {"id": "b", "sig": None}])
    >>> batch.id, batch.sig.data.shape
    (['a'], torch.Size([1, 3]))
    """

    def __init__(self, examples, *args, **kwargs):
        kept = [item for item in examples if all(value is not None for value in item.values())]
        if len(kept) < len(examples):
            logger.warning("Dropped %d unusable clip(s) from a batch", len(examples) - len(kept))
        if not kept:
            raise AudioError(
                "Every clip of a batch was unusable: "
                + ", ".join(str(e.get("id")) for e in examples)
            )
        super().__init__(kept, *args, **kwargs)


def _read_or_skip(wav, sample_rate, on_bad_audio):
    """Reads a file; under ``skip`` an unusable file gives None (dropped by the collate).

    The warning naming a skipped file is logged once per file and process, not every epoch.
    """
    try:
        return load_audio(wav, sample_rate)
    except AudioError as error:
        if on_bad_audio != "skip":
            raise
        announce_once(
            "skip", wav, logging.WARNING, "Skipping unusable audio: %s", error, log=logger
        )
        return None


def fbank_pipeline(frontend, on_bad_audio="error"):
    """A dynamic item that turns the ``wav`` column into normalised ``fbank`` features.

    Arguments
    ---------
    frontend : ssast_sb.frontend.SSASTFbank
        Target length and statistics.
    on_bad_audio : str
        ``error``: an unreadable, empty or non-finite file raises an error naming it;
        ``skip``: it gives None, dropped from its batch by :class:`SkippingPaddedBatch`.

    Returns
    -------
    callable
        Takes ``wav``, provides ``fbank`` of shape ``(target_frames, 128)``.

    Example
    -------
    >>> import os, tempfile, numpy as np, soundfile as sf
    >>> from ssast_sb.frontend import SSASTFbank
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(path, np.random.randn(16000).astype("float32") * 0.1, 16000)
    >>> fbank_pipeline(SSASTFbank(target_frames=100))(path).shape
    torch.Size([100, 128])
    """

    share_announcements_with_workers()

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("fbank")
    def wav_to_fbank(wav):
        waveform = _read_or_skip(wav, SAMPLE_RATE, on_bad_audio)
        if waveform is None:
            return None
        return frontend.normalize(frontend.raw_features(waveform))

    return wav_to_fbank


def cropped_fbank_pipeline(frontend, on_bad_audio="error", random_crop=True):
    """Like :func:`fbank_pipeline`, also providing each clip's real frames (``num_frames``).

    For padding-aware pretraining (:mod:`ssast_sb.padding`): a clip longer than
    the input is cropped at a random position (``random_crop``) instead of
    being cut at its start; a shorter one is zero-padded as the original does.

    Arguments
    ---------
    frontend : ssast_sb.frontend.SSASTFbank
        Target length and statistics.
    on_bad_audio : str
        ``error`` or ``skip``, as :func:`fbank_pipeline`.
    random_crop : bool
        Random crop positions (training); False cuts at the start (evaluation).

    Returns
    -------
    callable
        Takes ``wav``, provides ``fbank`` ``(target_frames, 128)`` and ``num_frames`` (int).

    Example
    -------
    >>> import os, tempfile, numpy as np, soundfile as sf
    >>> from ssast_sb.frontend import SSASTFbank
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(path, np.random.randn(8000).astype("float32") * 0.1, 16000)
    >>> pipeline = cropped_fbank_pipeline(SSASTFbank(target_frames=100))
    >>> data = DynamicItemDataset({"a": {"wav": path}}, [pipeline], ["fbank", "num_frames"])
    >>> data[0]["fbank"].shape, data[0]["num_frames"]
    (torch.Size([100, 128]), 48)
    """
    target = frontend.target_frames

    share_announcements_with_workers()

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("fbank", "num_frames")
    def wav_to_cropped_fbank(wav):
        waveform = _read_or_skip(wav, SAMPLE_RATE, on_bad_audio)
        if waveform is None:
            yield None
            yield None
            return
        raw = frontend.raw_features_unpadded(waveform)
        if random_crop:
            cropped, num_frames = crop_or_pad(raw, target)
        else:
            cropped, num_frames = pad_or_cut(raw, target), min(raw.shape[0], target)
        yield frontend.normalize(cropped)
        yield num_frames

    return wav_to_cropped_fbank


def manifest_dataset(manifest_path, dynamic_items, output_keys):
    """A ``DynamicItemDataset`` over a SpeechBrain CSV manifest.

    The CSV is read by :func:`ssast_sb.data.manifest.read_manifest`, so a UTF-8
    byte-order mark (as spreadsheet programs write) is ignored, where
    SpeechBrain's own reader would take it for part of the ``ID`` column's name.

    Arguments
    ---------
    manifest_path : str
        CSV with at least ``ID``, ``duration`` and ``wav``.
    dynamic_items : list of callable
        Pipelines (e.g. :func:`fbank_pipeline`).
    output_keys : list of str
        What each item returns.

    Returns
    -------
    DynamicItemDataset

    Raises
    ------
    ssast_sb.data.manifest.ManifestError
        When a required column is absent, a duration is not a number or an ID repeats.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "excel.csv")
    >>> _ = open(path, "w", encoding="utf-8-sig").write("ID,duration,wav\\na,1.0,/a.wav\\n")
    >>> manifest_dataset(path, [], ["id", "wav"])[0]
    {'id': 'a', 'wav': '/a.wav'}
    """
    data = {}
    for row in read_manifest(manifest_path):
        utt_id = row.pop("ID")
        if utt_id in data:
            raise ManifestError(f"Duplicate ID {utt_id!r} in {manifest_path}")
        data[utt_id] = row
    return DynamicItemDataset(data, dynamic_items=dynamic_items, output_keys=output_keys)


def label_pipeline(label_encoder, column="label"):
    """A dynamic item that encodes a label column as ``target`` (a class index).

    Arguments
    ---------
    label_encoder : speechbrain.dataio.encoder.CategoricalEncoder
        A fitted encoder.
    column : str
        The manifest column holding the label.

    Returns
    -------
    callable
        Takes ``column``, provides ``target``: a ``(1,)`` int64 tensor.

    Example
    -------
    >>> from speechbrain.dataio.encoder import CategoricalEncoder
    >>> encoder = CategoricalEncoder()
    >>> encoder.update_from_iterable(["dog", "rain"])
    >>> label_pipeline(encoder)("rain")
    tensor([1])
    """

    @sb.utils.data_pipeline.takes(column)
    @sb.utils.data_pipeline.provides("target")
    def encode(label):
        if label not in label_encoder.lab2ind:
            raise KeyError(
                f"Label {label!r} is not in the label encoder "
                f"(known: {sorted(label_encoder.lab2ind)[:20]})"
            )
        return torch.LongTensor([label_encoder.encode_label(label)])

    return encode


def fit_label_encoder(dataset, path=None, separator=None, column="label"):
    """A ``CategoricalEncoder`` over a label column, created once and saved at ``path``.

    The classes are indexed in sorted order, so every run, fold and process
    agrees on them whatever the manifest's row order (SpeechBrain's
    ``update_from_didataset`` would index them in order of appearance). With a
    ``path``, the file is written on the main process (``run_on_main``) and every
    process reads it; an encoder already there (e.g. AudioSet's full class list)
    is used as it is.

    Arguments
    ---------
    dataset : DynamicItemDataset
        Training set with the label column.
    path : str, optional
        Where the encoder is saved (and read back on later runs).
    separator : str, optional
        For multi-label columns, the separator of the labels.
    column : str
        The manifest column holding the labels.

    Returns
    -------
    speechbrain.dataio.encoder.CategoricalEncoder

    Example
    -------
    >>> dataset = DynamicItemDataset({"a": {"label": "rain"}, "b": {"label": "dog"}})
    >>> fit_label_encoder(dataset).lab2ind
    {'dog': 0, 'rain': 1}
    """
    labels = set()
    for row in dataset.data.values():
        labels.update(row[column].split(separator) if separator else [row[column]])
    encoder = CategoricalEncoder()
    if path is None:
        encoder.update_from_iterable(sorted(labels - {""}))
        return encoder
    # Not SpeechBrain's load_or_create: it reads the file back into the encoder it has just
    # filled on the main process, which logs "Load called, but CategoricalEncoder is not
    # empty" in every first run. The same protocol with a fresh encoder: written once on the
    # main process (atomically), then read by every process.
    path = Path(path)

    def write_if_missing():
        if not path.exists():
            created = CategoricalEncoder()
            created.update_from_iterable(sorted(labels - {""}))
            partial = path.with_name(path.name + ".partial")
            created.save(partial)
            os.replace(partial, path)

    sb.utils.distributed.run_on_main(write_if_missing)
    encoder.load(path)
    return encoder


def waveform_pipeline(max_crop_s=None, sample_rate=SAMPLE_RATE, on_bad_audio="error"):
    """A dynamic item that reads the ``wav`` column as a 16 kHz mono ``sig``.

    Arguments
    ---------
    max_crop_s : float, optional
        Training crops: a random segment of at most this many seconds (the SUPERB
        speaker-identification recipe uses 8 s). None keeps the whole clip.
    sample_rate : int
        Output sample rate.
    on_bad_audio : str
        ``error`` or ``skip`` (see :func:`fbank_pipeline`).

    Returns
    -------
    callable
        Takes ``wav``, provides ``sig`` (1-D float tensor).

    Example
    -------
    >>> import os, tempfile, numpy as np, soundfile as sf
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(path, np.zeros(32000, "float32"), 16000)
    >>> waveform_pipeline(max_crop_s=1.0)(path).shape
    torch.Size([16000])
    """

    share_announcements_with_workers()

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def read(wav):
        signal = _read_or_skip(wav, sample_rate, on_bad_audio)
        if signal is None:
            return None
        if max_crop_s is not None and signal.numel() > max_crop_s * sample_rate:
            length = int(max_crop_s * sample_rate)
            start = random.randint(0, signal.numel() - length)
            signal = signal[start : start + length]
        return signal

    return read


def multi_hot_pipeline(label_encoder, separator=";", column="label"):
    """A dynamic item that turns a column of labels joined by ``separator`` into ``target``.

    Arguments
    ---------
    label_encoder : speechbrain.dataio.encoder.CategoricalEncoder
        Maps each label to its index.
    separator : str
        Separator of the labels in the column.
    column : str
        The manifest column holding the labels.

    Returns
    -------
    callable
        Takes ``column``, provides ``target``: a ``(C,)`` float tensor.

    Example
    -------
    >>> from speechbrain.dataio.encoder import CategoricalEncoder
    >>> encoder = CategoricalEncoder()
    >>> encoder.update_from_iterable(["/m/dog", "/m/rain", "/m/wind"])
    >>> multi_hot_pipeline(encoder)("/m/dog;/m/wind")
    tensor([1., 0., 1.])
    """
    encode_one = label_pipeline(label_encoder)

    @sb.utils.data_pipeline.takes(column)
    @sb.utils.data_pipeline.provides("target")
    def encode(label):
        target = torch.zeros(len(label_encoder.lab2ind))
        for name in filter(None, label.split(separator)):
            target[encode_one(name)] = 1.0
        return target

    return encode


def classification_datasets(hparams, manifests, label_encoder_path):
    """Datasets providing ``sig`` and ``target``, and the label encoder of the training set.

    The label encoder is fitted on the training manifest and saved at
    ``label_encoder_path`` (:func:`fit_label_encoder`).

    Arguments
    ---------
    hparams : dict
        ``multi_label``, ``label_separator``, ``label_column``, ``max_train_crop_s``
        and ``on_bad_audio`` (``error`` or ``skip``).
    manifests : dict
        ``train``, ``valid`` and optionally ``test`` CSVs with the label column.
    label_encoder_path : str or pathlib.Path
        Where the label encoder is written or read.

    Returns
    -------
    datasets : dict
    label_encoder : CategoricalEncoder
    """
    separator = hparams["label_separator"] if hparams["multi_label"] else None
    column = hparams["label_column"]
    datasets = {
        split: manifest_dataset(path, [], ["id"])
        for split, path in manifests.items()
        if path is not None
    }
    for split, dataset in datasets.items():
        first = next(iter(dataset.data.values()), {})
        clashes = {"sig", "target"} & set(first)
        if clashes:
            raise ValueError(
                f"The {split} manifest has column(s) {sorted(clashes)}, which the fine-tuning "
                "pipeline computes itself; rename or drop them"
            )
        if first and column not in first:
            raise OptionError(
                f"The {split} manifest {manifests[split]} has no label column {column!r} "
                f"(--label_column {column}; its columns: {sorted(first)}): pass as "
                "--label_column the column of the class labels."
            )
    encoder = fit_label_encoder(datasets["train"], label_encoder_path, separator, column)
    if separator:
        targets = multi_hot_pipeline(encoder, separator, column)
    else:
        targets = label_pipeline(encoder, column)
    for split, dataset in datasets.items():
        crop = hparams["max_train_crop_s"] if split == "train" else None
        dataset.add_dynamic_item(waveform_pipeline(crop, on_bad_audio=hparams["on_bad_audio"]))
        dataset.add_dynamic_item(targets)
        dataset.set_output_keys(["id", "sig", "target"])
    return datasets, encoder
