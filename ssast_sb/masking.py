"""Which patches to mask for masked spectrogram patch modeling (docs/fidelity.md c.1).

All functions draw an independent mask per clip, vectorised over the batch,
from an explicit ``torch.Generator``, and return ``(B, M)`` int64 indices
into the frequency-major patch sequence.

* :func:`random_mask`: uniform without replacement (the original frame model);
* :func:`cluster_mask`: the original patch-model masking, reproduced with its
  statistics: c x c blocks (c drawn from {3, 4, 5} per clip) that grow towards
  higher frequency and later time, wrap across rows in flattened index space,
  never cover index 0, and are truncated to the ``M`` lowest indices, which
  leaves the lowest-frequency row masked about 41% of the time against 78% on
  average (M=400 of 512);
* :func:`unbiased_cluster_mask`: an opt-in variant (a departure from the
  original) with true 2-D blocks, no wrap, index 0 allowed and a random
  choice of the surplus, so every row is masked at about the same rate.

Authors
 * ssast-sb contributors
"""

import torch

#: Cluster sizes of the original (``randrange(3) + 3``).
CLUSTER_SIZES = (3, 4, 5)


def _check_counts(num_patches, num_masked, limit):
    if not 0 < num_masked <= limit:
        raise ValueError(f"Cannot mask {num_masked} of {num_patches} patches (allowed: 1..{limit})")


def random_mask(batch_size, num_patches, num_masked, generator=None, device=None):
    """Uniform random masking without replacement, in random order.

    Arguments
    ---------
    batch_size : int
        Number of clips.
    num_patches : int
        Patches per clip N.
    num_masked : int
        Masked patches per clip M.
    generator : torch.Generator, optional
        Source of randomness (on ``device``).
    device : torch.device, optional
        Where the indices live.

    Returns
    -------
    torch.Tensor
        ``(B, M)`` int64 distinct indices per row.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> mask = random_mask(2, 10, 4, generator=g)
    >>> mask.shape, all(len(set(row.tolist())) == 4 for row in mask)
    (torch.Size([2, 4]), True)
    """
    _check_counts(num_patches, num_masked, num_patches)
    noise = torch.rand(batch_size, num_patches, generator=generator, device=device)
    return noise.argsort(dim=1)[:, :num_masked]


def _first_cover(blocks, sizes, grid, wrap):
    """For each patch, the index of the first block that covers it (K if none).

    ``blocks`` holds ``(row, col)`` of each block's low-frequency, early-time
    corner, shape ``(B, K, 2)``; ``sizes`` the block size of each clip.
    """
    f_dim, t_dim = grid
    num_patches = f_dim * t_dim
    batch, num_blocks, _ = blocks.shape
    device = blocks.device
    span = torch.arange(max(CLUSTER_SIZES), device=device)
    di, dj = torch.meshgrid(span, span, indexing="ij")
    di, dj = di.flatten().view(1, 1, -1), dj.flatten().view(1, 1, -1)
    valid = torch.maximum(di, dj) < sizes.view(batch, 1, 1)
    rows, cols = blocks[..., :1], blocks[..., 1:]
    if wrap:
        # Original (docs/fidelity.md c.1): offsets added in flattened index space, 0 < idx < N.
        covered = (rows * t_dim + cols) + di * t_dim + dj
        valid = valid & (covered > 0) & (covered < num_patches)
    else:
        row, col = rows + di, cols + dj
        valid = valid & (row >= 0) & (row < f_dim) & (col >= 0) & (col < t_dim)
        covered = row * t_dim + col
    block_id = torch.arange(num_blocks, device=device).view(1, -1, 1).expand_as(covered)
    # Cells outside the grid go to a spare column N that is dropped afterwards.
    target = torch.where(valid, covered, torch.full_like(covered, num_patches))
    first = torch.full((batch, num_patches + 1), num_blocks, dtype=torch.long, device=device)
    first.scatter_reduce_(1, target.reshape(batch, -1), block_id.reshape(batch, -1), reduce="amin")
    return first[:, :num_patches]


def _draw_blocks(sizes, grid, num_blocks, generator, wrap):
    """Block corners ``(B, K, 2)``, drawn as the original or edge-uniform."""
    f_dim, t_dim = grid
    shape = (sizes.shape[0], num_blocks)
    device = sizes.device
    if wrap:
        starts = torch.randint(f_dim * t_dim, shape, generator=generator, device=device)
        return torch.stack((starts // t_dim, starts % t_dim), dim=-1)
    # Corners may hang over the top/left edges, so that every patch is covered by
    # as many corner positions as any other (uniform per-row rates).
    overhang = (sizes - 1).view(-1, 1)
    rows = (torch.rand(shape, generator=generator, device=device) * (f_dim + overhang)).long()
    cols = (torch.rand(shape, generator=generator, device=device) * (t_dim + overhang)).long()
    return torch.stack((rows - overhang, cols - overhang), dim=-1)


def _cluster(batch_size, grid, num_masked, generator, device, wrap):
    f_dim, t_dim = grid
    num_patches = f_dim * t_dim
    # The original loop runs until strictly more than M indices are covered and can
    # never cover index 0, so it needs M <= N - 2 (it hangs otherwise).
    _check_counts(num_patches, num_masked, num_patches - 2 if wrap else num_patches - 1)
    choice = torch.randint(len(CLUSTER_SIZES), (batch_size,), generator=generator, device=device)
    sizes = torch.tensor(CLUSTER_SIZES, device=device)[choice]
    # Blocks are drawn in chunks until every clip covers more than M patches; the
    # chunk is large enough that a second one is rarely needed.
    blocks = _draw_blocks(sizes, grid, max(16, num_patches // 2), generator, wrap)
    while True:
        first = _first_cover(blocks, sizes, grid, wrap)
        # Coverage first exceeds M at the block that is the (M+1)-th smallest "first".
        stop_block = first.sort(dim=1).values[:, num_masked]
        if bool((stop_block < blocks.shape[1]).all()):
            break
        more = _draw_blocks(sizes, grid, blocks.shape[1], generator, wrap)
        blocks = torch.cat((blocks, more), dim=1)
    selected = first <= stop_block.unsqueeze(1)
    positions = torch.arange(num_patches, device=device).expand(batch_size, -1)
    if wrap:
        # list(set(ids))[:M] keeps the M lowest indices (small-int sets iterate sorted).
        order_key = torch.where(selected, positions, positions + num_patches).float()
    else:
        noise = torch.rand(batch_size, num_patches, generator=generator, device=device)
        order_key = torch.where(selected, noise, noise + 2.0)
    chosen = order_key.argsort(dim=1)[:, :num_masked]
    return chosen.sort(dim=1).values


def cluster_mask(batch_size, grid, num_masked, generator=None, device=None):
    """The original SSAST cluster masking (patch model), vectorised.

    Arguments
    ---------
    batch_size : int
        Number of clips.
    grid : tuple of int
        ``(f_dim, t_dim)`` patch grid.
    num_masked : int
        Masked patches per clip M (at most N - 2, as the original requires).
    generator : torch.Generator, optional
        Source of randomness (on ``device``).
    device : torch.device, optional
        Where the indices live.

    Returns
    -------
    torch.Tensor
        ``(B, M)`` sorted distinct indices, never 0.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> mask = cluster_mask(3, (8, 64), 400, generator=g)
    >>> mask.shape, bool((mask > 0).all()), bool((mask.diff(dim=1) > 0).all())
    (torch.Size([3, 400]), True, True)
    """
    return _cluster(batch_size, grid, num_masked, generator, device, wrap=True)


def unbiased_cluster_mask(batch_size, grid, num_masked, generator=None, device=None):
    """Cluster masking without the original's biases (opt-in departure).

    Blocks are true 2-D squares clipped to the grid (no wrap across rows), any
    patch may be masked, and the surplus over M is removed at random.

    Arguments
    ---------
    batch_size : int
        Number of clips.
    grid : tuple of int
        ``(f_dim, t_dim)`` patch grid.
    num_masked : int
        Masked patches per clip M (< N).
    generator : torch.Generator, optional
        Source of randomness (on ``device``).
    device : torch.device, optional
        Where the indices live.

    Returns
    -------
    torch.Tensor
        ``(B, M)`` sorted distinct indices.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> unbiased_cluster_mask(2, (8, 64), 250, generator=g).shape
    torch.Size([2, 250])
    """
    return _cluster(batch_size, grid, num_masked, generator, device, wrap=False)


#: Names accepted by :func:`draw_mask`.
MASKING_STRATEGIES = ("random", "cluster", "unbiased_cluster")


def max_masked(strategy, num_patches):
    """The most patches of ``num_patches`` that ``strategy`` can mask (as :func:`draw_mask`).

    Random masking can mask every patch; the original cluster masking never
    covers index 0 and stops once it covers more than M patches, so it needs
    M <= N - 2; the unbiased variant needs M < N.

    Arguments
    ---------
    strategy : str
        One of :data:`MASKING_STRATEGIES`.
    num_patches : int
        Patches per clip N.

    Returns
    -------
    int

    Example
    -------
    >>> max_masked("random", 64), max_masked("cluster", 512), max_masked("unbiased_cluster", 512)
    (64, 510, 511)
    """
    slack = {"random": 0, "cluster": 2, "unbiased_cluster": 1}
    if strategy not in slack:
        raise ValueError(f"Unknown masking strategy {strategy!r}; choose from {MASKING_STRATEGIES}")
    return num_patches - slack[strategy]


def default_strategy(fshape, input_fdim=128):
    """The original's choice: cluster masking unless a patch spans all mel bins.

    Arguments
    ---------
    fshape : int
        Patch height in mel bins.
    input_fdim : int
        Mel bins of the input.

    Returns
    -------
    str

    Example
    -------
    >>> default_strategy(16), default_strategy(128)
    ('cluster', 'random')
    """
    return "random" if fshape == input_fdim else "cluster"


def draw_mask(strategy, batch_size, grid, num_masked, generator=None, device=None):
    """Draws masks with a named strategy.

    Arguments
    ---------
    strategy : str
        One of :data:`MASKING_STRATEGIES`.
    batch_size : int
        Number of clips.
    grid : tuple of int
        ``(f_dim, t_dim)`` patch grid.
    num_masked : int
        Masked patches per clip.
    generator : torch.Generator, optional
        Source of randomness.
    device : torch.device, optional
        Where the indices live.

    Returns
    -------
    torch.Tensor
        ``(B, M)`` int64 indices.

    Example
    -------
    >>> draw_mask("random", 2, (1, 512), 400).shape
    torch.Size([2, 400])
    """
    if strategy == "random":
        return random_mask(batch_size, grid[0] * grid[1], num_masked, generator, device)
    if strategy == "cluster":
        return cluster_mask(batch_size, grid, num_masked, generator, device)
    if strategy == "unbiased_cluster":
        return unbiased_cluster_mask(batch_size, grid, num_masked, generator, device)
    raise ValueError(f"Unknown masking strategy {strategy!r}; choose from {MASKING_STRATEGIES}")
