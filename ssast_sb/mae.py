"""MAE-style pretraining: the encoder sees only the visible patches (opt-in departure).

The original SSAST replaces masked patch embeddings by a mask token and runs
all ``N + 2`` tokens through every block, so about 78% of the encoder's work
goes to mask tokens (docs/fidelity.md f.9). MAE (He et al., 2022) and MAE-AST
(Baade et al., 2022) drop the masked patches from the encoder instead and let a
light decoder, which sees every position, fill them in:

1. patch embeddings plus their position embeddings; only the ``N - M`` kept
   patches are gathered, and the two class tokens are prepended;
2. the SSAST encoder's blocks and final norm run on these ``2 + N - M`` tokens;
3. a linear map to the decoder width, mask tokens scattered back at the masked
   positions, a decoder position embedding over all ``2 + N`` positions, a few
   transformer blocks and a LayerNorm;
4. the decoder outputs at the masked positions feed the original
   discriminative (InfoNCE) and generative (MSE) heads, joint loss
   ``nce + 10 * mse`` (docs/fidelity.md c.2-c.4).

One mask per step feeds both heads (as ``SSASTPretrainModel(single_pass=True)``):
one encoder pass over the visible tokens serves both objectives. The encoder
is a plain :class:`~ssast_sb.encoder.SSASTEncoder`, so fine-tuning is unchanged
(it then sees every patch, with no mask token).

Authors
 * ssast-sb contributors
"""

import torch
import torch.nn as nn

from ssast_sb.encoder import Block
from ssast_sb.masking import draw_mask, max_masked
from ssast_sb.models import check_mask_count, masking_strategy
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
from ssast_sb.padding import valid_patches


def kept_index(mask_index, num_patches):
    """The patches that a mask leaves visible, in ascending order.

    Arguments
    ---------
    mask_index : torch.Tensor
        ``(B, M)`` distinct int64 indices per row (the same M for every clip).
    num_patches : int
        Patches per clip N.

    Returns
    -------
    torch.Tensor
        ``(B, N - M)`` int64 indices.

    Example
    -------
    >>> kept_index(torch.tensor([[3, 0], [1, 2]]), 5)
    tensor([[1, 2, 4],
            [0, 3, 4]])
    """
    batch, num_masked = mask_index.shape
    is_masked = torch.zeros(batch, num_patches, dtype=torch.int8, device=mask_index.device)
    is_masked.scatter_(1, mask_index, 1)
    # A stable sort puts the visible patches (0) first, in their original order.
    return is_masked.argsort(dim=1, stable=True)[:, : num_patches - num_masked]


class MAEDecoder(nn.Module):
    """Fills the masked positions back in from the encoded visible tokens.

    Arguments
    ---------
    encoder_dim : int
        Width of the encoder outputs.
    num_patches : int
        Patches per clip N.
    num_class_tokens : int
        Leading class tokens of the encoder output (2 in SSAST).
    decoder_dim : int
        Width of the decoder.
    depth : int
        Decoder blocks.
    num_heads : int
        Attention heads of each decoder block.

    Example
    -------
    >>> decoder = MAEDecoder(16, num_patches=6, num_class_tokens=2, decoder_dim=8, depth=1,
    ...                      num_heads=2)
    >>> encoded = torch.randn(3, 2 + 4, 16)  # 2 class tokens + 4 visible patches
    >>> keep = torch.tensor([[0, 1, 2, 3], [1, 2, 4, 5], [0, 2, 3, 5]])
    >>> decoder(encoded, keep, torch.zeros(1, 1, 8)).shape  # 2 class tokens + all 6 patches
    torch.Size([3, 8, 8])
    """

    def __init__(self, encoder_dim, num_patches, num_class_tokens, decoder_dim, depth, num_heads):
        super().__init__()
        self.num_patches = num_patches
        self.num_class_tokens = num_class_tokens
        self.embed = nn.Linear(encoder_dim, decoder_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_class_tokens + num_patches, decoder_dim))
        self.blocks = nn.ModuleList(Block(decoder_dim, num_heads) for _ in range(depth))
        self.norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.reset_parameters()

    def reset_parameters(self):
        """Initialises as the encoder: trunc-normal 0.02, zero biases."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, encoded, keep_index, mask_embed):
        """Decodes ``(B, C + K, D_enc)`` encoder outputs to ``(B, C + N, D_dec)``.

        Arguments
        ---------
        encoded : torch.Tensor
            Encoder outputs: the class tokens, then the K visible patches in
            the order of ``keep_index``.
        keep_index : torch.Tensor
            ``(B, K)`` patch index of each visible token.
        mask_embed : torch.Tensor
            ``(1, 1, D_dec)`` learned token placed at every masked position.

        Returns
        -------
        torch.Tensor
            Decoder outputs for the class tokens and all N patches, after the
            decoder's LayerNorm.
        """
        tokens = self.embed(encoded)
        batch, _, width = tokens.shape
        classes, visible = tokens[:, : self.num_class_tokens], tokens[:, self.num_class_tokens :]
        # Every position starts as the mask token; the visible ones are written back.
        patches = mask_embed.to(visible.dtype).expand(batch, self.num_patches, width)
        patches = patches.scatter(1, keep_index.unsqueeze(-1).expand(-1, -1, width), visible)
        tokens = torch.cat((classes, patches), dim=1) + self.pos_embed
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)


class MAEPretrainModel(nn.Module):
    """SSAST pretraining with an MAE-style encoder on the visible patches only.

    A drop-in alternative to :class:`ssast_sb.models.SSASTPretrainModel` (same
    ``forward``, ``draw_masks``, ``targets`` and attributes), so the MSPM Brain
    and the recipes' YAML take it as ``model: !new:ssast_sb.mae.MAEPretrainModel``.
    It departs from the original (docs/fidelity.md f.9): the encoder never sees
    a mask token, and one mask feeds both heads.

    Arguments
    ---------
    encoder : SSASTEncoder
        The transformer; pretraining needs stride equal to the patch shape.
    num_masked : int
        Masked patches per clip M (the same for every clip, so that every clip
        keeps ``N - M`` visible patches); at most ``max_masked``
        (:func:`ssast_sb.models.check_mask_count` says so, naming ``--num_masked``).
    masking : str, optional
        ``random``, ``cluster`` or ``unbiased_cluster``; by default the
        original's choice (cluster for 16x16 patches, random for frames).
    decoder_dim : int, optional
        Decoder width; the encoder's width when None (MAE-AST's choice).
    decoder_depth : int
        Decoder blocks (2, as MAE-AST).
    decoder_heads : int, optional
        Decoder attention heads; the encoder's count when None.
    nce_direction : str
        ``code`` (original) or ``paper`` (Eq. 1), see :func:`~ssast_sb.objectives.info_nce`.
    mpg_weight : float
        Weight of the generative loss in the joint objective.
    padding_aware : bool
        Opt-in (:mod:`ssast_sb.padding`): ``forward`` takes the real frames per
        clip; masked padded patches (dropped from the encoder all the same) are
        left out of the InfoNCE candidates and the MSE.

    Example
    -------
    >>> from ssast_sb.encoder import EncoderConfig, SSASTEncoder
    >>> cfg = EncoderConfig(embed_dim=16, depth=1, num_heads=2, input_tdim=64)
    >>> model = MAEPretrainModel(SSASTEncoder(cfg), num_masked=24, decoder_dim=8,
    ...                          decoder_depth=1, decoder_heads=2)
    >>> g = torch.Generator().manual_seed(0)
    >>> out = model(torch.randn(2, 64, 128), *model.draw_masks(2, g))
    >>> sorted(out), out["loss"].shape
    (['acc', 'chance', 'loss', 'mse', 'nce'], torch.Size([]))
    """

    def __init__(
        self,
        encoder,
        num_masked=400,
        masking=None,
        decoder_dim=None,
        decoder_depth=2,
        decoder_heads=None,
        nce_direction="code",
        mpg_weight=MPG_WEIGHT,
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
        self.padding_aware = padding_aware
        self.mpg_weight = mpg_weight
        decoder_dim = decoder_dim or cfg.embed_dim
        self.decoder = MAEDecoder(
            cfg.embed_dim,
            cfg.num_patches,
            encoder.num_class_tokens,
            decoder_dim,
            decoder_depth,
            decoder_heads or cfg.num_heads,
        )
        patch_dim = cfg.fshape * cfg.tshape
        self.mpc_head = PredictionHead(decoder_dim, patch_dim)
        self.mpg_head = PredictionHead(decoder_dim, patch_dim)
        # The mask token enters the decoder, not the encoder, so it has the decoder's width.
        self.mask_embed = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        nn.init.xavier_normal_(self.mask_embed)

    @property
    def max_masked(self):
        """The most patches a clip can have masked: the masking's most, one patch kept visible."""
        num_patches = self.encoder.config.num_patches
        return min(num_patches - 1, max_masked(self.masking, num_patches))

    @property
    def mask_limit_reason(self):
        """Why the count is limited beyond the masking, for :func:`check_mask_count`."""
        num_patches = self.encoder.config.num_patches
        if max_masked(self.masking, num_patches) >= num_patches:
            return " (MAE pretraining keeps at least one patch visible)"
        return ""

    def draw_masks(self, batch_size, generator=None, device=None, num_masked=None):
        """One mask, returned twice: both heads train on the same masked patches.

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
            ``(mask_index, mask_index)``, ``(B, M)`` each, in the argument
            order of :meth:`forward`.

        Example
        -------
        >>> from ssast_sb.encoder import EncoderConfig, SSASTEncoder
        >>> cfg = EncoderConfig(embed_dim=8, depth=1, num_heads=2, input_tdim=64)
        >>> mpc, mpg = MAEPretrainModel(SSASTEncoder(cfg), num_masked=20).draw_masks(3)
        >>> mpc.shape, mpc is mpg
        (torch.Size([3, 20]), True)
        """
        count = num_masked or self.num_masked
        mask = draw_mask(self.masking, batch_size, self.encoder.grid, count, generator, device)
        return mask, mask

    def targets(self, spectrogram):
        """All flattened input patches ``(B, N, P)``, detached."""
        cfg = self.encoder.config
        return unfold_patches(spectrogram, cfg.fshape, cfg.tshape).detach()

    def encode_visible(self, spectrogram, keep_index):
        """Runs the encoder on the class tokens and the kept patches only.

        Arguments
        ---------
        spectrogram : torch.Tensor
            ``(B, T, F)`` normalised features.
        keep_index : torch.Tensor
            ``(B, K)`` indices of the visible patches.

        Returns
        -------
        torch.Tensor
            ``(B, 2 + K, D)`` after the encoder's final LayerNorm.

        Example
        -------
        >>> from ssast_sb.encoder import EncoderConfig, SSASTEncoder
        >>> cfg = EncoderConfig(embed_dim=8, depth=1, num_heads=2, input_tdim=64)
        >>> model = MAEPretrainModel(SSASTEncoder(cfg), num_masked=20)
        >>> model.encode_visible(torch.randn(2, 64, 128), torch.tensor([[0, 5], [7, 9]])).shape
        torch.Size([2, 4, 8])
        """
        encoder = self.encoder
        num_classes = encoder.num_class_tokens
        # Each kept patch carries the position embedding row of its own grid cell.
        patches = encoder.embed_patches(spectrogram) + encoder.pos_embed[:, num_classes:]
        visible = gather_tokens(patches, keep_index)
        classes = torch.cat((encoder.cls_token, encoder.dist_token), dim=1)
        classes = classes + encoder.pos_embed[:, :num_classes]
        tokens = torch.cat((classes.expand(visible.shape[0], -1, -1), visible), dim=1)
        for block in encoder.blocks:
            tokens = block(tokens)
        return encoder.norm(tokens)

    def forward(
        self,
        spectrogram,
        mpc_mask_index,
        mpg_mask_index=None,
        return_details=False,
        num_frames=None,
    ):
        """The joint objective from one encoder pass over the visible patches.

        Arguments
        ---------
        spectrogram : torch.Tensor
            ``(B, T, F)`` normalised features.
        mpc_mask_index : torch.Tensor
            ``(B, M)`` masked patches, distinct within each row; both heads
            predict these.
        mpg_mask_index : torch.Tensor, optional
            Ignored: accepted so that the model takes the two masks the MSPM
            Brain draws for :class:`~ssast_sb.models.SSASTPretrainModel`.
        return_details : bool
            Also return ``encoded`` (encoder outputs on the visible tokens),
            ``decoded``, ``keep_index`` and the predictions ``mpc_pred`` and
            ``mpg_pred``.
        num_frames : torch.Tensor, optional
            ``(B,)`` real frames per clip; required when ``padding_aware``.

        Returns
        -------
        dict
            ``loss``, ``nce``, ``acc``, ``chance`` (the accuracy of a random
            guess), ``mse`` (and the details on request).
        """
        mask_index = mpc_mask_index
        keep_index = kept_index(mask_index, self.encoder.config.num_patches)
        encoded = self.encode_visible(spectrogram, keep_index)
        decoded = self.decoder(encoded, keep_index, self.mask_embed)
        masked = gather_tokens(decoded[:, self.encoder.num_class_tokens :], mask_index)
        targets = gather_tokens(self.targets(spectrogram), mask_index)
        mpc_pred = self.mpc_head(masked)
        mpg_pred = self.mpg_head(masked)
        keep = None
        if self.padding_aware:
            if num_frames is None:
                raise ValueError("A padding-aware model needs num_frames (real frames per clip)")
            valid = valid_patches(num_frames, self.encoder.grid, self.encoder.config.tstride)
            keep = valid.gather(1, mask_index)
        nce, acc = info_nce(mpc_pred, targets, self.nce_direction, keep)
        mse = patch_mse(mpg_pred, targets, keep)
        out = {
            "loss": joint_loss(nce, mse, self.mpg_weight),
            "nce": nce,
            "acc": acc,
            "chance": chance_accuracy(mask_index, keep),
            "mse": mse,
        }
        if return_details:
            out.update(
                encoded=encoded,
                decoded=decoded,
                keep_index=keep_index,
                mpc_pred=mpc_pred,
                mpg_pred=mpg_pred,
            )
        return out
