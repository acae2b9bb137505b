"""The SSAST encoder: a DeiT-style audio transformer over spectrogram patches.

Parameter names follow the original SSAST model (``v.*`` in its state dicts,
which are timm 0.4.5 names), so converting a checkpoint is a prefix rename.
See docs/fidelity.md sections b.1-b.3.

Authors
 * ssast-sb contributors
"""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssast_sb.batch_padding import clip_tokens, own_patches
from ssast_sb.errors import OptionError
from ssast_sb.padding import valid_patches
from ssast_sb.pos_embed import patch_grid

#: Width, heads and depth of the DeiT backbones used by SSAST (docs/fidelity.md b.1).
MODEL_SIZES = {
    "tiny": {"embed_dim": 192, "num_heads": 3, "depth": 12},
    "small": {"embed_dim": 384, "num_heads": 6, "depth": 12},
    "base": {"embed_dim": 768, "num_heads": 12, "depth": 12},
}

#: The two patch shapes of the paper: 16x16 patches and 128x2 frames.
PATCH_SHAPES = {"patch": (16, 16), "frame": (128, 2)}


@dataclass(frozen=True)
class EncoderConfig:
    """Everything that fixes the shapes of an :class:`SSASTEncoder`.

    Arguments
    ---------
    embed_dim : int
        Token width D.
    depth : int
        Number of transformer blocks.
    num_heads : int
        Attention heads per block.
    fshape, tshape : int
        Patch size in mel bins and frames.
    fstride, tstride : int
        Patch stride in mel bins and frames.
    input_fdim, input_tdim : int
        Mel bins and frames of the input spectrogram.
    mlp_ratio : float
        Hidden width of the MLP relative to D.
    variable_length : bool
        Opt-in departure: accept inputs shorter than ``input_tdim`` (the
        position embedding of the first time columns is used) instead of
        requiring inputs padded to ``input_tdim`` as the original does.
    """

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    fshape: int = 16
    tshape: int = 16
    fstride: int = 16
    tstride: int = 16
    input_fdim: int = 128
    input_tdim: int = 1024
    mlp_ratio: float = 4.0
    variable_length: bool = False

    @classmethod
    def from_names(cls, size="base", shape="patch", **overrides):
        """Builds a config from a size name and a shape name.

        Arguments
        ---------
        size : str
            ``tiny``, ``small`` or ``base``.
        shape : str
            ``patch`` (16x16) or ``frame`` (128x2).
        **overrides
            Any field of the config (strides, input size, explicit depth...).

        Returns
        -------
        EncoderConfig

        Raises
        ------
        ssast_sb.errors.OptionError
            An unknown name, or an input shorter than a patch, naming the recipe
            option (``--model_size``, ``--patch_shape``, ``--target_frames``).

        Example
        -------
        >>> cfg = EncoderConfig.from_names("tiny", "frame", input_tdim=128, tstride=1)
        >>> cfg.embed_dim, cfg.fshape, cfg.tshape, cfg.tstride
        (192, 128, 2, 1)
        """
        if size not in MODEL_SIZES:
            raise OptionError(
                f"Unknown model size --model_size {size}: pass --model_size "
                f"{' or --model_size '.join(MODEL_SIZES)}."
            )
        if shape not in PATCH_SHAPES:
            raise OptionError(
                f"Unknown patch shape --patch_shape {shape}: pass --patch_shape patch (16x16) "
                "or --patch_shape frame (128x2)."
            )
        fshape, tshape = PATCH_SHAPES[shape]
        frames = overrides.get("input_tdim")
        if frames is not None and frames < tshape:
            raise OptionError(
                f"--target_frames {frames} is shorter than one {shape} patch ({fshape}x{tshape}): "
                f"pass --target_frames {tshape} or more."
            )
        fields = dict(
            MODEL_SIZES[size], fshape=fshape, tshape=tshape, fstride=fshape, tstride=tshape
        )
        fields.update(overrides)
        return cls(**fields)

    @property
    def grid(self):
        """``(f_dim, t_dim)``: the patch grid of the input."""
        return patch_grid(
            self.input_fdim, self.input_tdim, self.fshape, self.tshape, self.fstride, self.tstride
        )

    @property
    def num_patches(self):
        """Number of patch tokens N."""
        f_dim, t_dim = self.grid
        return f_dim * t_dim


class PatchEmbed(nn.Module):
    """Cuts a one-channel spectrogram into patches and projects each to D.

    The tokens come out frequency-major (``token = f_idx * t_dim + t_idx``),
    as in the original model (docs/fidelity.md b.2).

    Arguments
    ---------
    embed_dim : int
        Output width D.
    fshape, tshape : int
        Patch size (mel bins, frames).
    fstride, tstride : int
        Patch stride (mel bins, frames).

    Example
    -------
    >>> embed = PatchEmbed(8, 16, 16, 10, 10)
    >>> embed(torch.randn(2, 1, 128, 100)).shape
    torch.Size([2, 108, 8])
    """

    def __init__(self, embed_dim, fshape, tshape, fstride, tstride):
        super().__init__()
        self.proj = nn.Conv2d(1, embed_dim, kernel_size=(fshape, tshape), stride=(fstride, tstride))

    def forward(self, spectrogram):
        """Returns patch embeddings ``(B, N, D)`` from ``(B, 1, F, T)``."""
        return self.proj(spectrogram).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection, through SDPA.

    Arguments
    ---------
    embed_dim : int
        Token width D.
    num_heads : int
        Number of heads; D must be divisible by it.

    Example
    -------
    >>> Attention(12, 3)(torch.randn(2, 5, 12)).shape
    torch.Size([2, 5, 12])
    """

    def __init__(self, embed_dim, num_heads):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, tokens, key_mask=None):
        """Attends over ``(B, L, D)`` tokens, each to the keys of ``key_mask`` only when given.

        Query, key and value are projected by the three row blocks of the fused
        ``qkv`` weight, each straight into a ``(B, L, heads, D/heads)`` tensor that
        SDPA reads through a transposed view: neither pass copies activations to
        change their layout (the fused projection did, forward and backward).
        ``key_mask`` ``(B, L)`` bool: the keys each row may attend to (the tokens
        of its own clip in a padded batch, :mod:`ssast_sb.batch_padding`).
        """
        batch, length, width = tokens.shape
        heads = (batch, length, self.num_heads, width // self.num_heads)
        weights = self.qkv.weight.split(width)
        biases = self.qkv.bias.split(width)
        query, key, value = (
            F.linear(tokens, weight, bias).view(heads).transpose(1, 2)
            for weight, bias in zip(weights, biases)
        )
        mask = None if key_mask is None else key_mask[:, None, None, :]
        attended = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        return self.proj(attended.transpose(1, 2).reshape(batch, length, width))


class Mlp(nn.Module):
    """``fc1 -> exact GELU -> fc2``.

    Arguments
    ---------
    embed_dim : int
        Input and output width.
    hidden_dim : int
        Hidden width.

    Example
    -------
    >>> Mlp(4, 16)(torch.randn(3, 4)).shape
    torch.Size([3, 4])
    """

    def __init__(self, embed_dim, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(embed_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, embed_dim)

    def forward(self, tokens):
        """Applies the MLP on the last axis."""
        return self.fc2(F.gelu(self.fc1(tokens)))


class Block(nn.Module):
    """Pre-LayerNorm transformer block (LayerNorm eps 1e-6, as timm's DeiT).

    Arguments
    ---------
    embed_dim : int
        Token width.
    num_heads : int
        Attention heads.
    mlp_ratio : float
        MLP hidden width relative to ``embed_dim``.

    Example
    -------
    >>> Block(12, 3)(torch.randn(2, 7, 12)).shape
    torch.Size([2, 7, 12])
    """

    def __init__(self, embed_dim, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dim, eps=1e-6)
        self.attn = Attention(embed_dim, num_heads)
        self.norm2 = nn.LayerNorm(embed_dim, eps=1e-6)
        self.mlp = Mlp(embed_dim, int(embed_dim * mlp_ratio))

    def forward(self, tokens, key_mask=None):
        """Applies attention (to the keys of ``key_mask``), then the MLP, each with a residual."""
        tokens = tokens + self.attn(self.norm1(tokens), key_mask)
        return tokens + self.mlp(self.norm2(tokens))


class SSASTEncoder(nn.Module):
    """The SSAST transformer: patch embedding, two class tokens, blocks, final norm.

    The input is a normalised log-mel spectrogram ``(B, T, F)``, time first, as
    produced by :class:`ssast_sb.frontend.SSASTFbank`. The token sequence is
    ``[CLS, DIST, p_1 ... p_N]`` plus a learned absolute position embedding.

    Arguments
    ---------
    config : EncoderConfig
        Shapes of the model. Keyword arguments build one when it is None.
    **config_fields
        Fields of :class:`EncoderConfig` (used when ``config`` is None).

    Example
    -------
    >>> cfg = EncoderConfig(embed_dim=16, depth=2, num_heads=2, input_tdim=64)
    >>> encoder = SSASTEncoder(cfg)
    >>> tokens = encoder(torch.randn(2, 64, 128))
    >>> tokens.shape  # 2 class tokens + 8x4 patches
    torch.Size([2, 34, 16])
    >>> tokens, layers = encoder(torch.randn(2, 64, 128), return_layers=True)
    >>> len(layers), layers[0].shape
    (2, torch.Size([2, 34, 16]))
    """

    num_class_tokens = 2

    def __init__(self, config=None, **config_fields):
        super().__init__()
        self.config = config if config is not None else EncoderConfig(**config_fields)
        cfg = self.config
        self.patch_embed = PatchEmbed(
            cfg.embed_dim, cfg.fshape, cfg.tshape, cfg.fstride, cfg.tstride
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(
            torch.zeros(1, cfg.num_patches + self.num_class_tokens, cfg.embed_dim)
        )
        self.blocks = nn.ModuleList(
            Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.reset_parameters()

    def reset_parameters(self):
        """Initialises as timm's DeiT (trunc-normal 0.02 Linears and tokens)."""
        for tensor in (self.cls_token, self.dist_token, self.pos_embed):
            nn.init.trunc_normal_(tensor, std=0.02)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    @property
    def grid(self):
        """``(f_dim, t_dim)`` of the patch grid."""
        return self.config.grid

    def input_grid(self, frames):
        """``(f_dim, t_dim)`` of an input of ``frames`` frames (shorter with ``variable_length``).

        Example
        -------
        >>> encoder = SSASTEncoder(EncoderConfig(embed_dim=8, depth=1, num_heads=2,
        ...                                      input_tdim=64, variable_length=True))
        >>> encoder.grid, encoder.input_grid(32)
        ((8, 4), (8, 2))
        """
        cfg = self.config
        return patch_grid(cfg.input_fdim, frames, cfg.fshape, cfg.tshape, cfg.fstride, cfg.tstride)

    def embed_patches(self, spectrogram):
        """Patch embeddings ``(B, N, D)`` of a ``(B, T, F)`` spectrogram."""
        self._check_input(spectrogram)
        return self.patch_embed(spectrogram.transpose(1, 2).unsqueeze(1))

    def forward(
        self, spectrogram, mask_index=None, mask_embed=None, return_layers=False, num_frames=None
    ):
        """Encodes a spectrogram, optionally replacing masked patches first.

        Arguments
        ---------
        spectrogram : torch.Tensor
            ``(B, T, F)`` normalised fbank features.
        mask_index : torch.Tensor, optional
            ``(B, M)`` patch indices to replace by ``mask_embed`` (docs/fidelity.md c.1).
        mask_embed : torch.Tensor, optional
            ``(1, 1, D)`` learned mask token.
        return_layers : bool
            Also return every block's output (before the final norm).
        num_frames : torch.Tensor, optional
            ``(B,)`` frames of each clip of a padded variable-length batch: every
            token then attends only to the tokens of its own clip (see
            :meth:`attention_mask`). Ignored in fixed-length mode.

        Returns
        -------
        tokens : torch.Tensor
            ``(B, 2 + N, D)`` after the final LayerNorm.
        layers : list of torch.Tensor
            Only when ``return_layers``: the ``depth`` block outputs.
        """
        patches = self.embed_patches(spectrogram)
        if mask_index is not None:
            patches = replace_masked(patches, mask_index, mask_embed)
        key_mask = self.attention_mask(num_frames, spectrogram.shape[1])
        return self.encode_tokens(patches, return_layers=return_layers, key_mask=key_mask)

    def own_patches(self, num_frames, frames):
        """``(B, N)`` bool: the patches each clip of a ``frames``-long batch has alone.

        See :func:`ssast_sb.batch_padding.own_patches`.
        """
        cfg = self.config
        return own_patches(num_frames, self.input_grid(frames), cfg.tshape, cfg.tstride)

    def pooled_patches(self, num_frames, frames):
        """``(B, N)`` bool: the patches mean pooling averages for clips of ``num_frames`` frames.

        Those that start inside the clip's frames (the original averages every
        patch of its padded input: its callers pass no ``num_frames``), and in
        variable-length mode only among the clip's own (:meth:`own_patches`).

        Example
        -------
        >>> cfg = EncoderConfig(embed_dim=4, depth=1, num_heads=1, input_tdim=64,
        ...                     variable_length=True)
        >>> SSASTEncoder(cfg).pooled_patches(torch.tensor([64, 20]), 64).sum(dim=1)
        tensor([32,  8])
        """
        valid = valid_patches(num_frames, self.input_grid(frames), self.config.tstride)
        if self.config.variable_length:
            valid = valid & self.own_patches(num_frames, frames)
        return valid

    def attention_mask(self, num_frames, frames, always=False):
        """The keys each token of a padded variable-length batch may attend to, or None.

        None in fixed-length mode (every clip padded to the input, as the
        original), without ``num_frames``, and, unless ``always`` (a traced
        graph), when no clip of the batch is padded (attention needs no mask).

        Arguments
        ---------
        num_frames : torch.Tensor or None
            ``(B,)`` frames of each clip.
        frames : int
            Frames of the batch.
        always : bool
            Return the mask even when it masks nothing.

        Returns
        -------
        torch.Tensor or None
            ``(B, 2 + N)`` bool.

        Example
        -------
        >>> cfg = EncoderConfig(embed_dim=4, depth=1, num_heads=1, input_tdim=64,
        ...                     variable_length=True)
        >>> SSASTEncoder(cfg).attention_mask(torch.tensor([64, 32]), 64).sum(dim=1)
        tensor([34, 18])
        >>> SSASTEncoder(cfg).attention_mask(torch.tensor([64, 64]), 64) is None
        True
        """
        if num_frames is None or not self.config.variable_length:
            return None
        own = self.own_patches(num_frames, frames)
        # A traced graph (ONNX) keeps the mask: the shortcut would depend on the example.
        if not (always or torch.jit.is_tracing()) and bool(own.all()):
            return None
        return clip_tokens(own, self.num_class_tokens)

    def encode_tokens(self, patch_tokens, return_layers=False, key_mask=None):
        """Runs class tokens, position embedding, blocks and norm on ``(B, N, D)``.

        ``key_mask`` ``(B, 2 + N)``: the keys each row attends to (all without it).
        """
        batch = patch_tokens.shape[0]
        tokens = torch.cat(
            (
                self.cls_token.expand(batch, -1, -1),
                self.dist_token.expand(batch, -1, -1),
                patch_tokens,
            ),
            dim=1,
        )
        tokens = tokens + self.position_embedding(patch_tokens.shape[1])
        layers = []
        for block in self.blocks:
            tokens = block(tokens, key_mask)
            if return_layers:
                layers.append(tokens)
        tokens = self.norm(tokens)
        return (tokens, layers) if return_layers else tokens

    def position_embedding(self, num_patches):
        """The position embedding for ``num_patches`` patch tokens ``(1, 2 + N', D)``.

        The full embedding at ``input_tdim``; for a shorter variable-length input,
        the class positions and the first ``N' / f_dim`` time columns of every
        frequency row.

        Example
        -------
        >>> cfg = EncoderConfig(embed_dim=4, depth=1, num_heads=1, input_tdim=64,
        ...                     variable_length=True)
        >>> encoder = SSASTEncoder(cfg)
        >>> encoder.position_embedding(8 * 4).shape, encoder(torch.randn(1, 64, 128)).shape
        (torch.Size([1, 34, 4]), torch.Size([1, 34, 4]))
        >>> encoder(torch.randn(1, 40, 128)).shape
        torch.Size([1, 18, 4])
        """
        if not self.config.variable_length:
            return self.pos_embed  # the input check holds the input to the full grid
        # Always sliced, even at the full length (the same values), so that an exported
        # graph (ssast_sb.export) keeps the time axis dynamic instead of branching on it.
        f_dim, t_dim = self.grid
        columns = num_patches // f_dim
        patches = self.pos_embed[:, self.num_class_tokens :].view(1, f_dim, t_dim, -1)
        return torch.cat(
            (
                self.pos_embed[:, : self.num_class_tokens],
                patches[:, :, :columns].reshape(1, f_dim * columns, -1),
            ),
            dim=1,
        )

    def _check_input(self, spectrogram):
        cfg = self.config
        if spectrogram.dim() != 3:
            raise ValueError(
                "SSASTEncoder expects (batch, frames, mel_bins), "
                f"got shape {tuple(spectrogram.shape)}"
            )
        frames, mel_bins = spectrogram.shape[1:]
        shorter_ok = cfg.variable_length and cfg.tshape <= frames <= cfg.input_tdim
        if mel_bins != cfg.input_fdim or (frames != cfg.input_tdim and not shorter_ok):
            raise ValueError(
                f"SSASTEncoder was built for {cfg.input_tdim} frames x {cfg.input_fdim} mel bins, "
                f"got {frames} x {mel_bins}; pad or cut the features "
                "(SSASTFbank(target_frames=...)) or resize the model (ssast_sb.pos_embed)"
                + (
                    "; variable-length inputs must hold at least one patch"
                    if cfg.variable_length
                    else ""
                )
            )


def replace_masked(patch_tokens, mask_index, mask_embed):
    """Replaces the patch embeddings at ``mask_index`` by ``mask_embed`` (BEiT style).

    Equivalent to the original's dense ``x * (1 - m) + m * mask_embed``.

    Arguments
    ---------
    patch_tokens : torch.Tensor
        ``(B, N, D)`` patch embeddings.
    mask_index : torch.Tensor
        ``(B, M)`` int64 indices into N.
    mask_embed : torch.Tensor
        ``(1, 1, D)`` learned token.

    Returns
    -------
    torch.Tensor
        ``(B, N, D)``.

    Example
    -------
    >>> x = torch.zeros(1, 4, 2)
    >>> replace_masked(x, torch.tensor([[1, 3]]), torch.ones(1, 1, 2))[0, :, 0]
    tensor([0., 1., 0., 1.])
    """
    is_masked = torch.zeros(patch_tokens.shape[:2], dtype=torch.bool, device=patch_tokens.device)
    is_masked.scatter_(1, mask_index, True)
    return torch.where(is_masked.unsqueeze(-1), mask_embed.to(patch_tokens.dtype), patch_tokens)


def pool_tokens(tokens, pooling="mean", num_class_tokens=2, valid=None):
    """Pools encoder tokens into one vector per clip.

    Arguments
    ---------
    tokens : torch.Tensor
        ``(B, 2 + N, D)`` encoder output.
    pooling : str
        ``mean``: mean over the patch tokens, class tokens excluded (the
        original ``ft_avgtok``); ``cls``: mean of the CLS and DIST outputs (the
        original ``ft_cls``).
    num_class_tokens : int
        Number of leading class tokens.
    valid : torch.Tensor, optional
        ``(B, N)`` bool: the patch tokens that hold real audio (see
        :func:`ssast_sb.padding.valid_patches`). With ``mean``, only these are
        averaged (a departure from the original, which averages the padding's
        tokens too); a clip with no valid token falls back to all of them.

    Returns
    -------
    torch.Tensor
        ``(B, D)``.

    Example
    -------
    >>> tokens = torch.arange(8.0).reshape(1, 4, 2)
    >>> pool_tokens(tokens, "mean")
    tensor([[5., 6.]])
    >>> pool_tokens(tokens, "cls")
    tensor([[1., 2.]])
    >>> pool_tokens(tokens, "mean", valid=torch.tensor([[True, False]]))
    tensor([[4., 5.]])
    """
    if pooling == "mean":
        patches = tokens[:, num_class_tokens:]
        if valid is None:
            return patches.mean(dim=1)
        weights = valid.to(patches.dtype)
        weights = torch.where(weights.sum(1, keepdim=True) > 0, weights, torch.ones_like(weights))
        weights = weights / weights.sum(1, keepdim=True)
        return torch.einsum("bnd,bn->bd", patches, weights)
    if pooling == "cls":
        return tokens[:, :num_class_tokens].mean(dim=1)
    raise ValueError(f"Unknown pooling {pooling!r}; use 'mean' or 'cls'")
