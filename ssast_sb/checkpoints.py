"""Original SSAST checkpoints <-> ssast_sb modules, with strict key accounting.

The original state dicts (docs/fidelity.md b.7) are ``DataParallel`` dicts whose
keys start with ``module.``; files without the prefix are accepted too. Every
tensor is accounted for: a missing or unexpected key is an error listing the
keys, unlike the original loader (``strict=False``, docs/fidelity.md f.5). The unused
timm classifier heads (``v.head*``) are kept aside as *leftovers* so that an
export reproduces the original file exactly.

Authors
 * ssast-sb contributors
"""

import logging
import os
from pathlib import Path

import torch

from ssast_sb.data.options import MissingDataError
from ssast_sb.encoder import MODEL_SIZES, PATCH_SHAPES, EncoderConfig, SSASTEncoder
from ssast_sb.errors import OptionError, UserError
from ssast_sb.fileio import save_atomic
from ssast_sb.masking import max_masked
from ssast_sb.models import SSASTClassifier, SSASTPretrainModel, adapt_encoder, masking_strategy
from ssast_sb.released import resolve_checkpoint

#: Original key prefix -> ssast_sb prefix. The whole conversion is this table.
KEY_MAP = (
    ("v.", "encoder."),
    ("cpredlayer.", "mpc_head."),
    ("gpredlayer.", "mpg_head."),
    ("mask_embed", "mask_embed"),
    ("mlp_head.", "mlp_head."),
)
#: Original tensors that no forward pass uses (timm's ImageNet heads).
LEFTOVER_PREFIXES = ("v.head.", "v.head_dist.")
#: Original tensors that hold the pretraining input size.
INPUT_SIZE_KEYS = ("p_input_fdim", "p_input_tdim")


logger = logging.getLogger(__name__)

#: File name of a pretraining run's export (``<output_folder>/pretrained/``).
PRETRAINED_FILE = "ssast_pretrained.pth"
#: What a pretraining checkpoint is, for error messages.
EXPECTED_PRETRAINING = (
    "expected an SSAST pretraining checkpoint: a released SSAST-*.pth, or the "
    f"{PRETRAINED_FILE} (or .ckpt) in <output_folder>/pretrained/ of recipes/pretrain"
)


class CheckpointError(UserError, ValueError):
    """A checkpoint does not match the model it is loaded into."""


def some_keys(keys, limit=8):
    """A short listing of state-dict keys for messages: the first few and the count.

    Example
    -------
    >>> some_keys(["a", "b", "c"], limit=2)
    "['a', 'b', ...] (3 keys)"
    >>> some_keys(["a"])
    "['a']"
    """
    keys = list(keys)
    if len(keys) <= limit:
        return str(keys)
    return f"{str(keys[:limit])[:-1]}, ...] ({len(keys)} keys)"


def _checkpoint_file(path):
    """The file to read for ``path``: itself, a pretraining export folder's ``.pth``, or a
    released model's cached download (:func:`ssast_sb.released.resolve_checkpoint`)."""
    path = Path(resolve_checkpoint(path))
    if path.is_dir():
        inside = path / PRETRAINED_FILE
        if not inside.is_file():
            raise CheckpointError(
                f"{path} is a folder without {PRETRAINED_FILE}; {EXPECTED_PRETRAINING}"
            )
        logger.info("%s is a folder; reading %s", path, inside)
        return inside
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path} ({EXPECTED_PRETRAINING})")
    return path


def read_state_dict(path):
    """``torch.load`` of a checkpoint file, with errors that name the file.

    Arguments
    ---------
    path : str or pathlib.Path
        A ``.pth``/``.ckpt`` file, or a pretraining export folder holding
        ``ssast_pretrained.pth``.

    Returns
    -------
    dict
        The state dict, on the CPU (read with ``weights_only=True``).

    Raises
    ------
    FileNotFoundError, CheckpointError
        A missing file; a truncated file or one that is not a PyTorch state dict.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "notes.pth")
    >>> _ = open(path, "w").write("not a checkpoint")
    >>> try:
    ...     read_state_dict(path)
    ... except CheckpointError as error:
    ...     print(str(error)[-59:])
    cannot be read: it is truncated or not a PyTorch checkpoint
    """
    path = _checkpoint_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, foreign pickle, text file: all the same to users
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CheckpointError(
            f"{path} ({path.stat().st_size} bytes, {type(error).__name__}: {first_line[:200]}); "
            f"{EXPECTED_PRETRAINING}. The file cannot be read: it is truncated or not a "
            "PyTorch checkpoint"
        ) from error
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path} holds a {type(state).__name__}, not a state dict; {EXPECTED_PRETRAINING}"
        )
    return state


def load_original(source):
    """Reads an SSAST state dict in the original layout and strips the ``module.`` prefix.

    A state dict in this package's own layout (``encoder.*``, ``mpc_head.*``:
    the ``ssast_pretrained.ckpt`` of a pretraining run) is converted to the
    original names, its pretraining input size taken from its position
    embedding. A fine-tuned classifier's state is refused with a message saying
    which file to use instead.

    Arguments
    ---------
    source : str or dict
        Path of a ``.pth``/``.ckpt`` file (read with ``weights_only=True``), a
        pretraining export folder, or a state dict.

    Returns
    -------
    dict
        Keys without ``module.``, in the file's order.

    Example
    -------
    >>> load_original({"module.v.cls_token": torch.zeros(1)})
    {'v.cls_token': tensor([0.])}
    """
    name = str(source) if isinstance(source, (str, os.PathLike)) else "the state dict"
    state = read_state_dict(source) if isinstance(source, (str, os.PathLike)) else source
    if not isinstance(state, dict):
        raise CheckpointError(f"{source!r} does not hold a state dict")
    state = {key.removeprefix("module."): value for key, value in state.items()}
    if not any(key.startswith("v.") for key in state) and any(
        key.startswith("encoder.") for key in state
    ):
        return _original_from_ours(state, name)
    return state


#: Keys of this package's classifiers that a pretraining checkpoint never has.
_FINETUNED_PREFIXES = ("mlp_head.", "layer_weights", "projector.", "head.")


def _original_from_ours(state, name):
    """Original names for a state dict in this package's layout (see :func:`load_original`)."""
    finetuned = [key for key in state if key.startswith(_FINETUNED_PREFIXES)]
    if finetuned:
        raise CheckpointError(
            f"{name} is a fine-tuned classifier (it has {some_keys(finetuned)}), not a "
            "pretraining checkpoint. Load it with ssast_sb.inference.SSASTAudioClassifier from "
            "its inference folder, or fine-tune from the pretraining file it started from "
            f"({EXPECTED_PRETRAINING})"
        )
    converted, dropped = {}, []
    for key, value in state.items():
        try:
            converted[original_name(key)] = value
        except CheckpointError:
            dropped.append(key)
    if dropped:
        logger.info("%s: no original name for %s; left out", name, some_keys(dropped))
    weight = converted["v.patch_embed.proj.weight"]
    fshape, tshape = weight.shape[2:]
    num_patches = converted["v.pos_embed"].shape[1] - SSASTEncoder.num_class_tokens
    fgrid = 128 // fshape  # pretraining grids do not overlap
    converted["p_input_fdim"] = torch.tensor(128)
    converted["p_input_tdim"] = torch.tensor(num_patches // fgrid * tshape)
    logger.info("%s is in this package's layout; read as an original pretraining file", name)
    return converted


def _rename(key):
    for old, new in KEY_MAP:
        if key.startswith(old):
            return new + key[len(old) :]
    return None


def original_name(key):
    """The original name of an ssast_sb tensor.

    Arguments
    ---------
    key : str
        ssast_sb state-dict key.

    Returns
    -------
    str
        The original key, without ``module.``.

    Example
    -------
    >>> original_name("mpc_head.2.bias")
    'cpredlayer.2.bias'
    """
    for old, new in KEY_MAP:
        if key.startswith(new):
            return old + key[len(new) :]
    raise CheckpointError(f"ssast_sb key {key!r} has no original name")


def split_original(state):
    """Splits an original state dict into ssast_sb tensors, leftovers and input size.

    Arguments
    ---------
    state : dict
        Original keys without ``module.``.

    Returns
    -------
    tensors : dict
        ssast_sb keys -> tensors.
    leftovers : dict
        Unused original tensors (``v.head*``), original keys.
    input_size : tuple of int or None
        ``(p_input_fdim, p_input_tdim)`` of a pretraining checkpoint.

    Example
    -------
    >>> t, left, size = split_original({"v.norm.weight": torch.ones(2),
    ...     "v.head.bias": torch.zeros(3), "p_input_fdim": torch.tensor(128),
    ...     "p_input_tdim": torch.tensor(1024)})
    >>> list(t), list(left), size
    (['encoder.norm.weight'], ['v.head.bias'], (128, 1024))
    """
    tensors, leftovers, unknown = {}, {}, []
    for key, value in state.items():
        if key.startswith(LEFTOVER_PREFIXES):
            leftovers[key] = value
        elif key in INPUT_SIZE_KEYS:
            continue
        elif _rename(key) is not None:
            tensors[_rename(key)] = value
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(
            f"Not an SSAST checkpoint: keys {some_keys(unknown)} have no SSAST meaning "
            f"({EXPECTED_PRETRAINING})"
        )
    has_size = all(key in state for key in INPUT_SIZE_KEYS)
    input_size = tuple(int(state[key]) for key in INPUT_SIZE_KEYS) if has_size else None
    return tensors, leftovers, input_size


def infer_config(tensors, input_size=None, model_size=None, num_heads=None, **overrides):
    """Rebuilds an :class:`EncoderConfig` from converted tensors.

    Width, depth and patch shape come from the tensor shapes; the number of
    heads from ``model_size`` or ``num_heads`` (default: width / 64, which holds
    for tiny, small and base).

    Arguments
    ---------
    tensors : dict
        ssast_sb keys -> tensors.
    input_size : tuple of int, optional
        ``(input_fdim, input_tdim)``.
    model_size : str, optional
        ``tiny``, ``small`` or ``base``.
    num_heads : int, optional
        Explicit number of heads.
    **overrides
        Other config fields (strides, input size).

    Returns
    -------
    EncoderConfig
    """
    weight = tensors["encoder.patch_embed.proj.weight"]
    embed_dim, _, fshape, tshape = weight.shape
    depth = 1 + max(int(k.split(".")[2]) for k in tensors if k.startswith("encoder.blocks."))
    if num_heads is None:
        num_heads = MODEL_SIZES[model_size]["num_heads"] if model_size else embed_dim // 64
    fields = dict(
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        fshape=fshape,
        tshape=tshape,
        fstride=fshape,
        tstride=tshape,
        mlp_ratio=tensors["encoder.blocks.0.mlp.fc1.weight"].shape[0] / embed_dim,
    )
    if input_size is not None:
        fields.update(input_fdim=input_size[0], input_tdim=input_size[1])
    fields.update(overrides)
    return EncoderConfig(**fields)


def load_strict(module, tensors, source="checkpoint"):
    """``load_state_dict`` that lists every missing or unexpected key.

    Arguments
    ---------
    module : torch.nn.Module
        Destination.
    tensors : dict
        State dict in ssast_sb names.
    source : str
        Name for the error message.

    Returns
    -------
    torch.nn.Module
        ``module``, loaded.

    Example
    -------
    >>> try:
    ...     load_strict(torch.nn.Linear(2, 2), {"weight": torch.zeros(2, 2)})
    ... except CheckpointError as error:
    ...     print(error)
    checkpoint does not match Linear: missing ['bias'], unexpected []
    """
    expected = set(module.state_dict())
    missing = sorted(expected - set(tensors))
    unexpected = sorted(set(tensors) - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not match {type(module).__name__}: "
            f"missing {some_keys(missing)}, unexpected {some_keys(unexpected)}"
        )
    module.load_state_dict(tensors, strict=True)
    return module


#: Original names of the MSPM pretraining heads (absent from an encoder-only export).
MSPM_HEADS = ("cpredlayer", "gpredlayer", "mask_embed")


def _require_pretraining_input(input_size):
    if input_size is None:
        raise CheckpointError(
            "This is not a pretraining checkpoint (no p_input_fdim/p_input_tdim); "
            "use classifier_from_original_finetuned"
        )


def _require_two_class_tokens(tensors, source):
    """Refuses a one-token model (the original's ``base_nokd``) with a message saying why."""
    if "encoder.cls_token" in tensors and "encoder.dist_token" not in tensors:
        name = source if isinstance(source, (str, os.PathLike)) else "The state dict"
        raise CheckpointError(
            f"{name} has one class token (no v.dist_token: a DeiT without distillation, the "
            "original's base_nokd, of which no model was released); this package's encoder, "
            "and so its exports (Hugging Face's ASTModel has cls_token and distillation_token), "
            "hold two"
        )


def encoder_from_original(source, model_size=None, num_heads=None):
    """The encoder of an original pretraining checkpoint, with or without its MSPM heads.

    Only the encoder tensors (``v.*``) are loaded, strictly; the heads, if any,
    are ignored. This reads a released SSAST ``.pth``, the ``ssast_pretrained.pth``
    of our pretraining recipes, and their encoder-only exports alike.

    Arguments
    ---------
    source : str or dict
        Original ``.pth`` path or state dict.
    model_size, num_heads : optional
        How many heads (see :func:`infer_config`).

    Returns
    -------
    encoder : SSASTEncoder
        At the pretraining grid (adapt it with :func:`ssast_sb.models.adapt_encoder`).
    leftovers : dict
        The unused original tensors, for :func:`export_original`.

    Example
    -------
    >>> from ssast_sb.encoder import EncoderConfig
    >>> encoder = SSASTEncoder(EncoderConfig(embed_dim=16, depth=1, num_heads=2))
    >>> loaded, _ = encoder_from_original(export_original(encoder), num_heads=2)
    >>> torch.equal(loaded.pos_embed, encoder.pos_embed), loaded.grid == encoder.grid
    (True, True)
    """
    tensors, leftovers, input_size = split_original(load_original(source))
    _require_pretraining_input(input_size)
    _require_two_class_tokens(tensors, source)
    config = infer_config(tensors, input_size, model_size, num_heads)
    prefix = "encoder."
    encoder_tensors = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    encoder = load_strict(SSASTEncoder(config), encoder_tensors, "original pretraining encoder")
    return encoder, leftovers


def size_name(config):
    """The name of a config's width/depth/heads in :data:`MODEL_SIZES`, or None.

    Example
    -------
    >>> size_name(EncoderConfig.from_names("small", "frame")), size_name(EncoderConfig(depth=3))
    ('small', None)
    """
    for name, fields in MODEL_SIZES.items():
        if all(getattr(config, key) == value for key, value in fields.items()):
            return name
    return None


def shape_name(config):
    """The name of a config's patch shape in :data:`PATCH_SHAPES`, or None.

    Example
    -------
    >>> shape_name(EncoderConfig.from_names("tiny", "frame"))
    'frame'
    """
    for name, shape in PATCH_SHAPES.items():
        if (config.fshape, config.tshape) == shape:
            return name
    return None


def describe_config(config):
    """One line on what an encoder is: size, patch shape, strides, grid and input length.

    Example
    -------
    >>> config = EncoderConfig.from_names("tiny", "frame", input_tdim=128)
    >>> print(describe_config(config))  # doctest: +ELLIPSIS
    SSAST-tiny (192-d, 12 blocks, 3 heads), frame 128x2 patches at stride 128/2, grid 1x64 ...
    """
    size = size_name(config) or "custom"
    shape = shape_name(config) or "custom"
    f_dim, t_dim = config.grid
    return (
        f"SSAST-{size} ({config.embed_dim}-d, {config.depth} blocks, {config.num_heads} heads), "
        f"{shape} {config.fshape}x{config.tshape} patches at stride "
        f"{config.fstride}/{config.tstride}, grid {f_dim}x{t_dim} over {config.input_tdim} frames"
    )


def check_pretrained_matches(config, path, model_size=None, patch_shape=None):
    """Refuses a pretrained encoder whose size or patch shape differs from the YAML's.

    Arguments
    ---------
    config : EncoderConfig
        What the checkpoint holds.
    path : str
        The checkpoint, for the message.
    model_size, patch_shape : str, optional
        What the YAML asks for; None accepts the checkpoint's.

    Raises
    ------
    CheckpointError
        Naming both, and the options that fix it.

    Example
    -------
    >>> config = EncoderConfig.from_names("tiny", "frame")
    >>> check_pretrained_matches(config, "x.pth", None, "frame")
    >>> try:
    ...     check_pretrained_matches(config, "x.pth", "base", "patch")
    ... except CheckpointError as error:
    ...     print(str(error)[:94])
    x.pth holds a tiny model with frame patches, but the YAML asks for model_size: base, patch_sha
    """
    held = {"model_size": size_name(config), "patch_shape": shape_name(config)}
    wanted = {"model_size": model_size, "patch_shape": patch_shape}
    clashes = [key for key in held if wanted[key] is not None and wanted[key] != held[key]]
    if not clashes:
        return
    asked = ", ".join(f"{key}: {wanted[key]}" for key in clashes)
    fix = " ".join(f"--{key} {held[key] or 'null'}" for key in clashes)
    raise CheckpointError(
        f"{path} holds a {held['model_size'] or 'custom'} model with "
        f"{held['patch_shape'] or f'{config.fshape}x{config.tshape}'} patches, but the YAML asks "
        f"for {asked} ({describe_config(config)}). Pass {fix} (or null to take them from the "
        "checkpoint), or another --pretrained_path"
    )


def warn_unseen_frames(config):
    """Warns when strides larger than the patch leave input frames or bins unseen.

    Arguments
    ---------
    config : EncoderConfig
        The encoder at its task grid.

    Returns
    -------
    str or None
        The warning, also logged.

    Example
    -------
    >>> warn_unseen_frames(EncoderConfig.from_names("tiny", "frame", fstride=128, tstride=10))
    'Frame 128x2 patches at time stride 10 see 2 of every 10 frames: 80% of the input is never seen'
    """
    unseen = [
        (axis, size, stride)
        for axis, size, stride in (
            ("time", config.tshape, config.tstride),
            ("frequency", config.fshape, config.fstride),
        )
        if stride > size
    ]
    if not unseen:
        return None
    axis, size, stride = unseen[0]
    message = (
        f"{(shape_name(config) or 'custom').capitalize()} {config.fshape}x{config.tshape} patches "
        f"at {axis} stride {stride} see {size} of every {stride} "
        f"{'frames' if axis == 'time' else 'bins'}: {round(100 * (1 - size / stride))}% of the "
        "input is never seen"
    )
    logger.warning(message)
    return message


#: Fine-tuning strides of the original recipes per patch shape (docs/fidelity.md d.2).
FINETUNE_STRIDES = {(16, 16): (10, 10), (128, 2): (128, 1)}


def default_strides(fshape, tshape):
    """The original recipes' fine-tuning strides for a patch shape; the shape itself otherwise.

    Example
    -------
    >>> default_strides(16, 16), default_strides(128, 2), default_strides(8, 8)
    ((10, 10), (128, 1), (8, 8))
    """
    return FINETUNE_STRIDES.get((fshape, tshape), (fshape, tshape))


def task_encoder(
    pretrained_path=None,
    model_size=None,
    patch_shape=None,
    fstride=16,
    tstride=16,
    target_frames=1024,
    pos_embed_adaptation="original",
    variable_length=False,
):
    """The encoder at a task's grid: a pretraining checkpoint adapted to it, or a fresh one.

    What a fine-tuning YAML declares as ``encoder: !apply:ssast_sb.checkpoints.task_encoder``.
    Only the checkpoint's encoder tensors are read (:func:`encoder_from_original`),
    then the patch strides and input length move to the task's
    (:func:`ssast_sb.models.adapt_encoder`); the checkpoint fixes the width, depth
    and patch shape. The global random state is left as it was (the encoder
    draws from a forked one), so a head built after it starts from the same
    weights whether the encoder was loaded or drawn: pretrained and scratch twins
    differ in their encoder only.

    Arguments
    ---------
    pretrained_path : str, optional
        An original-format pretraining checkpoint (a released ``SSAST-*.pth``, the
        ``ssast_pretrained.pth`` of our pretraining recipes or its encoder-only
        export), or a released model's name (``SSAST-Base-Patch-400``: its cached
        download, :mod:`ssast_sb.released`); None draws a fresh encoder.
    model_size : str, optional
        ``tiny``, ``small`` or ``base``. With a checkpoint it must be the
        checkpoint's (an error names both otherwise); None takes the checkpoint's
        (``base`` from scratch).
    patch_shape : str, optional
        ``patch`` (16x16) or ``frame`` (128x2), checked in the same way; None
        takes the checkpoint's (``patch`` from scratch).
    fstride, tstride : int or None
        Patch strides of the task grid; None: the original recipes' strides for the
        patch shape (:func:`default_strides`: 10/10 for patches, 128/1 for frames).
    target_frames : int
        Input frames of the task.
    pos_embed_adaptation : str
        ``original`` or ``resize`` (see :func:`ssast_sb.models.adapt_encoder`).
    variable_length : bool
        Accept inputs shorter than ``target_frames``.

    Returns
    -------
    SSASTEncoder

    Raises
    ------
    ssast_sb.data.options.MissingDataError
        A ``FileNotFoundError`` naming ``--pretrained_path`` when it does not exist.
    CheckpointError
        When the checkpoint cannot be read, is not a pretraining checkpoint, or
        does not match ``model_size``/``patch_shape``: the message names the options.
    ssast_sb.errors.OptionError
        When ``target_frames`` is shorter than one patch, or a name is unknown.

    Example
    -------
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> encoder = task_encoder(None, "tiny", "frame", fstride=128, tstride=1, target_frames=128)
    >>> encoder.grid, torch.equal(torch.rand(2), torch.manual_seed(0) and torch.rand(2))
    ((1, 127), True)
    """
    pretrained_path = resolve_checkpoint(pretrained_path)
    if pretrained_path and not Path(pretrained_path).exists():
        raise MissingDataError(
            f"--pretrained_path {pretrained_path} does not exist ({EXPECTED_PRETRAINING}). Pass "
            "an existing checkpoint, or --pretrained_path null to train from scratch."
        )
    with torch.random.fork_rng(devices=[]):
        if pretrained_path:
            try:
                pretrained, _ = encoder_from_original(pretrained_path)
            except CheckpointError as error:
                raise CheckpointError(
                    f"--pretrained_path {pretrained_path}: {error}. Pass an SSAST pretraining "
                    "checkpoint, or --pretrained_path null to train from scratch."
                ) from error
            logger.info(
                "Pretrained checkpoint %s: %s", pretrained_path, describe_config(pretrained.config)
            )
            check_pretrained_matches(pretrained.config, pretrained_path, model_size, patch_shape)
            fshape, tshape = pretrained.config.fshape, pretrained.config.tshape
            if target_frames < tshape:
                raise OptionError(
                    f"--target_frames {target_frames} is shorter than one {fshape}x{tshape} "
                    f"patch of {pretrained_path}: pass --target_frames {tshape} or more."
                )
            strides = default_strides(fshape, tshape)
            encoder = adapt_encoder(
                pretrained,
                fstride or strides[0],
                tstride or strides[1],
                target_frames,
                method=pos_embed_adaptation,
                variable_length=variable_length,
            )
        else:
            strides = default_strides(*PATCH_SHAPES[patch_shape or "patch"])
            config = EncoderConfig.from_names(
                model_size or "base",
                patch_shape or "patch",
                fstride=fstride or strides[0],
                tstride=tstride or strides[1],
                input_tdim=target_frames,
                variable_length=variable_length,
            )
            encoder = SSASTEncoder(config)
    logger.info("Task encoder: %s", describe_config(encoder.config))
    warn_unseen_frames(encoder.config)
    return encoder


def pretrain_model_from_original(source, model_size=None, num_heads=None, **model_kwargs):
    """An :class:`SSASTPretrainModel` holding an original pretraining checkpoint.

    Arguments
    ---------
    source : str or dict
        Original ``.pth`` path (e.g. ``SSAST-Base-Patch-400.pth``) or state dict.
    model_size, num_heads : optional
        How many heads (see :func:`infer_config`).
    **model_kwargs
        ``num_masked``, ``masking``, ``nce_direction``, ``mpg_weight``. Without
        ``num_masked``, 400 or the most the checkpoint's grid allows, if fewer
        (a model loaded to be exported or embedded draws no mask).

    Returns
    -------
    model : SSASTPretrainModel
    leftovers : dict
        The unused original tensors, for :func:`export_original`.

    Raises
    ------
    CheckpointError
        If the file is not a pretraining checkpoint, or holds the encoder only
        (the error names the absent heads; :func:`encoder_from_original` reads it).

    Example
    -------
    >>> from ssast_sb.encoder import EncoderConfig
    >>> state = export_original(SSASTEncoder(EncoderConfig(embed_dim=16, depth=1, num_heads=2)))
    >>> try:
    ...     pretrain_model_from_original(state)
    ... except CheckpointError as error:
    ...     print(str(error)[:74])
    checkpoint holds an encoder only: the MSPM heads cpredlayer, gpredlayer, m
    """
    state = load_original(source)
    name = source if isinstance(source, (str, os.PathLike)) else "checkpoint"
    absent = [head for head in MSPM_HEADS if not any(key.startswith(head) for key in state)]
    if absent and any(key.startswith("v.") for key in state) and "p_input_tdim" in state:
        raise CheckpointError(
            f"{name} holds an encoder only: the MSPM heads {', '.join(absent)} are absent, "
            "so it cannot be a full pretraining model; encoder_from_original reads it for "
            "fine-tuning or embeddings"
        )
    tensors, leftovers, input_size = split_original(state)
    _require_pretraining_input(input_size)
    config = infer_config(tensors, input_size, model_size, num_heads)
    if "num_masked" not in model_kwargs:
        strategy = masking_strategy(model_kwargs.get("masking"), config)
        model_kwargs["num_masked"] = max(1, min(400, max_masked(strategy, config.num_patches)))
    model = SSASTPretrainModel(SSASTEncoder(config), **model_kwargs)
    return load_strict(model, tensors, "original pretraining checkpoint"), leftovers


def classifier_from_original_pretrained(
    source,
    num_classes,
    input_tdim,
    fstride,
    tstride,
    pooling="mean",
    method="original",
    model_size=None,
    num_heads=None,
):
    """The original fine-tuning start: a pretraining checkpoint adapted to a task grid.

    Arguments
    ---------
    source : str or dict
        Original pretraining checkpoint.
    num_classes : int
        Size of the new head.
    input_tdim : int
        Frames of the fine-tuning input.
    fstride, tstride : int
        Fine-tuning strides.
    pooling : str
        ``mean`` or ``cls``.
    method : str
        Position-embedding adaptation: ``original`` or ``resize``.
    model_size, num_heads : optional
        How many heads (see :func:`infer_config`).

    Returns
    -------
    SSASTClassifier
        With a freshly initialised head.
    """
    pretrained, _ = encoder_from_original(source, model_size, num_heads)
    encoder = adapt_encoder(pretrained, fstride, tstride, input_tdim, method=method)
    return SSASTClassifier(encoder, num_classes, pooling)


def classifier_from_original_finetuned(
    source,
    input_tdim,
    fstride,
    tstride,
    pooling="mean",
    model_size=None,
    num_heads=None,
    input_fdim=128,
):
    """An :class:`SSASTClassifier` holding an original fine-tuned checkpoint.

    Arguments
    ---------
    source : str or dict
        Original fine-tuning state dict (``v.*`` and ``mlp_head.*``).
    input_tdim : int
        Frames the model was fine-tuned on.
    fstride, tstride : int
        Its strides.
    pooling : str
        ``mean`` or ``cls``.
    model_size, num_heads : optional
        How many heads (see :func:`infer_config`).
    input_fdim : int
        Mel bins.

    Returns
    -------
    model : SSASTClassifier
    leftovers : dict
        The unused original tensors.
    """
    tensors, leftovers, _ = split_original(load_original(source))
    config = infer_config(
        tensors, (input_fdim, input_tdim), model_size, num_heads, fstride=fstride, tstride=tstride
    )
    num_classes = tensors["mlp_head.1.weight"].shape[0]
    model = SSASTClassifier(SSASTEncoder(config), num_classes, pooling)
    return load_strict(model, tensors, "original fine-tuning checkpoint"), leftovers


def _zero_leftovers(width):
    """Stand-ins for timm's unused 1000-class heads when none were kept."""
    return {
        f"{head}.{part}": torch.zeros((1000, width) if part == "weight" else (1000,))
        for head in ("v.head", "v.head_dist")
        for part in ("weight", "bias")
    }


def export_original(model, leftovers=None, prefix="module."):
    """The original-format state dict of a pretraining model, an encoder or a classifier.

    Only what the module holds is written: a pretraining model gives the
    encoder, the MSPM heads and the mask embedding; an :class:`SSASTEncoder`
    alone gives an encoder-only pretraining file (``p_input_*`` and ``v.*``),
    which :func:`encoder_from_original` reads and
    :func:`pretrain_model_from_original` refuses, naming the absent heads.

    Arguments
    ---------
    model : SSASTPretrainModel, SSASTEncoder or SSASTClassifier
        What to export.
    leftovers : dict, optional
        The unused ``v.head*`` tensors read with the model; zeros otherwise
        (no original forward pass reads them).
    prefix : str
        ``module.`` (the released files' layout) or ``""``.

    Returns
    -------
    dict
        Keys in the original order.

    Example
    -------
    >>> from ssast_sb.encoder import EncoderConfig
    >>> cfg = EncoderConfig(embed_dim=16, depth=1, num_heads=2)
    >>> sd = export_original(SSASTPretrainModel(SSASTEncoder(cfg)))
    >>> list(sd)[:3], len(sd)
    (['module.p_input_fdim', 'module.p_input_tdim', 'module.mask_embed'], 34)
    >>> sd = export_original(SSASTEncoder(cfg))
    >>> list(sd)[:3], len(sd)
    (['module.p_input_fdim', 'module.p_input_tdim', 'module.v.cls_token'], 25)
    """
    if isinstance(model, SSASTEncoder):
        encoder, named = model, {"encoder." + k: v for k, v in model.state_dict().items()}
    else:
        encoder, named = model.encoder, model.state_dict()
    width = encoder.config.embed_dim
    leftovers = leftovers if leftovers is not None else _zero_leftovers(width)
    ours = {original_name(k): v.detach().clone() for k, v in named.items()}
    state = {}
    if isinstance(model, (SSASTPretrainModel, SSASTEncoder)):
        state["p_input_fdim"] = torch.tensor(encoder.config.input_fdim)
        state["p_input_tdim"] = torch.tensor(encoder.config.input_tdim)
    if isinstance(model, SSASTPretrainModel):
        state["mask_embed"] = ours.pop("mask_embed")
    # timm's order: tokens, patch embedding, blocks, norm, then its heads; ours follow.
    encoder_keys = [k for k in ours if k.startswith("v.")]
    encoder_keys.sort(key=lambda k: (k != "v.cls_token", k != "v.pos_embed", k != "v.dist_token"))
    for key in encoder_keys:
        state[key] = ours.pop(key)
    state.update(leftovers)
    state.update(ours)
    return {prefix + key: value for key, value in state.items()}


def save_speechbrain_checkpoint(model, path):
    """Saves a module as SpeechBrain's checkpointer and ``Pretrainer`` read it.

    Arguments
    ---------
    model : torch.nn.Module
        The module.
    path : str
        Destination (e.g. ``model.ckpt``).
    """
    save_atomic(model.state_dict(), path)
