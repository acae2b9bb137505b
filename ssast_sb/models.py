"""SSAST models: the MSPM pretraining model and the fine-tuning classifier.

Authors
 * ssast-sb contributors
"""

import dataclasses
import math

import torch
import torch.nn as nn

from ssast_sb.encoder import SSASTEncoder, pool_tokens
from ssast_sb.errors import OptionError
from ssast_sb.masking import MASKING_STRATEGIES, default_strategy, draw_mask, max_masked
from ssast_sb.objectives import (
    MPG_WEIGHT,
    PredictionHead,
    chance_accuracy,
    gather_tokens,
    info_nce,
    joint_loss,
    patch_mse,
    unfold_patches,
)
from ssast_sb.padding import restrict_mask, valid_patches
from ssast_sb.pos_embed import adapt_pos_embed_original, resize_pos_embed


def masking_strategy(masking, config):
    """The masking strategy of a pretraining model: ``masking``, or the original's choice.

    Arguments
    ---------
    masking : str or None
        One of :data:`ssast_sb.masking.MASKING_STRATEGIES`; None takes the
        original's choice (cluster for 16x16 patches, random for frames).
    config : ssast_sb.encoder.EncoderConfig
        The encoder's.

    Returns
    -------
    str

    Raises
    ------
    ssast_sb.errors.OptionError
        An unknown strategy, naming ``--masking``.

    Example
    -------
    >>> from ssast_sb.encoder import EncoderConfig
    >>> masking_strategy(None, EncoderConfig.from_names("tiny", "frame"))
    'random'
    """
    if masking is None:
        return default_strategy(config.fshape, config.input_fdim)
    if masking not in MASKING_STRATEGIES:
        raise OptionError(
            f"--masking {masking} is not a masking strategy: pass --masking "
            f"{' or --masking '.join(MASKING_STRATEGIES)}, or --masking null (the original's "
            "choice: cluster for 16x16 patches, random for frames)."
        )
    return masking


def check_mask_count(num_masked, model, option="--num_masked", also=()):
    """Refuses a mask count that the model's input cannot give, naming the option that sets it.

    The pretraining recipes set the training count with ``--num_masked`` and the
    evaluation count with ``--valid_num_masked``; both must fit the patches of a
    ``--target_frames`` input. The error says the most that fits and the
    shortest input that fits the count asked for, so a run fails when it is
    built, before any data is read (the masking functions' own check comes only
    at the first batch).

    Arguments
    ---------
    num_masked : int or None
        The count; None (the model's own count) is not checked.
    model : SSASTPretrainModel or ssast_sb.mae.MAEPretrainModel
        The model: its encoder's config and its ``max_masked``.
    option : str
        The option that set ``num_masked`` (``--valid_num_masked`` for evaluation).
    also : sequence of str
        Options that take the same fix (``--valid_num_masked`` with ``--num_masked``).

    Raises
    ------
    ssast_sb.errors.OptionError
        Naming ``option`` (and ``also``), the largest count that fits, and the
        ``--target_frames`` that would fit ``num_masked``.

    Example
    -------
    >>> from ssast_sb.encoder import EncoderConfig
    >>> config = EncoderConfig.from_names("tiny", "frame", depth=1, input_tdim=128)
    >>> model = SSASTPretrainModel(SSASTEncoder(config), num_masked=32)
    >>> check_mask_count(64, model, "--valid_num_masked")
    >>> try:
    ...     check_mask_count(400, model, "--valid_num_masked")
    ... except OptionError as error:
    ...     print(str(error).split(". ")[-1][:81])
    Pass --valid_num_masked 64 (or fewer), or --target_frames 800 or more to mask 400
    """
    if num_masked is None:
        return
    config = model.encoder.config
    most = model.max_masked
    fix = " ".join(f"{name} {most}" for name in (option, *also))
    if isinstance(num_masked, bool) or not isinstance(num_masked, int) or num_masked < 1:
        raise OptionError(
            f"{option} {num_masked}: the patches masked per clip are a whole number, at least "
            f"1. Pass {fix} (or fewer) for a --target_frames {config.input_tdim} input."
        )
    if num_masked <= most:
        return
    f_dim, t_dim = config.grid
    slack = config.num_patches - most
    columns = math.ceil((num_masked + slack) / f_dim)
    frames = (columns - 1) * config.tstride + config.tshape
    raise OptionError(
        f"{option} {num_masked} is more than the input can mask: --target_frames "
        f"{config.input_tdim} gives {config.num_patches} patches of {config.fshape}x"
        f"{config.tshape} (a {f_dim}x{t_dim} grid), and {model.masking} masking masks at most "
        f"{most} of them{model.mask_limit_reason}. Pass {fix} (or fewer), or --target_frames "
        f"{frames} or more to mask {num_masked}."
    )


class SSASTPretrainModel(nn.Module):
    """The encoder with the MSPM heads and the mask token (docs/fidelity.md b.4, c).

    Arguments
    ---------
    encoder : SSASTEncoder
        The transformer; pretraining needs stride equal to the patch shape.
    num_masked : int
        Masked patches per clip (400 or 250 in the paper); at most
        ``max_masked`` (:func:`check_mask_count` says so, naming ``--num_masked``).
    masking : str, optional
        ``random``, ``cluster`` or ``unbiased_cluster``; by default the
        original's choice (cluster for 16x16 patches, random for frames).
    nce_direction : str
        ``code`` (original) or ``paper`` (Eq. 1), see :func:`info_nce`.
    mpg_weight : float
        Weight of the generative loss in the joint objective.
    single_pass : bool
        Opt-in departure: one masked copy feeds both heads (the mpc mask is used
        for both), halving the encoder work; the original runs two passes with
        independent masks.
    padding_aware : bool
        Opt-in departure (:mod:`ssast_sb.padding`): ``forward`` takes the real
        frames of each clip, masks only patches of real audio and leaves padded
        patches out of the InfoNCE candidates and the MSE.

    Example
    -------
    >>> from ssast_sb.encoder import EncoderConfig
    >>> cfg = EncoderConfig(embed_dim=16, depth=1, num_heads=2, input_tdim=64)
    >>> model = SSASTPretrainModel(SSASTEncoder(cfg), num_masked=10)
    >>> x = torch.randn(2, 64, 128)
    >>> g = torch.Generator().manual_seed(0)
    >>> out = model(x, *model.draw_masks(2, g), )
    >>> sorted(out)
    ['acc', 'chance', 'loss', 'mse', 'nce']
    """

    def __init__(
        self,
        encoder,
        num_masked=400,
        masking=None,
        nce_direction="code",
        mpg_weight=MPG_WEIGHT,
        single_pass=False,
        padding_aware=False,
    ):
        super().__init__()
        cfg = encoder.config
        if (cfg.fstride, cfg.tstride) != (cfg.fshape, cfg.tshape):
            raise ValueError("Pretraining needs the patch stride to equal the patch shape")
        self.encoder = encoder
        self.num_masked = num_masked
        self.masking = masking_strategy(masking, cfg)
        check_mask_count(num_masked, self, "--num_masked", also=("--valid_num_masked",))
        self.nce_direction = nce_direction
        self.mpg_weight = mpg_weight
        self.single_pass = single_pass
        self.padding_aware = padding_aware
        patch_dim = cfg.fshape * cfg.tshape
        self.mpc_head = PredictionHead(cfg.embed_dim, patch_dim)
        self.mpg_head = PredictionHead(cfg.embed_dim, patch_dim)
        self.mask_embed = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        nn.init.xavier_normal_(self.mask_embed)

    #: Why the count is limited beyond the patches, for :func:`check_mask_count`.
    mask_limit_reason = ""

    @property
    def max_masked(self):
        """The most patches a clip can have masked (see :func:`ssast_sb.masking.max_masked`)."""
        return max_masked(self.masking, self.encoder.config.num_patches)

    def draw_masks(self, batch_size, generator=None, device=None, num_masked=None):
        """Two independent masks, for the discriminative and generative passes.

        Arguments
        ---------
        batch_size : int
            Clips in the batch.
        generator : torch.Generator, optional
            Source of randomness.
        device : torch.device, optional
            Where the indices live.
        num_masked : int, optional
            Overrides the model's mask count.

        Returns
        -------
        tuple of torch.Tensor
            ``(mpc_mask_index, mpg_mask_index)``, each ``(B, M)``.
        """
        count = num_masked or self.num_masked
        grid = self.encoder.grid
        return tuple(
            draw_mask(self.masking, batch_size, grid, count, generator, device) for _ in range(2)
        )

    def targets(self, spectrogram):
        """All flattened input patches ``(B, N, P)``, detached."""
        cfg = self.encoder.config
        return unfold_patches(spectrogram, cfg.fshape, cfg.tshape).detach()

    def mpc(self, spectrogram, mask_index):
        """Discriminative pass: returns ``hidden``, ``pred``, ``nce``, ``acc``."""
        hidden = self.encoder(spectrogram, mask_index, self.mask_embed)
        return self._mpc_outputs(hidden, self.targets(spectrogram), mask_index)

    def mpg(self, spectrogram, mask_index):
        """Generative pass: returns ``hidden``, ``pred``, ``mse``."""
        hidden = self.encoder(spectrogram, mask_index, self.mask_embed)
        return self._mpg_outputs(hidden, self.targets(spectrogram), mask_index)

    def _mpc_outputs(self, hidden, targets, mask_index, keep=None):
        patch_tokens = hidden[:, self.encoder.num_class_tokens :]
        pred = self.mpc_head(gather_tokens(patch_tokens, mask_index))
        true = gather_tokens(targets, mask_index)
        nce, acc = info_nce(pred, true, self.nce_direction, keep)
        return {"hidden": hidden, "pred": pred, "nce": nce, "acc": acc}

    def _mpg_outputs(self, hidden, targets, mask_index, keep=None):
        patch_tokens = hidden[:, self.encoder.num_class_tokens :]
        pred = self.mpg_head(gather_tokens(patch_tokens, mask_index))
        return {
            "hidden": hidden,
            "pred": pred,
            "mse": patch_mse(pred, gather_tokens(targets, mask_index), keep),
        }

    def restrict_to_audio(self, num_frames, *mask_indices):
        """Padding awareness: each mask restricted to real patches, with its ``keep`` flags.

        Arguments
        ---------
        num_frames : torch.Tensor
            ``(B,)`` real frames per clip.
        *mask_indices : torch.Tensor
            ``(B, M)`` drawn masks.

        Returns
        -------
        list of tuple
            ``(index, keep)`` per mask (see :func:`ssast_sb.padding.restrict_mask`).
        """
        valid = valid_patches(num_frames, self.encoder.grid, self.encoder.config.tstride)
        return [restrict_mask(index, valid) for index in mask_indices]

    def forward(
        self, spectrogram, mpc_mask_index, mpg_mask_index, return_details=False, num_frames=None
    ):
        """The joint objective from two independently masked copies, in one encoder call.

        Running both copies as one batch of 2B clips computes exactly what the
        original's two forward passes compute (docs/fidelity.md f.10), with one pass of
        kernel launches.

        Arguments
        ---------
        spectrogram : torch.Tensor
            ``(B, T, F)`` normalised features.
        mpc_mask_index, mpg_mask_index : torch.Tensor
            ``(B, M)`` masks of the two passes.
        return_details : bool
            Also return the per-pass outputs under ``mpc`` and ``mpg``.
        num_frames : torch.Tensor, optional
            ``(B,)`` real frames per clip; required when ``padding_aware``.

        Returns
        -------
        dict
            ``loss``, ``nce``, ``acc``, ``mse``, the accuracy of a random guess
            ``chance`` (:func:`~ssast_sb.objectives.chance_accuracy`) and the
            details on request.
        """
        targets = self.targets(spectrogram)
        mpc_keep = mpg_keep = None
        if self.padding_aware:
            if num_frames is None:
                raise ValueError("A padding-aware model needs num_frames (real frames per clip)")
            (mpc_mask_index, mpc_keep), (mpg_mask_index, mpg_keep) = self.restrict_to_audio(
                num_frames, mpc_mask_index, mpg_mask_index
            )
        if self.single_pass:
            hidden = self.encoder(spectrogram, mpc_mask_index, self.mask_embed)
            mpc = self._mpc_outputs(hidden, targets, mpc_mask_index, mpc_keep)
            mpg = self._mpg_outputs(hidden, targets, mpc_mask_index, mpc_keep)
        else:
            batch = spectrogram.shape[0]
            both = torch.cat((spectrogram, spectrogram))
            masks = torch.cat((mpc_mask_index, mpg_mask_index))
            hidden = self.encoder(both, masks, self.mask_embed)
            mpc = self._mpc_outputs(hidden[:batch], targets, mpc_mask_index, mpc_keep)
            mpg = self._mpg_outputs(hidden[batch:], targets, mpg_mask_index, mpg_keep)
        out = {
            "loss": joint_loss(mpc["nce"], mpg["mse"], self.mpg_weight),
            "nce": mpc["nce"],
            "acc": mpc["acc"],
            "chance": chance_accuracy(mpc_mask_index, mpc_keep),
            "mse": mpg["mse"],
        }
        if return_details:
            out.update(mpc=mpc, mpg=mpg)
        return out


#: Poolings of :class:`SSASTClassifier` (see :func:`ssast_sb.encoder.pool_tokens`).
POOLINGS = ("mean", "cls")


class SSASTClassifier(nn.Module):
    """Encoder, pooling and a ``LayerNorm -> Linear`` head (docs/fidelity.md b.5).

    Arguments
    ---------
    encoder : SSASTEncoder
        The transformer at the fine-tuning grid.
    num_classes : int
        Output size.
    pooling : str
        ``mean`` (original ``ft_avgtok``, used by every recipe) or ``cls``
        (original ``ft_cls``).

    Example
    -------
    >>> from ssast_sb.encoder import EncoderConfig
    >>> cfg = EncoderConfig(embed_dim=16, depth=1, num_heads=2, input_tdim=64)
    >>> SSASTClassifier(SSASTEncoder(cfg), 5)(torch.randn(2, 64, 128)).shape
    torch.Size([2, 5])
    """

    def __init__(self, encoder, num_classes, pooling="mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise OptionError(
                f"--pooling {pooling} is not a pooling: pass --pooling mean (the mean of the "
                "patch tokens) or --pooling cls (the class tokens)."
            )
        self.encoder = encoder
        self.pooling = pooling
        width = encoder.config.embed_dim
        self.mlp_head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, num_classes))

    def embed(self, spectrogram, num_frames=None):
        """Pooled clip embeddings ``(B, D)``.

        Arguments
        ---------
        spectrogram : torch.Tensor
            ``(B, T, F)`` features.
        num_frames : torch.Tensor, optional
            ``(B,)`` frames per clip (:func:`ssast_sb.batch_padding.counted_frames`):
            mean pooling then averages only the patches that start inside them (a
            departure from the original, which averages the padding's patches
            too), and in a variable-length batch every token attends to its own
            clip's tokens only, so that a clip's output does not depend on its batch.

        Returns
        -------
        torch.Tensor
            ``(B, D)``.
        """
        valid = None
        if num_frames is not None:
            valid = self.encoder.pooled_patches(num_frames, spectrogram.shape[1])
        tokens = self.encoder(spectrogram, num_frames=num_frames)
        return pool_tokens(tokens, self.pooling, self.encoder.num_class_tokens, valid)

    def classify_embedding(self, embedding):
        """Logits from pooled embeddings (any leading shape)."""
        return self.mlp_head(embedding)

    def forward(self, spectrogram, num_frames=None):
        """Logits ``(B, num_classes)`` of ``(B, T, F)`` features (see :meth:`embed`)."""
        return self.classify_embedding(self.embed(spectrogram, num_frames))

    def head_parameters(self):
        """Parameters trained at the head learning rate."""
        return list(self.mlp_head.parameters())


class LayerWeightedClassifier(nn.Module):
    """The SUPERB protocol of the paper's speech tasks (docs/fidelity.md d.3).

    A learnable softmax-weighted sum of the block outputs (before the final
    LayerNorm, class tokens included), a linear projector to ``projector_dim``,
    mean pooling over all tokens, and a linear classifier. The upstream encoder
    is fine-tuned end to end as in the paper, or frozen.

    Arguments
    ---------
    encoder : SSASTEncoder
        The transformer at the task's grid.
    num_classes : int
        Output size.
    projector_dim : int
        Width of the projector (256 in s3prl's utterance-level downstream).
    freeze_upstream : bool
        Keep the encoder fixed (no gradients, eval mode).

    Example
    -------
    >>> from ssast_sb.encoder import EncoderConfig
    >>> cfg = EncoderConfig(embed_dim=16, depth=3, num_heads=2, input_tdim=64)
    >>> model = LayerWeightedClassifier(SSASTEncoder(cfg), 4, projector_dim=8)
    >>> model(torch.randn(2, 64, 128)).shape, model.layer_weights.shape
    (torch.Size([2, 4]), torch.Size([3]))
    """

    def __init__(self, encoder, num_classes, projector_dim=256, freeze_upstream=False):
        super().__init__()
        self.encoder = encoder
        self.freeze_upstream = freeze_upstream
        self.encoder.requires_grad_(not freeze_upstream)
        width = encoder.config.embed_dim
        self.layer_weights = nn.Parameter(torch.zeros(encoder.config.depth))
        self.projector = nn.Linear(width, projector_dim)
        self.classifier = nn.Linear(projector_dim, num_classes)

    def embed(self, spectrogram, num_frames=None):
        """Pooled projected features ``(B, projector_dim)``.

        Arguments
        ---------
        spectrogram : torch.Tensor
            ``(B, T, F)`` features.
        num_frames : torch.Tensor, optional
            ``(B,)`` frames per clip (:func:`ssast_sb.batch_padding.counted_frames`):
            the mean then covers the class tokens and the patches inside them
            only (a departure; s3prl averages every token of the padded input),
            and a variable-length batch attends within each clip.

        Returns
        -------
        torch.Tensor
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_upstream):
            _, layers = self.encoder(spectrogram, return_layers=True, num_frames=num_frames)
        weights = self.layer_weights.softmax(dim=0)
        projected = self.projector(torch.einsum("l,lbtd->btd", weights, torch.stack(layers)))
        if num_frames is None:
            return projected.mean(dim=1)
        patches = self.encoder.pooled_patches(num_frames, spectrogram.shape[1])
        tokens = torch.ones(patches.shape[0], self.encoder.num_class_tokens, dtype=torch.bool)
        keep = torch.cat([tokens.to(patches.device), patches], dim=1).unsqueeze(-1)
        return (projected * keep).sum(dim=1) / keep.sum(dim=1)

    def classify_embedding(self, embedding):
        """Logits from pooled projected features (any leading shape)."""
        return self.classifier(embedding)

    def forward(self, spectrogram, num_frames=None):
        """Logits ``(B, num_classes)`` (see :meth:`embed`)."""
        return self.classify_embedding(self.embed(spectrogram, num_frames))

    def head_parameters(self):
        """The layer weights, projector and classifier."""
        return [self.layer_weights, *self.projector.parameters(), *self.classifier.parameters()]

    def train(self, mode=True):
        """Keeps a frozen upstream in eval mode."""
        super().train(mode)
        if self.freeze_upstream:
            self.encoder.eval()
        return self


#: Heads of :func:`task_classifier`.
HEADS = ("mean", "cls", "layer_weighted")


def task_classifier(encoder, num_classes, head="mean", freeze_upstream=False, projector_dim=256):
    """A classifier over a task encoder, chosen by name (what a YAML's ``model`` can apply).

    Arguments
    ---------
    encoder : SSASTEncoder
        The encoder at the task grid.
    num_classes : int
        Output size.
    head : str
        ``mean`` or ``cls``: :class:`SSASTClassifier` with that pooling, the
        encoder fine-tuned (the AST protocol); ``layer_weighted``:
        :class:`LayerWeightedClassifier` (the SUPERB protocol).
    freeze_upstream : bool
        Keep the encoder fixed: only the head trains (``layer_weighted`` only).
    projector_dim : int
        Projector width of ``layer_weighted``.

    Returns
    -------
    torch.nn.Module

    Example
    -------
    >>> from ssast_sb.encoder import EncoderConfig
    >>> encoder = SSASTEncoder(EncoderConfig(embed_dim=16, depth=2, num_heads=2, input_tdim=32))
    >>> type(task_classifier(encoder, 3, "layer_weighted", freeze_upstream=True)).__name__
    'LayerWeightedClassifier'
    """
    if head not in HEADS:
        raise OptionError(f"Unknown head --head {head}: pass --head {' or --head '.join(HEADS)}.")
    if head == "layer_weighted":
        return LayerWeightedClassifier(encoder, num_classes, projector_dim, freeze_upstream)
    if freeze_upstream:
        raise OptionError(
            f"--freeze_upstream True needs --head layer_weighted (the frozen SUPERB protocol), "
            f"not --head {head}: pass --head layer_weighted, or --freeze_upstream False."
        )
    return SSASTClassifier(encoder, num_classes, pooling=head)


def adapt_encoder(
    encoder,
    fstride=None,
    tstride=None,
    input_tdim=None,
    input_fdim=None,
    method="original",
    variable_length=None,
):
    """A copy of a pretrained encoder moved to a new stride and input size.

    The patch projection keeps its weights (only the stride changes) and the
    position embedding is adapted to the new grid (docs/fidelity.md b.3).

    Arguments
    ---------
    encoder : SSASTEncoder
        The pretrained encoder.
    fstride, tstride : int, optional
        New patch strides (unchanged when None).
    input_tdim, input_fdim : int, optional
        New input size (unchanged when None).
    method : str
        ``original`` reproduces the original fine-tuning code and its quirks;
        ``resize`` is a plain bilinear resize to any grid.
    variable_length : bool, optional
        Accept inputs shorter than ``input_tdim`` (see :class:`~ssast_sb.encoder.EncoderConfig`).

    Returns
    -------
    SSASTEncoder

    Example
    -------
    >>> from ssast_sb.encoder import EncoderConfig
    >>> pre = SSASTEncoder(EncoderConfig(embed_dim=16, depth=1, num_heads=2))
    >>> ft = adapt_encoder(pre, fstride=10, tstride=10, input_tdim=512)
    >>> ft.grid, ft.pos_embed.shape
    ((12, 50), torch.Size([1, 602, 16]))
    """
    source = encoder.config
    changes = {
        name: value
        for name, value in dict(
            fstride=fstride,
            tstride=tstride,
            input_tdim=input_tdim,
            input_fdim=input_fdim,
            variable_length=variable_length,
        ).items()
        if value is not None
    }
    target = dataclasses.replace(source, **changes)
    adapted = SSASTEncoder(target).to(encoder.pos_embed.device)
    state = {k: v for k, v in encoder.state_dict().items() if k != "pos_embed"}
    with torch.no_grad():
        if method == "original":
            pos = adapt_pos_embed_original(encoder.pos_embed, source.grid, target.grid)
        elif method == "resize":
            pos = resize_pos_embed(encoder.pos_embed, source.grid, target.grid)
        else:
            raise OptionError(
                f"Unknown adaptation method --pos_embed_adaptation {method}: pass "
                "--pos_embed_adaptation original (the original's) or resize (bilinear)."
            )
        state["pos_embed"] = pos.clone()
    adapted.load_state_dict(state)
    return adapted
