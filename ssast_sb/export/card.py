"""The ``README.md`` written beside an exported model: what it is and how to call it.

Authors
 * ssast-sb contributors
"""

from ssast_sb.checkpoints import describe_config

_POOLING_HF = {
    "cls": "`pooler_output`, the mean of the two class tokens (what `ASTForAudioClassification` "
    "classifies)",
    "mean": "the mean of the patch tokens, class tokens excluded: "
    "`outputs.last_hidden_state[:, 2:].mean(1)`",
    "layer_weighted": "a learned softmax-weighted sum of the block outputs "
    "(`output_hidden_states=True`; the weights are `layer_weights` in the head file)",
}


def normalisation_formula(mean, std):
    """The input normalisation as a formula, with the mean's sign folded in.

    Arguments
    ---------
    mean, std : float
        The fbank statistics.

    Returns
    -------
    str

    Example
    -------
    >>> normalisation_formula(-4.2677393, 4.5689974)
    '(fbank + 4.267739) / (2 * 4.568997)'
    >>> normalisation_formula(0.5, 1.0)
    '(fbank - 0.5) / (2 * 1)'
    """
    sign = "+" if mean < 0 else "-"
    return f"(fbank {sign} {abs(mean):.7g}) / (2 * {std:.7g})"


def _describe(source):
    """Lines shared by both cards: the model, its input and its statistics."""
    config = source.config
    lines = [
        f"- source: `{source.source}`",
        f"- encoder: {describe_config(config)}",
        f"- input: {config.input_tdim} frames of 10 ms (128-bin Kaldi fbank, 16 kHz), "
        f"normalised as `{normalisation_formula(source.mean, source.std)}`",
    ]
    if source.labels:
        kind = "independent (sigmoid)" if source.multi_label else "exclusive (softmax)"
        lines.append(f"- classes: {len(source.labels)}, {kind}")
    if source.pool_real_audio:
        lines.append(
            "- fine-tuned pooling only the patches of real audio: pool the patch tokens whose "
            "time columns start before the clip's last frame"
        )
    return lines


def hf_model_card(source, summary):
    """The card of a Hugging Face export.

    Arguments
    ---------
    source : ssast_sb.export.source.ExportSource
        The model.
    summary : dict
        What :func:`ssast_sb.export.hf.export_hf` wrote.

    Returns
    -------
    str
    """
    cls = summary["class"]
    lines = [
        "# SSAST exported to Hugging Face's Audio Spectrogram Transformer",
        "",
        "Written by `python -m ssast_sb.export --format hf` (ssast-sb).",
        "",
        *_describe(source),
        f"- Hugging Face class: `{cls}`; pooling: {_POOLING_HF[source.pooling]}",
        "",
        "```python",
        f"from transformers import ASTFeatureExtractor, {cls}",
        "",
        f'extractor = ASTFeatureExtractor.from_pretrained("{summary["folder"]}")',
        f'model = {cls}.from_pretrained("{summary["folder"]}").eval()',
        'inputs = extractor(waveform_16khz, sampling_rate=16000, return_tensors="pt")',
        "outputs = model(**inputs)",
        "```",
        "",
        "The grid (strides and `max_length`) is fixed by the config: Hugging Face pads or cuts "
        "every clip to `max_length` frames, as the original SSAST does.",
    ]
    if "ssast_head.safetensors" in summary["files"]:
        lines += [
            "",
            "The fine-tuned head (`ssast_head.safetensors`, tensors named as in ssast-sb's "
            f"`{source.head['type']}`) is applied to the pooled embedding; "
            "`ASTForAudioClassification` cannot express this pooling.",
        ]
    return "\n".join(lines) + "\n"


def onnx_model_card(source, summary):
    """The card of an ONNX export.

    Arguments
    ---------
    source : ssast_sb.export.source.ExportSource
        The model.
    summary : dict
        What :func:`ssast_sb.export.onnx.export_onnx` wrote.

    Returns
    -------
    str
    """
    outputs = ", ".join(f"`{name}`" for name in summary["outputs"])
    time_axis = (
        f"dynamic, {source.config.tshape} to {source.config.input_tdim} frames"
        if summary["dynamic_time"]
        else f"fixed at {source.config.input_tdim} frames (pad or cut)"
    )
    lines = [
        "# SSAST exported to ONNX",
        "",
        "Written by `python -m ssast_sb.export --format onnx` (ssast-sb).",
        "",
        *_describe(source),
        f"- file: `{summary['file']}` (opset {summary['opset']}"
        + (", linear layers dynamically quantized to int8)" if summary["quantized"] else ")"),
        "- inputs: `spectrogram` (batch, frames, 128) float32, dynamic batch; time axis "
        + time_axis
        + "; `num_frames` (batch,) int64, the real frames of each row (pooling over real audio)",
        f"- outputs: {outputs}",
        "",
        "Two steps: the fbank in torch, the model in ONNX Runtime (or both at once with "
        + (
            "`ssast_sb.onnx_inference.ONNXAudioClassifier.from_folder(...)`, which has "
            "`classify_file` and `encode_batch`):"
            if "logits" in summary["outputs"]
            else "`ssast_sb.onnx_inference.ONNXEncoderInterface.from_folder(...)`, which has "
            "`encode_batch`, `encode_frames` and `encode_file`):"
        ),
        "",
        "```python",
        "import onnxruntime, torch",
        "from ssast_sb.frontend import SSASTFbank",
        "from ssast_sb.windows import row_samples",
        "",
        f"fbank = SSASTFbank(target_frames={source.config.input_tdim}, mean={source.mean:.7g}, "
        f"std={source.std:.7g}, variable_length={summary['dynamic_time']})",
        "features = fbank(wavs, wav_lens)  # (batch, frames, 128)",
        "num_frames = fbank.real_frames(row_samples(wavs, wav_lens))",
        f'session = onnxruntime.InferenceSession("{summary["file"]}")',
        'outputs = session.run(None, {"spectrogram": features.numpy(), '
        '"num_frames": num_frames.numpy()})',
        "```",
    ]
    return "\n".join(lines) + "\n"
