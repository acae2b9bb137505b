"""Export of SSAST classifiers and encoders (patch and frame) to ONNX.

The graph takes normalised fbank features ``spectrogram`` ``(B, T, 128)`` and
``num_frames`` ``(B,)`` (the real frames of each row, for pooling over real
audio) and gives, for a classifier, ``logits`` and its pooled ``embedding``;
for an encoder, the mean-pooled ``embedding`` and every ``tokens`` output
(class tokens first). The batch axis is dynamic, and so is the time axis of a
variable-length model (up to its input length). The fbank stays in torch
(:class:`ssast_sb.frontend.SSASTFbank`); :class:`ssast_sb.onnx_inference.ONNXAudioClassifier`
runs both steps.

``quantize="int8"`` applies ONNX Runtime's dynamic quantization to the weights
of the linear layers (int8 weights, activations quantized per call).

The graph is traced by ``torch.onnx.export(..., dynamo=False)``: the tracing
exporter keeps the time axis symbolic through the position-embedding slice and
needs no extra package. Before tracing, each attention's fused ``qkv``
projection is split into three linear layers (the same products), so that
every matrix product reads a constant weight, which quantization needs.

Authors
 * ssast-sb contributors
"""

import copy
import dataclasses
import json
import os
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from ssast_sb.batch_padding import counted_frames
from ssast_sb.compat import onnx_export_options
from ssast_sb.encoder import Attention, pool_tokens
from ssast_sb.fileio import atomic_open

#: The ONNX opset written (SDPA is traced as MatMul/Softmax, LayerNorm as one op).
OPSET = 17
#: Quantization modes of :func:`export_onnx`.
QUANTIZATIONS = ("int8",)
#: Metadata file of an ONNX export folder, read by ``ONNXAudioClassifier``.
METADATA_FILE = "ssast_onnx.json"


class SplitAttention(torch.nn.Module):
    """:class:`~ssast_sb.encoder.Attention` with query, key and value as three linear layers.

    Arguments
    ---------
    attention : ssast_sb.encoder.Attention
        The attention to copy (its fused ``qkv`` rows split in three).

    Example
    -------
    >>> attention = Attention(12, 3).eval()
    >>> tokens = torch.randn(2, 5, 12)
    >>> torch.allclose(SplitAttention(attention)(tokens), attention(tokens), atol=1e-6)
    True
    """

    def __init__(self, attention):
        super().__init__()
        width = attention.proj.in_features
        self.num_heads = attention.num_heads
        self.query, self.key, self.value = (torch.nn.Linear(width, width) for _ in range(3))
        weights = attention.qkv.weight.detach().split(width)
        biases = attention.qkv.bias.detach().split(width)
        for layer, weight, bias in zip((self.query, self.key, self.value), weights, biases):
            layer.weight.data.copy_(weight)
            layer.bias.data.copy_(bias)
        self.proj = copy.deepcopy(attention.proj)

    def forward(self, tokens, key_mask=None):
        """Attends over ``(B, L, D)`` tokens (to the keys of ``key_mask`` when given)."""
        batch, length, width = tokens.shape
        heads = (batch, length, self.num_heads, width // self.num_heads)
        query, key, value = (
            layer(tokens).view(heads).transpose(1, 2)
            for layer in (self.query, self.key, self.value)
        )
        mask = None if key_mask is None else key_mask[:, None, None, :]
        attended = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        return self.proj(attended.transpose(1, 2).reshape(batch, length, width))


def split_attention(module):
    """A deep copy of ``module`` whose every :class:`Attention` is a :class:`SplitAttention`.

    Example
    -------
    >>> from ssast_sb.encoder import EncoderConfig, SSASTEncoder
    >>> encoder = SSASTEncoder(EncoderConfig(embed_dim=8, depth=1, num_heads=2, input_tdim=32))
    >>> copied = split_attention(encoder)
    >>> type(copied.blocks[0].attn).__name__, type(encoder.blocks[0].attn).__name__
    ('SplitAttention', 'Attention')
    """
    module = copy.deepcopy(module)
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if isinstance(child, Attention):
                setattr(parent, name, SplitAttention(child))
    return module


class ExportGraph(torch.nn.Module):
    """What is traced: features and real frames in, logits or tokens and an embedding out.

    Arguments
    ---------
    source : ssast_sb.export.source.ExportSource
        The model.

    Example
    -------
    >>> from ssast_sb.encoder import EncoderConfig, SSASTEncoder
    >>> from ssast_sb.export.source import ExportSource
    >>> encoder = SSASTEncoder(EncoderConfig(embed_dim=8, depth=1, num_heads=2, input_tdim=32))
    >>> graph = ExportGraph(ExportSource("random", encoder.eval()))
    >>> graph.output_names
    ('embedding', 'tokens')
    >>> [tuple(out.shape) for out in graph(torch.randn(2, 32, 128), torch.tensor([32, 10]))]
    [(2, 8), (2, 18, 8)]
    """

    def __init__(self, source):
        super().__init__()
        self.is_classifier = source.classifier is not None
        self.model = split_attention(source.classifier if self.is_classifier else source.encoder)
        self.pool_real_audio = source.pool_real_audio or not self.is_classifier
        self.output_names = (
            ("logits", "embedding") if self.is_classifier else ("embedding", "tokens")
        )

    @property
    def encoder(self):
        """The (split-attention) encoder."""
        return self.model.encoder if self.is_classifier else self.model

    def forward(self, spectrogram, num_frames):
        """``(logits, embedding)`` of a classifier, ``(embedding, tokens)`` of an encoder.

        A variable-length graph attends within each row's own frames
        (:mod:`ssast_sb.batch_padding`), so that a row's outputs do not depend on
        the rows it is batched with.
        """
        num_frames = counted_frames(
            num_frames, self.pool_real_audio, self.encoder.config.variable_length
        )
        if self.is_classifier:
            embedding = self.model.embed(spectrogram, num_frames)
            return self.model.classify_embedding(embedding), embedding
        tokens = self.model(spectrogram, num_frames=num_frames)
        valid = self.model.pooled_patches(num_frames, spectrogram.shape[1])
        return pool_tokens(tokens, "mean", self.model.num_class_tokens, valid), tokens


def _trace(graph, config, path):
    """Traces ``graph`` to ``path`` with a dynamic batch (and time, when variable)."""
    frames = config.input_tdim
    example = (torch.randn(2, frames, config.input_fdim), torch.full((2,), frames))
    axes = {"spectrogram": {0: "batch"}, "num_frames": {0: "batch"}}
    if config.variable_length:
        axes["spectrogram"][1] = "frames"
    for name in graph.output_names:
        axes[name] = {0: "batch"}
    if config.variable_length and "tokens" in axes:
        axes["tokens"][1] = "tokens"
    with warnings.catch_warnings(), torch.no_grad():
        # The tracer warns about every Python comparison of shapes (the input checks).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            example,
            str(path),
            input_names=["spectrogram", "num_frames"],
            output_names=list(graph.output_names),
            dynamic_axes=axes,
            opset_version=OPSET,
            **onnx_export_options(),
        )


def quantize_int8(path, output):
    """ONNX Runtime's dynamic int8 quantization of the model's linear layers.

    Arguments
    ---------
    path : str or pathlib.Path
        The fp32 model.
    output : str or pathlib.Path
        The quantized model.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(path),
        str(output),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm"],
        extra_options={"MatMulConstBOnly": True},
    )


def export_onnx(source, output, quantize=None):
    """Writes an ONNX export folder: ``model.onnx``, its metadata and model card.

    Arguments
    ---------
    source : ssast_sb.export.source.ExportSource
        The model.
    output : str or pathlib.Path
        The folder (created).
    quantize : str, optional
        ``int8``: dynamic int8 quantization of the linear layers.

    Returns
    -------
    dict
        What was written (also ``ssast_onnx.json``): ``file``, ``outputs``,
        ``dynamic_time``, ``quantized``, ``opset`` and the frontend settings.
    """
    from ssast_sb.export.card import onnx_model_card

    if quantize not in (None, *QUANTIZATIONS):
        raise ValueError(f"Unknown quantization {quantize!r}; choose from {QUANTIZATIONS}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    graph = ExportGraph(source).eval()
    final = output / "model.onnx"
    with tempfile.TemporaryDirectory(dir=output) as scratch:
        traced = Path(scratch) / "model.onnx"
        _trace(graph, source.config, traced)
        if quantize == "int8":
            quantized = Path(scratch) / "model.int8.onnx"
            quantize_int8(traced, quantized)
            traced = quantized
        os.replace(traced, final)
    summary = {
        "file": final.name,
        "outputs": list(graph.output_names),
        "inputs": ["spectrogram", "num_frames"],
        "dynamic_time": bool(source.config.variable_length),
        "quantized": quantize,
        "opset": OPSET,
        "source": source.source,
        "target_frames": source.config.input_tdim,
        "min_frames": source.config.tshape,
        "mean": source.mean,
        "std": source.std,
        "labels": source.labels,
        "multi_label": source.multi_label,
        "pool_real_audio": graph.pool_real_audio,
        "encoder_config": dataclasses.asdict(source.config),
    }
    with atomic_open(output / METADATA_FILE) as stream:
        json.dump(summary, stream, indent=2)
    with atomic_open(output / "README.md") as stream:
        stream.write(onnx_model_card(source, summary))
    return summary
