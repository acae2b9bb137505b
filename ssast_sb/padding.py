"""Padding-aware masked patch modeling (an opt-in departure from the original).

The original pads or cuts every clip to the input length and masks patches
anywhere, so a clip much shorter than the input gives many identical padded
patches: masked padding is trivially reconstructed by the generative head and
cannot be told apart by the discriminative one, which wastes the objective on
silence. With padding awareness, only patches that hold real audio are masked,
padded patches are neither InfoNCE candidates nor MSE targets, and the loss is
averaged over the real masked patches. Clips longer than the input are cropped
at a random position (see :func:`random_crop`).

Authors
 * ssast-sb contributors
"""

import torch


def valid_patches(num_frames, grid, tstride):
    """Which patches of each clip start inside its real (unpadded) frames.

    Arguments
    ---------
    num_frames : torch.Tensor
        ``(B,)`` real frames of each clip (the rest of the input is padding).
    grid : tuple of int
        ``(f_dim, t_dim)`` patch grid, frequency-major order.
    tstride : int
        Time stride of the patches in frames: column ``i`` starts at frame
        ``i * tstride`` (pretraining: the patch width).

    Returns
    -------
    torch.Tensor
        ``(B, f_dim * t_dim)`` bool.

    Example
    -------
    >>> valid_patches(torch.tensor([3, 8]), (1, 4), 2).int()
    tensor([[1, 1, 0, 0],
            [1, 1, 1, 1]], dtype=torch.int32)
    """
    f_dim, t_dim = grid
    starts = torch.arange(t_dim, device=num_frames.device) * tstride
    valid_columns = starts.unsqueeze(0) < num_frames.unsqueeze(1)
    return valid_columns.unsqueeze(1).expand(-1, f_dim, -1).reshape(num_frames.shape[0], -1)


def restrict_mask(mask_index, valid):
    """Keeps the masked patches that hold real audio.

    The mask keeps its ``(B, M)`` shape so batches stay rectangular: dropped
    positions point at the clip's first kept patch (masking it twice changes
    nothing) and are flagged False in ``keep``, so the losses ignore them. The
    fraction of real patches masked stays that of the drawn mask.

    Arguments
    ---------
    mask_index : torch.Tensor
        ``(B, M)`` drawn mask.
    valid : torch.Tensor
        ``(B, N)`` bool, from :func:`valid_patches`.

    Returns
    -------
    index : torch.Tensor
        ``(B, M)`` mask to apply.
    keep : torch.Tensor
        ``(B, M)`` bool, True where the masked patch holds real audio.

    Example
    -------
    >>> valid = torch.tensor([[True, True, False, False]])
    >>> restrict_mask(torch.tensor([[3, 1, 2]]), valid)
    (tensor([[1, 1, 1]]), tensor([[False,  True, False]]))
    """
    keep = valid.gather(1, mask_index)
    first_kept = mask_index.gather(1, keep.long().argmax(dim=1, keepdim=True))
    return torch.where(keep, mask_index, first_kept), keep


def random_crop(features, target_frames, generator=None):
    """Crops a random window of a longer clip, or zero-pads a shorter one.

    Arguments
    ---------
    features : torch.Tensor
        ``(T, F)`` unnormalised fbank of one clip.
    target_frames : int
        Input length.
    generator : torch.Generator, optional
        Source of the crop position.

    Returns
    -------
    cropped : torch.Tensor
        ``(target_frames, F)``, zero-padded at the end when the clip is shorter
        (the original pads with zeros before normalising).
    num_frames : int
        Real frames in ``cropped``.

    Example
    -------
    >>> x, n = random_crop(torch.ones(5, 2), 8)
    >>> x.shape, n, x[5:].abs().sum().item()
    (torch.Size([8, 2]), 5, 0.0)
    >>> random_crop(torch.arange(20.0).view(10, 2), 4)[0].shape
    torch.Size([4, 2])
    """
    frames = features.shape[0]
    if frames >= target_frames:
        start = int(torch.randint(frames - target_frames + 1, (1,), generator=generator))
        return features[start : start + target_frames], target_frames
    padding = features.new_zeros(target_frames - frames, features.shape[1])
    return torch.cat((features, padding)), frames
