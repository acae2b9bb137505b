"""Patch grids and position-embedding adaptation (docs/fidelity.md b.3).

Two ways to move a pretrained position embedding to another patch grid:

* :func:`adapt_pos_embed_original` reproduces the original fine-tuning code
  bit for bit, quirks included (centre crop for shorter inputs, bilinear
  interpolation through a hard-coded height of 8 for longer ones, and the
  frequency crop that slices with ``t_dim`` instead of ``f_dim``);
* :func:`resize_pos_embed` is a plain bilinear resize to any grid, for users
  who change the input length, the mel bins or the stride.

Authors
 * ssast-sb contributors
"""

import torch
import torch.nn.functional as F


def patch_grid(input_fdim, input_tdim, fshape, tshape, fstride, tstride):
    """Size of the patch grid of a spectrogram.

    Arguments
    ---------
    input_fdim, input_tdim : int
        Mel bins and frames of the input.
    fshape, tshape : int
        Patch size.
    fstride, tstride : int
        Patch stride.

    Returns
    -------
    tuple of int
        ``(f_dim, t_dim)``.

    Example
    -------
    >>> patch_grid(128, 1024, 16, 16, 10, 10)
    (12, 101)
    >>> patch_grid(128, 128, 128, 2, 128, 1)
    (1, 127)
    """
    if input_fdim < fshape or input_tdim < tshape:
        raise ValueError(
            f"Input {input_fdim}x{input_tdim} (mel x frames) is smaller than one "
            f"{fshape}x{tshape} patch"
        )
    return (input_fdim - fshape) // fstride + 1, (input_tdim - tshape) // tstride + 1


def _split(pos_embed, num_class_tokens, grid):
    class_rows = pos_embed[:, :num_class_tokens]
    width = pos_embed.shape[-1]
    f_dim, t_dim = grid
    if pos_embed.shape[1] - num_class_tokens != f_dim * t_dim:
        raise ValueError(
            f"Position embedding has {pos_embed.shape[1] - num_class_tokens} patch rows, "
            f"which does not match the grid {f_dim}x{t_dim}"
        )
    patch_rows = pos_embed[:, num_class_tokens:].transpose(1, 2).reshape(1, width, f_dim, t_dim)
    return class_rows, patch_rows


def _join(class_rows, patch_rows):
    width = patch_rows.shape[1]
    return torch.cat((class_rows, patch_rows.reshape(1, width, -1).transpose(1, 2)), dim=1)


def adapt_pos_embed_original(pos_embed, pretrain_grid, target_grid, num_class_tokens=2):
    """Adapts a pretrained position embedding exactly as the original fine-tuning code.

    Arguments
    ---------
    pos_embed : torch.Tensor
        ``(1, num_class_tokens + p_f * p_t, D)``.
    pretrain_grid : tuple of int
        ``(p_f_dim, p_t_dim)`` of the pretrained model.
    target_grid : tuple of int
        ``(f_dim, t_dim)`` of the fine-tuning model.
    num_class_tokens : int
        Leading rows copied unchanged.

    Returns
    -------
    torch.Tensor
        ``(1, num_class_tokens + f_dim * t_dim, D)``.

    Example
    -------
    >>> pos = torch.randn(1, 2 + 8 * 64, 4)
    >>> adapt_pos_embed_original(pos, (8, 64), (12, 101)).shape
    torch.Size([1, 1214, 4])
    >>> adapt_pos_embed_original(pos, (8, 64), (12, 50)).shape
    torch.Size([1, 602, 4])
    """
    (p_f, p_t), (f_dim, t_dim) = pretrain_grid, target_grid
    class_rows, grid = _split(pos_embed, num_class_tokens, pretrain_grid)
    if t_dim < p_t:
        start = p_t // 2 - t_dim // 2
        grid = grid[:, :, :, start : start + t_dim]
    else:
        # The original interpolates to a hard-coded height of 8 (docs/fidelity.md f.4).
        grid = F.interpolate(grid, size=(8, t_dim), mode="bilinear")
    if f_dim < p_f:
        # The original slices with t_dim instead of f_dim (docs/fidelity.md f.4); kept on purpose.
        start = p_f // 2 - f_dim // 2
        grid = grid[:, :, start : start + t_dim, :]
    else:
        grid = F.interpolate(grid, size=(f_dim, t_dim), mode="bilinear")
    if grid.shape[2:] != (f_dim, t_dim):
        raise ValueError(
            f"The original position-embedding adaptation cannot map grid {p_f}x{p_t} to "
            f"{f_dim}x{t_dim} (its frequency crop slices with t_dim); use resize_pos_embed"
        )
    return _join(class_rows, grid)


def resize_pos_embed(pos_embed, source_grid, target_grid, num_class_tokens=2):
    """Resizes a position embedding to any patch grid by bilinear interpolation.

    Arguments
    ---------
    pos_embed : torch.Tensor
        ``(1, num_class_tokens + f * t, D)``.
    source_grid : tuple of int
        ``(f_dim, t_dim)`` the embedding was made for.
    target_grid : tuple of int
        ``(f_dim, t_dim)`` wanted.
    num_class_tokens : int
        Leading rows copied unchanged.

    Returns
    -------
    torch.Tensor
        ``(1, num_class_tokens + f' * t', D)``; unchanged when the grids agree.

    Example
    -------
    >>> pos = torch.randn(1, 2 + 8 * 64, 4)
    >>> resize_pos_embed(pos, (8, 64), (4, 20)).shape
    torch.Size([1, 82, 4])
    >>> torch.equal(resize_pos_embed(pos, (8, 64), (8, 64)), pos)
    True
    """
    if tuple(source_grid) == tuple(target_grid):
        return pos_embed
    class_rows, grid = _split(pos_embed, num_class_tokens, source_grid)
    grid = F.interpolate(grid, size=tuple(target_grid), mode="bilinear", align_corners=False)
    return _join(class_rows, grid)
