"""SpeechBrain data pipelines: manifest rows to SSAST features.

Features are computed in the data loader's workers, as the original loader
does: read the file (resampled to 16 kHz and mixed to mono by
:func:`ssast_sb.data.audio.load_audio`), Kaldi fbank, pad or cut, normalise.

Authors
 * ssast-sb contributors
"""

import speechbrain as sb
import torch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.encoder import CategoricalEncoder

from ssast_sb.data.audio import load_audio
from ssast_sb.frontend import SAMPLE_RATE


def fbank_pipeline(frontend):
    """A dynamic item that turns the ``wav`` column into normalised ``fbank`` features.

    Arguments
    ---------
    frontend : ssast_sb.frontend.SSASTFbank
        Target length and statistics.

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

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("fbank")
    def wav_to_fbank(wav):
        waveform = load_audio(wav, SAMPLE_RATE)
        return frontend.normalize(frontend.raw_features(waveform))

    return wav_to_fbank


def manifest_dataset(manifest_path, dynamic_items, output_keys):
    """A ``DynamicItemDataset`` over a SpeechBrain CSV manifest.

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
    """
    return DynamicItemDataset.from_csv(
        str(manifest_path), dynamic_items=dynamic_items, output_keys=output_keys
    )


def label_pipeline(label_encoder):
    """A dynamic item that encodes the ``label`` column as ``target`` (a class index).

    Arguments
    ---------
    label_encoder : speechbrain.dataio.encoder.CategoricalEncoder
        A fitted encoder.

    Returns
    -------
    callable
        Takes ``label``, provides ``target``: a ``(1,)`` int64 tensor.

    Example
    -------
    >>> from speechbrain.dataio.encoder import CategoricalEncoder
    >>> encoder = CategoricalEncoder()
    >>> encoder.update_from_iterable(["dog", "rain"])
    >>> label_pipeline(encoder)("rain")
    tensor([1])
    """

    @sb.utils.data_pipeline.takes("label")
    @sb.utils.data_pipeline.provides("target")
    def encode(label):
        if label not in label_encoder.lab2ind:
            raise KeyError(
                f"Label {label!r} is not in the label encoder "
                f"(known: {sorted(label_encoder.lab2ind)[:20]})"
            )
        return torch.LongTensor([label_encoder.encode_label(label)])

    return encode


def fit_label_encoder(dataset, path=None):
    """A ``CategoricalEncoder`` over the ``label`` column, saved to / loaded from ``path``.

    Arguments
    ---------
    dataset : DynamicItemDataset
        Training set with a ``label`` column.
    path : str, optional
        Where the encoder is saved (and read back on later runs).

    Returns
    -------
    speechbrain.dataio.encoder.CategoricalEncoder
    """
    encoder = CategoricalEncoder()
    if path is not None and encoder.load_if_possible(path):
        return encoder
    labels = [row["label"] for row in dataset.data.values()]
    encoder.update_from_iterable(sorted(set(labels)))
    if path is not None:
        encoder.save(path)
    return encoder
