"""Inference with an ONNX export through the interface of an inference folder.

:class:`ONNXAudioClassifier` loads a folder written by
``python -m ssast_sb.export MODEL --format onnx --output DIR`` and offers what
:class:`ssast_sb.inference.SSASTAudioClassifier` does (``classify_file``,
``classify_waveform``, ``classify_batch``, ``encode_batch``,
``extract_features``) with the same windows, padding and warnings: the fbank runs
in torch (:class:`ssast_sb.frontend.SSASTFbank`, with the export's statistics
and input length), the model in ONNX Runtime. :class:`ONNXEncoderInterface`
does the same for an encoder export (a self-supervised checkpoint, or
``--encoder-only``): it is :class:`ssast_sb.features.SSASTEncoderInterface`
(``encode_batch``, ``encode_frames``, ``encode_clips``, ``encode_file``) with
the ONNX graph in place of the torch encoder.

``onnxruntime`` is an optional dependency (``pip install -e ".[export]"``).

Authors
 * ssast-sb contributors
"""

import json
from pathlib import Path

import torch
from speechbrain.dataio.encoder import CategoricalEncoder

from ssast_sb.encoder import EncoderConfig, SSASTEncoder
from ssast_sb.export.onnx import METADATA_FILE
from ssast_sb.features import SSASTEncoderInterface
from ssast_sb.frontend import SSASTFbank
from ssast_sb.inference import SSASTAudioClassifier
from ssast_sb.windows import row_samples


def read_metadata(folder):
    """The ``ssast_onnx.json`` of an ONNX export folder, with an error naming a wrong folder.

    Arguments
    ---------
    folder : str or pathlib.Path
        Written by ``python -m ssast_sb.export ... --format onnx``.

    Returns
    -------
    dict
    """
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder} is not an ONNX export folder: it has no {METADATA_FILE} (write one "
            "with python -m ssast_sb.export MODEL --format onnx --output DIR)"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def export_frontend(metadata):
    """The :class:`~ssast_sb.frontend.SSASTFbank` of an export: its statistics and length."""
    return SSASTFbank(
        target_frames=metadata["target_frames"],
        mean=metadata["mean"],
        std=metadata["std"],
        variable_length=metadata["dynamic_time"],
    )


class ONNXModel(torch.nn.Module):
    """An ONNX Runtime session as a module: tensors in, a dict of named tensors out.

    Arguments
    ---------
    path : str or pathlib.Path
        The ``.onnx`` file.
    threads : int, optional
        Intra-op threads (default: torch's ``get_num_threads()``).
    """

    def __init__(self, path, threads=None):
        super().__init__()
        try:
            import onnxruntime
        except ImportError as error:
            raise ImportError(
                'Running an ONNX export needs onnxruntime: pip install -e ".[export]"'
            ) from error
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.path = str(path)
        self.session = onnxruntime.InferenceSession(
            self.path, options, providers=["CPUExecutionProvider"]
        )
        self.input_names = {item.name for item in self.session.get_inputs()}
        self.output_names = [item.name for item in self.session.get_outputs()]

    def forward(self, spectrogram, num_frames):
        """The session's outputs, by name, for ``(B, T, F)`` features and ``(B,)`` real frames."""
        feeds = {"spectrogram": spectrogram.detach().float().cpu().contiguous().numpy()}
        if "num_frames" in self.input_names:
            feeds["num_frames"] = num_frames.detach().long().cpu().numpy()
        outputs = self.session.run(None, feeds)
        return {name: torch.from_numpy(out) for name, out in zip(self.output_names, outputs)}


class ONNXAudioClassifier(SSASTAudioClassifier):
    """:class:`~ssast_sb.inference.SSASTAudioClassifier` running an ONNX export.

    Example
    -------
    >>> import pytest, tempfile
    >>> _ = pytest.importorskip("onnxruntime")  # the export extra
    >>> from ssast_sb.encoder import EncoderConfig, SSASTEncoder
    >>> from ssast_sb.export.onnx import export_onnx
    >>> from ssast_sb.export.source import ExportSource
    >>> from ssast_sb.models import SSASTClassifier
    >>> config = EncoderConfig(embed_dim=16, depth=1, num_heads=2, input_tdim=32)
    >>> model = SSASTClassifier(SSASTEncoder(config), 2).eval()
    >>> folder = tempfile.mkdtemp()
    >>> _ = export_onnx(ExportSource("demo", model.encoder, model, labels=["dog", "rain"]), folder)
    >>> classifier = ONNXAudioClassifier.from_folder(folder)
    >>> out_prob, score, index, text_lab = classifier.classify_batch(torch.randn(3, 8000))
    >>> out_prob.shape, text_lab[0] in ("dog", "rain")
    (torch.Size([3, 2]), True)
    >>> classifier.encode_batch(torch.randn(2, 8000)).shape
    torch.Size([2, 1, 16])
    """

    HPARAMS_NEEDED = ["label_encoder", "multi_label"]
    MODULES_NEEDED = ["compute_features", "onnx_model"]

    @classmethod
    def from_folder(cls, folder, threads=None):
        """Loads an ONNX export folder (``model.onnx`` and ``ssast_onnx.json``).

        Arguments
        ---------
        folder : str or pathlib.Path
            Written by ``python -m ssast_sb.export ... --format onnx``.
        threads : int, optional
            ONNX Runtime's intra-op threads (default: torch's).

        Returns
        -------
        ONNXAudioClassifier
        """
        folder = Path(folder)
        metadata = read_metadata(folder)
        if "logits" not in metadata["outputs"]:
            raise ValueError(
                f"{folder} is an encoder export (no classes): load it with "
                "ssast_sb.onnx_inference.ONNXEncoderInterface.from_folder"
            )
        frontend = export_frontend(metadata)
        label_encoder = CategoricalEncoder()
        if metadata["labels"]:
            label_encoder.update_from_iterable(metadata["labels"])
        modules = {
            "compute_features": frontend,
            "onnx_model": ONNXModel(folder / metadata["file"], threads),
        }
        hparams = {
            "label_encoder": label_encoder,
            "multi_label": metadata["multi_label"],
            "metadata": metadata,
            "source": str(folder),
        }
        return cls(modules=modules, hparams=hparams, run_opts={"device": "cpu"})

    def _outputs(self, wavs, wav_lens):
        """The ONNX model's outputs for rows that the frontend pads or cuts."""
        wavs = wavs.float().cpu()
        features = self.mods.compute_features(wavs, wav_lens)
        num_frames = self.mods.compute_features.real_frames(row_samples(wavs, wav_lens))
        return self.mods.onnx_model(features, num_frames)

    def _embed(self, wavs, wav_lens):
        """``(B, 1, D)`` embeddings, as the torch model's ``embedding_model`` gives."""
        return self._outputs(wavs, wav_lens)["embedding"].unsqueeze(1)

    def _log_probs(self, wavs, wav_lens):
        """``(B, C)`` log-probabilities: log-softmax, or log-sigmoid for multi-label models."""
        logits = self._outputs(wavs, wav_lens)["logits"]
        if self.hparams.multi_label:
            return torch.nn.functional.logsigmoid(logits)
        return logits.log_softmax(dim=-1)

    def extract_features(self, wavs, wav_lens=None, return_layers=False):
        """Not in a classifier export, which outputs logits and the pooled embedding."""
        raise ValueError(
            f"{self.hparams.source} is a classifier export: it outputs logits and the pooled "
            "embedding (encode_batch); export with --encoder-only for the tokens"
        )


class ONNXEncoder(torch.nn.Module):
    """An encoder export's graph in place of :class:`~ssast_sb.encoder.SSASTEncoder`.

    It has the encoder's ``config``, grids and class tokens, and gives its last
    output; ``return_layers`` is refused (the export holds the last output only).

    Arguments
    ---------
    path : str or pathlib.Path
        The ``.onnx`` file.
    config : ssast_sb.encoder.EncoderConfig
        The exported encoder's config.
    threads : int, optional
        ONNX Runtime's intra-op threads.
    """

    num_class_tokens = SSASTEncoder.num_class_tokens

    def __init__(self, path, config, threads=None):
        super().__init__()
        self.config = config
        self.model = ONNXModel(path, threads)

    @property
    def grid(self):
        """``(f_dim, t_dim)`` of the patch grid."""
        return self.config.grid

    input_grid = SSASTEncoder.input_grid

    def forward(self, spectrogram, return_layers=False):
        """Tokens ``(B, 2 + N, D)`` of ``(B, T, F)`` features (after the final LayerNorm)."""
        if return_layers:
            raise ValueError(
                f"The ONNX export {self.model.path} holds the encoder's last output only: use "
                "layer 'last' (or the torch model for other layers)"
            )
        num_frames = torch.full((spectrogram.shape[0],), spectrogram.shape[1])
        return self.model(spectrogram, num_frames)["tokens"]


class ONNXEncoderInterface(SSASTEncoderInterface):
    """:class:`~ssast_sb.features.SSASTEncoderInterface` running an encoder export.

    Example
    -------
    >>> import pytest, tempfile
    >>> _ = pytest.importorskip("onnxruntime")  # the export extra
    >>> from ssast_sb.export.onnx import export_onnx
    >>> from ssast_sb.export.source import ExportSource
    >>> config = EncoderConfig(embed_dim=16, depth=1, num_heads=2, input_tdim=64,
    ...                        variable_length=True)
    >>> folder = tempfile.mkdtemp()
    >>> _ = export_onnx(ExportSource("demo", SSASTEncoder(config).eval()), folder)
    >>> interface = ONNXEncoderInterface.from_folder(folder)
    >>> interface.encode_batch(torch.randn(2, 8000)).shape
    torch.Size([2, 16])
    """

    @classmethod
    def from_folder(cls, folder, threads=None):
        """Loads an encoder export folder (``model.onnx`` and ``ssast_onnx.json``).

        Arguments
        ---------
        folder : str or pathlib.Path
            Written by ``python -m ssast_sb.export ... --format onnx`` from a
            pretraining checkpoint, or with ``--encoder-only``.
        threads : int, optional
            ONNX Runtime's intra-op threads (default: torch's).

        Returns
        -------
        ONNXEncoderInterface
        """
        folder = Path(folder)
        metadata = read_metadata(folder)
        if "tokens" not in metadata["outputs"]:
            raise ValueError(
                f"{folder} is a classifier export: load it with "
                "ssast_sb.onnx_inference.ONNXAudioClassifier.from_folder"
            )
        config = EncoderConfig(**metadata["encoder_config"])
        modules = {
            "compute_features": export_frontend(metadata),
            "encoder": ONNXEncoder(folder / metadata["file"], config, threads),
        }
        hparams = {"source": str(folder), "pad_to_input": not metadata["dynamic_time"]}
        return cls(modules=modules, hparams=hparams, run_opts={"device": "cpu"})
