"""SSAST as SpeechBrain lobes: drop-in ``compute_features`` and ``embedding_model`` modules.

SpeechBrain's utterance-level recipes (VoxCeleb speaker recognition, ESC-50,
UrbanSound8k, ...) chain four modules named in their YAML::

    feats = compute_features(wavs)            # (B, T, F)
    feats = mean_var_norm(feats, lens)
    embeddings = embedding_model(feats, lens)  # (B, 1, D)
    outputs = classifier(embeddings)           # (B, 1, C)

:class:`~ssast_sb.frontend.SSASTFbank`, :class:`PassThrough` and
:class:`SSASTEmbedding` fill the first three slots, so an SSAST encoder (from
scratch or adapted from an original-format pretraining checkpoint) replaces
ECAPA-TDNN or CNN14 by editing the YAML only. See ``examples/README.md``.
:class:`EmbeddingView` and :class:`HeadView` fill the ``embedding_model`` and
``classifier`` slots of a fine-tuned model's inference folder.

Authors
 * ssast-sb contributors
"""

import torch

from ssast_sb.batch_padding import counted_frames
from ssast_sb.checkpoints import task_encoder
from ssast_sb.encoder import EncoderConfig, SSASTEncoder, pool_tokens
from ssast_sb.models import LayerWeightedClassifier, SSASTClassifier

__all__ = ["EmbeddingView", "HeadView", "PassThrough", "SSASTEmbedding"]


class SSASTEmbedding(torch.nn.Module):
    """An SSAST encoder as SpeechBrain's ``embedding_model``: ``(B, T, F) -> (B, 1, D)``.

    Arguments
    ---------
    size : str, optional
        ``tiny``, ``small`` or ``base``. With ``pretrained_path`` the checkpoint
        fixes the width and depth: None takes them from it, and a size it does not
        have is an error naming both (:func:`ssast_sb.checkpoints.task_encoder`).
        None without a checkpoint: ``base``.
    shape : str, optional
        ``patch`` (16x16) or ``frame`` (128x2) patches, checked in the same way;
        None: the checkpoint's, or ``patch`` without one.
    target_frames : int
        Input frames; must match ``SSASTFbank(target_frames=...)``.
    fstride, tstride : int
        Patch strides of the fine-tuning grid (the original uses 10/10 for
        patches and 128/1 for frames; equal to the patch shape means no overlap).
    pooling : str
        ``mean`` over the patch tokens (original ``ft_avgtok``) or ``cls`` (mean of
        the CLS and DIST tokens, original ``ft_cls``).
    pretrained_path : str, optional
        An original-format SSAST pretraining checkpoint (a released
        ``SSAST-*.pth`` or the ``ssast_pretrained.pth`` of our pretraining
        recipes), adapted to the grid above (docs/fidelity.md b.3). None: random init.
    embedding_dim : int, optional
        Adds a linear projection to this width (as ECAPA-TDNN's ``lin_neurons``);
        None keeps the encoder width (192 tiny, 384 small, 768 base).
    pos_embed_adaptation : str
        ``original`` or ``resize``, see :func:`ssast_sb.models.adapt_encoder`.

    Example
    -------
    >>> lobe = SSASTEmbedding("tiny", "frame", target_frames=32, fstride=128, tstride=2,
    ...     pooling="mean", embedding_dim=16)
    >>> lobe(torch.randn(2, 32, 128), torch.ones(2)).shape
    torch.Size([2, 1, 16])
    >>> lobe.encoder.grid, lobe.output_size
    ((1, 16), 16)
    """

    def __init__(
        self,
        size=None,
        shape=None,
        target_frames=1024,
        fstride=16,
        tstride=16,
        pooling="mean",
        pretrained_path=None,
        embedding_dim=None,
        pos_embed_adaptation="original",
    ):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"Unknown pooling {pooling!r}; use 'mean' or 'cls'")
        self.encoder = task_encoder(
            pretrained_path,
            size,
            shape,
            fstride,
            tstride,
            target_frames,
            pos_embed_adaptation=pos_embed_adaptation,
        )
        self.pooling = pooling
        width = self.encoder.config.embed_dim
        self.projection = (
            torch.nn.Linear(width, embedding_dim) if embedding_dim else torch.nn.Identity()
        )
        self.output_size = embedding_dim or width

    def forward(self, features, lengths=None):
        """Pooled clip embeddings ``(B, 1, D)``.

        Arguments
        ---------
        features : torch.Tensor
            ``(B, target_frames, 128)`` from :class:`~ssast_sb.frontend.SSASTFbank`.
        lengths : torch.Tensor, optional
            Relative lengths; unused, because the frontend already padded every
            clip the way the model was pretrained (padding frames are attended to,
            as in the original).

        Returns
        -------
        torch.Tensor
        """
        tokens = self.encoder(features)
        pooled = pool_tokens(tokens, self.pooling, self.encoder.num_class_tokens)
        return self.projection(pooled).unsqueeze(1)


class PassThrough(torch.nn.Module):
    """``mean_var_norm`` stand-in: SSAST features are already normalised.

    Example
    -------
    >>> PassThrough()(torch.ones(2), torch.ones(1))
    tensor([1., 1.])
    """

    def forward(self, features, lengths=None):
        """Returns ``features`` unchanged."""
        return features


class EmbeddingView(torch.nn.Module):
    """``embedding_model(feats, lens) -> (B, 1, D)`` of a trained classifier.

    Arguments
    ---------
    model : SSASTClassifier or LayerWeightedClassifier
        The trained model (shared with :class:`HeadView`).
    pool_real_audio : bool
        Average only the patches of real audio when the caller gives the real
        frames (``num_frames``), as the model was fine-tuned with
        ``pool_real_audio``. With those frames a variable-length batch also
        attends within each clip (:mod:`ssast_sb.batch_padding`): a clip's
        embedding does not depend on its batch. SpeechBrain's
        ``EncoderClassifier`` gives no frame counts, so it pools every patch;
        ``SSASTAudioClassifier`` gives them.

    Example
    -------
    >>> from ssast_sb.encoder import EncoderConfig, SSASTEncoder
    >>> from ssast_sb.models import SSASTClassifier
    >>> model = SSASTClassifier(SSASTEncoder(EncoderConfig(embed_dim=8, depth=1, num_heads=2,
    ...     input_tdim=32)), 3)
    >>> EmbeddingView(model)(torch.randn(2, 32, 128)).shape
    torch.Size([2, 1, 8])
    """

    def __init__(self, model, pool_real_audio=False):
        super().__init__()
        self.model = model
        self.pool_real_audio = pool_real_audio

    def forward(self, features, lengths=None, num_frames=None):
        """Pooled clip embeddings with a singleton time axis."""
        if num_frames is not None:
            variable = self.model.encoder.config.variable_length
            num_frames = counted_frames(num_frames, self.pool_real_audio, variable)
        return self.model.embed(features, num_frames).unsqueeze(1)

    def tokens(self, features, return_layers=False, num_frames=None):
        """The encoder's patch/frame tokens (class tokens first), and every layer's on request.

        With ``num_frames`` (each row's frames), a variable-length batch attends
        within each row: the tokens of a row's own patches do not depend on its batch.
        """
        return self.model.encoder(features, return_layers=return_layers, num_frames=num_frames)


class HeadView(torch.nn.Module):
    """``classifier(embeddings) -> (B, 1, C)`` log-probabilities of a trained classifier.

    Arguments
    ---------
    model : SSASTClassifier or LayerWeightedClassifier
        The trained model.
    multi_label : bool
        Log-sigmoid per class (multi-label) instead of log-softmax.
    """

    def __init__(self, model, multi_label=False):
        super().__init__()
        self.model = model
        self.multi_label = multi_label

    def forward(self, embeddings):
        """Log-probabilities of each class."""
        logits = self.model.classify_embedding(embeddings)
        if self.multi_label:
            return torch.nn.functional.logsigmoid(logits)
        return logits.log_softmax(dim=-1)


def encoder_from_config(config):
    """An :class:`~ssast_sb.encoder.SSASTEncoder` from a mapping of its config fields.

    What an inference folder's ``hyperparams.yaml`` builds its encoder with.

    Arguments
    ---------
    config : dict
        :class:`~ssast_sb.encoder.EncoderConfig` fields.

    Returns
    -------
    SSASTEncoder

    Example
    -------
    >>> encoder_from_config({"embed_dim": 8, "depth": 1, "num_heads": 2, "input_tdim": 32}).grid
    (8, 2)
    """
    return SSASTEncoder(EncoderConfig(**config))


def classifier_from_config(encoder, num_classes, head):
    """The classifier an inference folder describes: its class and options in ``head``.

    Arguments
    ---------
    encoder : SSASTEncoder
        The encoder.
    num_classes : int
        Output size.
    head : dict
        ``{"type": "SSASTClassifier", "pooling": "mean"|"cls"}`` or
        ``{"type": "LayerWeightedClassifier", "projector_dim": int}``.

    Returns
    -------
    SSASTClassifier or LayerWeightedClassifier

    Example
    -------
    >>> config = {"embed_dim": 8, "depth": 1, "num_heads": 2, "input_tdim": 32}
    >>> encoder = encoder_from_config(config)
    >>> type(classifier_from_config(encoder, 3, {"type": "SSASTClassifier", "pooling": "cls"}))
    <class 'ssast_sb.models.SSASTClassifier'>
    """
    options = dict(head)
    kind = options.pop("type")
    if kind == "SSASTClassifier":
        return SSASTClassifier(encoder, num_classes, **options)
    if kind == "LayerWeightedClassifier":
        return LayerWeightedClassifier(encoder, num_classes, **options)
    raise ValueError(f"Unknown head type {kind!r}; use SSASTClassifier or LayerWeightedClassifier")


def describe_head(model):
    """The ``head`` mapping of :func:`classifier_from_config` for a trained model.

    Arguments
    ---------
    model : SSASTClassifier or LayerWeightedClassifier
        The model.

    Returns
    -------
    dict

    Example
    -------
    >>> config = {"embed_dim": 8, "depth": 1, "num_heads": 2, "input_tdim": 32}
    >>> encoder = encoder_from_config(config)
    >>> describe_head(SSASTClassifier(encoder, 3))
    {'type': 'SSASTClassifier', 'pooling': 'mean'}
    """
    if isinstance(model, LayerWeightedClassifier):
        return {"type": "LayerWeightedClassifier", "projector_dim": model.projector.out_features}
    return {"type": "SSASTClassifier", "pooling": model.pooling}
