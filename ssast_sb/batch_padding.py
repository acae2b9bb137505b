"""One clip, one answer: which tokens of a padded batch belong to each clip.

In variable-length mode (``variable_length``, a departure) a batch is padded to
its longest clip, so without care the padded frames of a short clip would reach
its real tokens through attention, and its output would depend on the clips it
shares a batch with (batch size, sort order, dynamic batching, DDP ranks). The
encoder therefore lets every token attend only to the tokens of its own clip:
the class tokens and the patches the clip has when it is encoded alone
(:func:`own_patches`), and the pooling covers the same patches. The original's
fixed-length mode, where every clip is padded to the input length whatever its
batch, attends to its padding as the original does.

Authors
 * ssast-sb contributors
"""

import torch

#: The shortest batch of a variable-length frontend: shorter clips are padded to it.
MIN_FRAMES = 16


def own_patches(num_frames, grid, tshape, tstride):
    """The patches each clip of a padded batch has when it is encoded alone.

    Alone, a clip of ``n`` frames is padded to ``max(n, MIN_FRAMES)`` frames and
    its patch columns are those that end inside them; in a longer batch the
    same columns hold the same values, and the later ones are the batch's.

    Arguments
    ---------
    num_frames : torch.Tensor
        ``(B,)`` frames of each clip.
    grid : tuple of int
        ``(f_dim, t_dim)`` patch grid of the batch, frequency-major.
    tshape, tstride : int
        Patch width and time stride in frames.

    Returns
    -------
    torch.Tensor
        ``(B, f_dim * t_dim)`` bool.

    Example
    -------
    >>> own_patches(torch.tensor([40, 20]), (1, 4), 16, 8).int()
    tensor([[1, 1, 1, 1],
            [1, 0, 0, 0]], dtype=torch.int32)
    """
    f_dim, t_dim = grid
    columns = (num_frames.clamp(min=MIN_FRAMES) - tshape) // tstride + 1
    valid_columns = torch.arange(t_dim, device=num_frames.device) < columns.unsqueeze(1)
    return valid_columns.unsqueeze(1).expand(-1, f_dim, -1).reshape(num_frames.shape[0], -1)


def counted_frames(real_frames, pool_real_audio, variable_length):
    """The frames of each clip that its tokens and its pooling cover, or None for all.

    Arguments
    ---------
    real_frames : torch.Tensor
        ``(B,)`` frames of real audio of each clip.
    pool_real_audio : bool
        Mean pooling over the patches of real audio only (a departure).
    variable_length : bool
        The encoder's mode: a batch padded to its longest clip.

    Returns
    -------
    torch.Tensor or None
        The real frames (real-audio pooling), the frames a clip fills alone
        (variable length), or None: every clip is padded to the input length
        and pooled whole, as the original.

    Example
    -------
    >>> frames = torch.tensor([5, 40])
    >>> counted_frames(frames, True, True), counted_frames(frames, False, True)
    (tensor([ 5, 40]), tensor([16, 40]))
    >>> counted_frames(frames, False, False) is None
    True
    """
    if pool_real_audio:
        return real_frames
    if variable_length:
        return real_frames.clamp(min=MIN_FRAMES)
    return None


def clip_tokens(own, num_class_tokens=2):
    """``(B, C + N)`` bool of the tokens of each clip: its class tokens and its own patches.

    Example
    -------
    >>> clip_tokens(torch.tensor([[True, False]])).int()
    tensor([[1, 1, 1, 0]], dtype=torch.int32)
    """
    classes = own.new_ones(own.shape[0], num_class_tokens)
    return torch.cat((classes, own), dim=1)
