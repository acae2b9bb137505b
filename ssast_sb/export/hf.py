"""Export of SSAST patch models to Hugging Face's Audio Spectrogram Transformer.

An SSAST patch model is an ``ASTModel``: its two class tokens are AST's
``cls_token`` and ``distillation_token``, the blocks map by name once the fused
``qkv`` projection is split into query, key and value, and every LayerNorm
takes eps 1e-6 (timm's value; ``ASTConfig``'s default is 1e-12). ``ASTConfig``
fixes the strides and ``max_length``, so each export is one grid, which Hugging
Face cannot resize. What cannot be expressed raises :class:`HFExportError`:
frame models (128x2 patches: AST patches are square) and models of one class
token.

``ASTForAudioClassification`` pools ``(token0 + token1) / 2`` and applies
``LayerNorm -> Linear``: it reproduces a classifier fine-tuned with
``pooling: cls``. Mean-pooled and layer-weighted classifiers, and
self-supervised checkpoints, are exported as ``ASTModel``; the folder's
``README.md`` says how to pool, and a classifier's head is saved beside it
(``ssast_head.safetensors``). The head's LayerNorm has eps 1e-5 in SSAST and
``layer_norm_eps`` (1e-6) in AST: the only numerical difference of an export.

``transformers`` is an optional dependency (``pip install -e ".[export]"``),
imported only here.

Authors
 * ssast-sb contributors
"""

import json
from pathlib import Path

from ssast_sb.encoder import SSASTEncoder
from ssast_sb.errors import UserError

#: LayerNorm eps of every SSAST (timm DeiT) encoder norm.
SSAST_LAYER_NORM_EPS = 1e-6
#: The prefix of the encoder inside ``ASTForAudioClassification``.
AST_BASE_PREFIX = "audio_spectrogram_transformer."
#: The file holding a mean-pooled or layer-weighted classifier's head.
HEAD_FILE = "ssast_head.safetensors"


class HFExportError(UserError, ValueError):
    """A model that Hugging Face's ``ASTConfig`` cannot express."""


def _require_transformers():
    try:
        import transformers
    except ImportError as error:
        raise ImportError(
            'Export to Hugging Face needs transformers: pip install -e ".[export]"'
        ) from error
    return transformers


def check_expressible(config, num_class_tokens=SSASTEncoder.num_class_tokens, source="model"):
    """Raises :class:`HFExportError` when ``ASTConfig`` cannot hold ``config``.

    Arguments
    ---------
    config : ssast_sb.encoder.EncoderConfig
        The encoder's config.
    num_class_tokens : int
        Its class tokens.
    source : str
        The model's name, for the message.

    Example
    -------
    >>> from ssast_sb.encoder import EncoderConfig
    >>> check_expressible(EncoderConfig.from_names("tiny", "patch"))
    >>> try:
    ...     check_expressible(EncoderConfig.from_names("tiny", "frame"), source="frame.pth")
    ... except HFExportError as error:
    ...     print(str(error)[:77])
    frame.pth has 128x2 patches: Hugging Face's ASTConfig has square patches only
    """
    if config.fshape != config.tshape:
        raise HFExportError(
            f"{source} has {config.fshape}x{config.tshape} patches: Hugging Face's ASTConfig has "
            "square patches only (patch_size), so a frame model cannot be expressed in it; "
            "export it with --format onnx instead"
        )
    if num_class_tokens != 2:
        raise HFExportError(
            f"{source} has {num_class_tokens} class token(s): Hugging Face's ASTModel always has "
            "two (cls_token and distillation_token); export it with --format onnx instead"
        )


def ast_config(source):
    """The ``transformers.ASTConfig`` of an :class:`~ssast_sb.export.source.ExportSource`.

    Arguments
    ---------
    source : ssast_sb.export.source.ExportSource
        The model.

    Returns
    -------
    transformers.ASTConfig
    """
    transformers = _require_transformers()
    config = source.config
    check_expressible(config, source.encoder.num_class_tokens, source.source)
    labels = {index: label for index, label in enumerate(source.labels)}
    problem = "multi_label_classification" if source.multi_label else "single_label_classification"
    return transformers.ASTConfig(
        hidden_size=config.embed_dim,
        num_hidden_layers=config.depth,
        num_attention_heads=config.num_heads,
        intermediate_size=int(config.embed_dim * config.mlp_ratio),
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=SSAST_LAYER_NORM_EPS,
        patch_size=config.fshape,
        qkv_bias=True,
        frequency_stride=config.fstride,
        time_stride=config.tstride,
        max_length=config.input_tdim,
        num_mel_bins=config.input_fdim,
        **(dict(id2label=labels, label2id={v: k for k, v in labels.items()}) if labels else {}),
        problem_type=problem if labels else None,
    )


def ast_state_dict(encoder, prefix=""):
    """The encoder's tensors under ``ASTModel`` names (q, k and v split from ``qkv``).

    Arguments
    ---------
    encoder : ssast_sb.encoder.SSASTEncoder
        The encoder.
    prefix : str
        Prepended to every name (:data:`AST_BASE_PREFIX` inside a classifier).

    Returns
    -------
    dict
        Names -> contiguous tensors.

    Example
    -------
    >>> from ssast_sb.encoder import EncoderConfig
    >>> encoder = SSASTEncoder(EncoderConfig(embed_dim=8, depth=1, num_heads=2, input_tdim=32))
    >>> names = ast_state_dict(encoder)
    >>> names["layers.0.attention.k_proj.weight"].shape, len(names)
    (torch.Size([8, 8]), 23)
    """
    state = encoder.state_dict()
    names = {
        "embeddings.cls_token": state["cls_token"],
        "embeddings.distillation_token": state["dist_token"],
        "embeddings.position_embeddings": state["pos_embed"],
        "embeddings.patch_embeddings.projection.weight": state["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": state["patch_embed.proj.bias"],
        "layernorm.weight": state["norm.weight"],
        "layernorm.bias": state["norm.bias"],
    }
    renamed = {
        "attn.proj": "attention.o_proj",
        "norm1": "layernorm_before",
        "norm2": "layernorm_after",
        "mlp.fc1": "mlp.fc1",
        "mlp.fc2": "mlp.fc2",
    }
    for index in range(encoder.config.depth):
        ours, theirs = f"blocks.{index}.", f"layers.{index}."
        for kind in ("weight", "bias"):
            query, key, value = state[f"{ours}attn.qkv.{kind}"].chunk(3)
            names[f"{theirs}attention.q_proj.{kind}"] = query
            names[f"{theirs}attention.k_proj.{kind}"] = key
            names[f"{theirs}attention.v_proj.{kind}"] = value
            for old, new in renamed.items():
                names[f"{theirs}{new}.{kind}"] = state[f"{ours}{old}.{kind}"]
    return {prefix + name: tensor.detach().clone().contiguous() for name, tensor in names.items()}


def exports_as_classifier(source):
    """Whether the export is an ``ASTForAudioClassification``: a classifier pooled by ``cls``."""
    return source.classifier is not None and source.pooling == "cls"


def hf_model(source):
    """The Hugging Face model of an export source, loaded strictly.

    Arguments
    ---------
    source : ssast_sb.export.source.ExportSource
        The model.

    Returns
    -------
    transformers.ASTModel or transformers.ASTForAudioClassification
        In eval mode.
    """
    transformers = _require_transformers()
    config = ast_config(source)
    if exports_as_classifier(source):
        model = transformers.ASTForAudioClassification(config)
        state = ast_state_dict(source.encoder, AST_BASE_PREFIX)
        head = source.classifier.mlp_head
        state.update(
            {
                "classifier.layernorm.weight": head[0].weight,
                "classifier.layernorm.bias": head[0].bias,
                "classifier.dense.weight": head[1].weight,
                "classifier.dense.bias": head[1].bias,
            }
        )
    else:
        model = transformers.ASTModel(config)
        state = ast_state_dict(source.encoder)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise HFExportError(
            f"transformers {transformers.__version__} names AST's tensors differently from the "
            f"names this exporter writes (missing {missing[:4]}, unexpected {unexpected[:4]}); "
            'install the tested version: pip install -e ".[export]" -c constraints.txt'
        )
    model.load_state_dict({key: value.detach().clone() for key, value in state.items()})
    return model.eval()


def feature_extractor(source):
    """The ``ASTFeatureExtractor`` giving the model's features: its statistics and length.

    Arguments
    ---------
    source : ssast_sb.export.source.ExportSource
        The model.

    Returns
    -------
    transformers.ASTFeatureExtractor
    """
    transformers = _require_transformers()
    return transformers.ASTFeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        num_mel_bins=source.config.input_fdim,
        max_length=source.input_frames,
        padding_value=0.0,
        do_normalize=True,
        mean=source.mean,
        std=source.std,
        return_attention_mask=False,
    )


def _head_tensors(classifier):
    """A mean-pooled or layer-weighted classifier's non-encoder tensors."""
    return {
        name: tensor.detach().clone().contiguous()
        for name, tensor in classifier.state_dict().items()
        if not name.startswith("encoder.")
    }


def export_hf(source, output):
    """Writes a Hugging Face model folder: config, weights, feature extractor, model card.

    Arguments
    ---------
    source : ssast_sb.export.source.ExportSource
        The model.
    output : str or pathlib.Path
        The folder (created).

    Returns
    -------
    dict
        What was written: ``class`` (the Hugging Face class to load), ``folder``,
        ``pooling`` and ``files``.
    """
    from safetensors.torch import save_file

    from ssast_sb.export.card import hf_model_card

    check_expressible(source.config, source.encoder.num_class_tokens, source.source)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    model = hf_model(source)
    model.save_pretrained(output)
    feature_extractor(source).save_pretrained(output)
    files = ["config.json", "model.safetensors", "preprocessor_config.json", "README.md"]
    if source.classifier is not None and not exports_as_classifier(source):
        head = _head_tensors(source.classifier)
        save_file(head, str(output / HEAD_FILE), metadata={"head": json.dumps(source.head)})
        files.insert(3, HEAD_FILE)
    summary = {
        "class": type(model).__name__,
        "folder": str(output),
        "pooling": source.pooling,
        "files": files,
    }
    (output / "README.md").write_text(hf_model_card(source, summary), encoding="utf-8")
    return summary
