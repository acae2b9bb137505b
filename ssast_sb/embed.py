"""Embeddings of a folder or manifest of audio files with any SSAST model, fine-tuned or not.

::

    python -m ssast_sb.embed --model SSAST-Base-Frame-400.pth --input clips/ --output emb.pt
    python -m ssast_sb.embed --model results/pretrain/pretrained --input train.csv \\
        --output emb.npy --layer 6
    python -m ssast_sb.embed --model SSAST-Base-Patch-400.pth --input clips/ --output frames.pt \\
        --level frame --layer all
    python -m ssast_sb.embed --model results/esc50/inference --input clips/ --output emb.pt

``--model`` is a self-supervised pretraining checkpoint (a released
``SSAST-*.pth``, a pretraining run's ``pretrained/`` folder or its
``ssast_pretrained.pth``/``.ckpt``, a SpeechBrain ``CKPT+*`` folder of it),
used frozen without any fine-tuning, or an inference folder written by a
fine-tuning run. Everything is computed by
:class:`ssast_sb.features.SSASTEncoderInterface`, which says how:

* A pretraining checkpoint runs at its pretraining grid (16x16 patches at
  stride 16, or 128x2 frames at stride 2, over its ``p_input_tdim`` frames,
  1024 for the released models) with AudioSet statistics; ``--fstride``,
  ``--tstride`` and ``--input-tdim`` choose another grid (the original
  position-embedding adaptation), ``--mean``/``--std`` or ``--norm-preset``
  other statistics.
* A clip shorter than the input is embedded from its own frames, not padded to
  the input (the encoder's ``variable_length`` path, as the original author
  advised for short clips), and mean pooling averages real audio only;
  ``--pad-to-input`` pads to the full input and averages the padding too, as the
  original does. An inference folder keeps the input handling it was fine-tuned with.
* ``--layer``: a block (0-based, negative from the end), ``last`` (after the
  final LayerNorm), or ``all`` (every block, stacked). Default: ``last``, or an
  inference folder's own embedding (what its head sees) at clip level.
* ``--level clip`` (``--pooling mean`` over patch tokens, or ``cls``) or
  ``--level frame``: a time-ordered sequence per file, one frame per patch
  column (a patch model's frequency rows averaged), every ``tstride`` x 10 ms.
* A clip longer than the model's input is cut into windows whose frames are the
  clip's own (``--window-s``, default the model's input); its clip embedding is
  the mean of its windows', its frame sequence theirs concatenated in time.
* Files of any sample rate are resampled to 16 kHz and mixed to mono.

Clips are sorted by duration and batched so that each batch holds at most
``--batch-seconds`` of model input.

The output, in input order, is a ``.pt`` file holding ``{"ids": [...],
"paths": [...], "embeddings": ..., "meta": {...}}`` (plus ``"lengths"`` at frame
level), or at clip level an ``.npy`` array with the IDs in ``<name>.ids.txt`` and
the audio file of each in ``<name>.paths.txt`` next to it.
Clip embeddings are an ``(N, D)`` tensor (``(N, L, D)`` with ``--layer all``);
frame embeddings a list of ``(T'_i, D)`` tensors (``(L, T'_i, D)``), which only
``.pt`` holds. ``meta`` names the model, encoder, layer, level, pooling, window,
input handling and statistics, and at frame level ``hop_s`` and
``frame_rate_hz``. A missing, empty or undecodable file stops the run with an
``AudioError`` naming it; with ``--on-bad-audio skip`` such files are left out,
listed in a warning and counted in the last line.

Authors
 * ssast-sb contributors
"""

import argparse
import csv
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ssast_sb.console import log_to_console, quiet_loggers
from ssast_sb.data.audio import AudioError, audio_info, load_audio
from ssast_sb.data.generic import prepare_generic
from ssast_sb.data.manifest import (
    BAD_AUDIO_POLICIES,
    REQUIRED_COLUMNS,
    bad_audio_error,
    read_manifest,
    validate_audio_rows,
)
from ssast_sb.errors import report_user_errors
from ssast_sb.features import LEVELS, POOLINGS, SSASTEncoderInterface
from ssast_sb.fileio import atomic_open, save_atomic
from ssast_sb.frontend import PRESETS, SAMPLE_RATE
from ssast_sb.inference import SSASTAudioClassifier

logger = logging.getLogger(__name__)

PROG = "python -m ssast_sb.embed"


def list_audio(source, data_root=None, on_bad_audio="error"):
    """The ``ID``, ``duration`` and ``wav`` rows of a folder, CSV or JSON of audio files.

    See :func:`check_audio_list`, which also counts the files left out.

    Arguments
    ---------
    source : str or pathlib.Path
        A folder, a ``.csv`` or a ``.json`` file.
    data_root : str, optional
        Root of relative paths in a CSV/JSON list (default: its folder).
    on_bad_audio : {"error", "skip"}
        What to do with a missing, empty or unreadable file.

    Returns
    -------
    list of dict

    Example
    -------
    >>> import numpy as np, soundfile as sf
    >>> folder = Path(tempfile.mkdtemp())
    >>> sf.write(folder / "b.wav", np.zeros(8000, "float32"), 16000)
    >>> sf.write(folder / "a.wav", np.zeros(1600, "float32"), 16000)
    >>> [(row["ID"], row["duration"]) for row in list_audio(folder)]
    [('a', 0.1), ('b', 0.5)]
    """
    return check_audio_list(source, data_root, on_bad_audio)[0]


def check_audio_list(source, data_root=None, on_bad_audio="error"):
    """The usable audio of a folder, CSV or JSON of audio files, and what was left out.

    A SpeechBrain manifest (``ID,duration,wav`` columns; a UTF-8 byte-order mark
    is allowed) keeps its IDs and paths; anything else goes through
    :func:`ssast_sb.data.generic.prepare_generic` (folder scan, or a CSV/JSON
    whose paths lie under ``data_root``). Either way every file's header is
    checked and its duration measured by
    :func:`ssast_sb.data.manifest.validate_audio_rows`.

    Arguments
    ---------
    source : str or pathlib.Path
        A folder, a ``.csv`` or a ``.json`` file.
    data_root : str, optional
        Root of relative paths in a CSV/JSON list (default: its folder).
    on_bad_audio : {"error", "skip"}
        ``error`` raises an ``AudioError`` naming the first missing, empty or
        unreadable file; ``skip`` leaves such files out with a warning naming each.

    Returns
    -------
    rows : list of dict
        ``ID``, ``duration`` (float, seconds) and ``wav`` of the usable files.
    num_left_out : int
        Files left out under ``skip``.

    Example
    -------
    >>> import numpy as np, soundfile as sf
    >>> folder = Path(tempfile.mkdtemp())
    >>> sf.write(folder / "a.wav", np.zeros(1600, "float32"), 16000)
    >>> _ = (folder / "b.wav").write_bytes(b"")
    >>> rows, num_left_out = check_audio_list(folder, on_bad_audio="skip")
    >>> [row["ID"] for row in rows], num_left_out
    (['a'], 1)
    """
    source = Path(source)
    if _is_speechbrain_manifest(source):
        with open(source, newline="", encoding="utf-8-sig") as stream:
            rows, summary = validate_audio_rows(
                csv.DictReader(stream), on_bad_audio, skip_option="--on-bad-audio skip"
            )
        return rows, summary["total"] - summary["kept"]
    # The manifest is a temporary file: its preparation lines would name it, not the data.
    quiet = quiet_loggers("ssast_sb.data.generic", "ssast_sb.data.manifest")
    with tempfile.TemporaryDirectory() as folder, quiet:
        summary = prepare_generic(
            source, folder, "embed", on_bad_audio=on_bad_audio, data_root=data_root, force=True
        )
        rows = read_manifest(Path(folder) / "embed.csv")
    return rows, summary["total"] - summary["kept"]


def _is_speechbrain_manifest(source):
    """Whether ``source`` is a CSV whose header holds SpeechBrain's ``ID,duration,wav``."""
    if not (source.is_file() and source.suffix.lower() == ".csv"):
        return False
    with open(source, newline="", encoding="utf-8-sig") as stream:
        header = next(csv.reader(stream), [])
    return all(column in header for column in REQUIRED_COLUMNS)


def load_embedder(model, device="cpu", savedir=None, **options):
    """Loads any SSAST model as an :class:`~ssast_sb.features.SSASTEncoderInterface`.

    Arguments
    ---------
    model : str or pathlib.Path
        A pretraining checkpoint or an inference folder (see
        :meth:`~ssast_sb.features.SSASTEncoderInterface.from_checkpoint`).
    device : str
        ``cpu`` or ``cuda[:N]``.
    savedir : str, optional
        Where SpeechBrain links an inference folder's files; None loads them in place.
    **options
        ``fstride``, ``tstride``, ``input_tdim``, ``mean``, ``std``,
        ``norm_preset``, ``pad_to_input`` of ``from_checkpoint``.

    Returns
    -------
    SSASTEncoderInterface

    Example
    -------
    >>> try:
    ...     load_embedder("no/such/model.pth")
    ... except FileNotFoundError as error:
    ...     print(str(error)[:56])
    Model not found: no/such/model.pth does not exist; expec
    """
    return SSASTEncoderInterface.from_checkpoint(
        model, savedir=savedir, run_opts={"device": device}, **options
    )


def as_embedder(model):
    """An :class:`~ssast_sb.features.SSASTEncoderInterface` of a loaded model.

    Arguments
    ---------
    model : SSASTEncoderInterface or SSASTAudioClassifier
        A loaded model (a classifier's modules are shared, not copied).

    Returns
    -------
    SSASTEncoderInterface
    """
    if isinstance(model, SSASTAudioClassifier):
        return SSASTEncoderInterface.from_classifier(model)
    if not isinstance(model, SSASTEncoderInterface):
        raise TypeError(
            f"Expected an SSASTEncoderInterface or SSASTAudioClassifier, got {type(model).__name__}"
        )
    return model


def duration_batches(durations, window_s, batch_seconds, pad_to_window=True):
    """Groups clips, shortest first, into batches of at most ``batch_seconds`` of model input.

    With ``pad_to_window`` a clip costs ``windows x window_s`` seconds, since
    every window is padded to the model's length; without, its own duration.
    A clip costlier than ``batch_seconds`` gets a batch of its own.
    (SpeechBrain's ``DynamicBatchSampler``, which the fine-tuning loaders use,
    buckets a dataset by its own length; here the cost of a clip is its number
    of model windows and all of a clip's windows must share a batch, which it
    does not express.)

    Arguments
    ---------
    durations : sequence of float
        Clip durations in seconds.
    window_s : float
        Model input (window) length in seconds.
    batch_seconds : float
        Budget per batch.
    pad_to_window : bool
        Whether every window is padded to ``window_s``.

    Returns
    -------
    list of list of int
        Positions of the clips in each batch.

    Example
    -------
    >>> duration_batches([3.0, 0.5, 1.0, 0.2], window_s=1.0, batch_seconds=2.0)
    [[3, 1], [2], [0]]
    >>> duration_batches([3.0, 0.5, 1.0, 0.2], 1.0, 2.0, pad_to_window=False)
    [[3, 1, 2], [0]]
    """
    batches, current, total = [], [], 0.0
    for position in sorted(range(len(durations)), key=lambda i: durations[i]):
        windows = max(1, -(-round(durations[position] * 100) // round(window_s * 100)))
        cost = window_s * windows if pad_to_window else durations[position]
        if current and total + cost > batch_seconds:
            batches.append(current)
            current, total = [], 0.0
        current.append(position)
        total += cost
    if current:
        batches.append(current)
    return batches


def _try_audio(read, path, on_bad_audio):
    """``(read(path), None)``, or under ``skip`` ``(None, message)`` of the ``AudioError``."""
    try:
        return read(path), None
    except AudioError as err:
        if on_bad_audio == "error":
            raise
        return None, str(err)


def _load_16k(path):
    """The file as a mono 16 kHz waveform."""
    return load_audio(path, SAMPLE_RATE)


def _load_batch(paths, positions, left_out, on_bad_audio):
    """``{position: waveform}`` of the usable files; the others go to ``left_out``."""
    wavs = {}
    for position in (position for position in positions if position not in left_out):
        wav, problem = _try_audio(_load_16k, paths[position], on_bad_audio)
        if problem is None:
            wavs[position] = wav
        else:
            left_out[position] = problem
    return wavs


def _measure_durations(paths, on_bad_audio):
    """Durations from the headers, and ``{position: problem}`` of the files left out.

    Every header is read first: under ``error``, one error names every bad file
    (:func:`ssast_sb.data.manifest.bad_audio_error`), not just the first.
    """
    durations, left_out, problems = [], {}, []
    for position, path in enumerate(paths):
        try:
            info = audio_info(path)
        except AudioError as err:
            problems.append((str(err), err))
            left_out[position] = str(err)
            info = None
        durations.append(0.0 if info is None else info.duration_s)
    if problems and on_bad_audio == "error":
        raise bad_audio_error(problems, len(paths), skip_option="--on-bad-audio skip")
    return durations, left_out


def _warn_left_out(problems, total):
    """One warning listing the files left out, each with its problem."""
    if problems:
        logger.warning(
            "Left out %d of %d files with unusable audio (on_bad_audio=skip): %s",
            len(problems),
            total,
            "; ".join(problems),
        )


@torch.no_grad()
def embed_files(
    model,
    paths,
    ids=None,
    durations=None,
    layer=None,
    pooling="mean",
    batch_seconds=60.0,
    window_s=None,
    progress=True,
    on_bad_audio="error",
    level="clip",
):
    """Embeds audio files, windowing those longer than the model's input.

    Arguments
    ---------
    model : SSASTEncoderInterface or SSASTAudioClassifier
        The loaded model (:func:`load_embedder`).
    paths : sequence of str
        Audio files (any rate; resampled to 16 kHz, mixed to mono).
    ids : sequence of str, optional
        Their IDs (default: the paths).
    durations : sequence of float, optional
        Their durations in seconds, for batching (default: read from the headers).
    layer : int or str, optional
        A block index, ``last``, ``all``, or None (see
        :class:`~ssast_sb.features.SSASTEncoderInterface`).
    pooling : str
        ``mean`` or ``cls`` (clip level).
    batch_seconds : float
        Model input per batch, in seconds.
    window_s : float, optional
        Window length (default and maximum: the model's input length).
    progress : bool
        Show a tqdm progress bar.
    on_bad_audio : {"error", "skip"}
        ``error`` raises the ``AudioError`` (naming the file) of a missing, empty
        or undecodable file; ``skip`` leaves such files out, listed in one warning.
    level : str
        ``clip`` or ``frame``.

    Returns
    -------
    dict
        ``ids`` (list) of the embedded files, in input order, and their
        ``paths``; ``embeddings``:
        clip level an ``(N, D)`` (``(N, L, D)``) tensor, frame level a list of
        ``(T'_i, D)`` (``(L, T'_i, D)``) tensors, with ``lengths`` ``(N,)``;
        ``num_windows`` ``(N,)`` windows per clip; ``left_out``: ``(id, problem)``
        of the files left out; ``meta``: see
        :meth:`~ssast_sb.features.SSASTEncoderInterface.describe`.
    """
    if on_bad_audio not in BAD_AUDIO_POLICIES:
        raise ValueError(f"on_bad_audio must be one of {BAD_AUDIO_POLICIES}, got {on_bad_audio!r}")
    embedder = as_embedder(model)
    paths = [str(path) for path in paths]
    ids = list(paths if ids is None else ids)
    window_frames = embedder.window_frames(
        level, None if window_s is None else round(window_s * 100)
    )
    meta = embedder.describe(layer, level, pooling, window_frames)
    left_out = {}
    if durations is None:
        durations, left_out = _measure_durations(paths, on_bad_audio)
    embeddings = [None] * len(paths)
    num_windows = torch.zeros(len(paths), dtype=torch.long)
    batches = duration_batches(durations, window_frames / 100, batch_seconds, embedder.pad_to_input)
    with tqdm(total=len(paths), desc="Embedding", unit="clip", disable=not progress) as bar:
        for batch in batches:
            wavs = _load_batch(paths, batch, left_out, on_bad_audio)
            if wavs:
                outputs, counts = embedder.encode_clips(
                    list(wavs.values()), layer, level, pooling, window_frames
                )
                for slot, position in enumerate(wavs):
                    embeddings[position], num_windows[position] = outputs[slot], counts[slot]
            bar.update(len(batch))
    _warn_left_out([left_out[position] for position in sorted(left_out)], len(paths))
    kept = [position for position in range(len(paths)) if position not in left_out]
    if not kept:
        raise ValueError(
            f"No usable audio to embed: all {len(paths)} files left out" if paths else "No files"
        )
    result = {
        "ids": [ids[position] for position in kept],
        "paths": [paths[position] for position in kept],
        "embeddings": [embeddings[position] for position in kept],
        "num_windows": num_windows[kept],
        "left_out": [(ids[position], left_out[position]) for position in sorted(left_out)],
        "meta": meta,
    }
    if level == "clip":
        result["embeddings"] = torch.stack(result["embeddings"])
    else:
        result["lengths"] = torch.tensor([frames.shape[-2] for frames in result["embeddings"]])
    return result


def ids_sidecar(path):
    """The IDs file written next to a ``.npy`` output.

    Example
    -------
    >>> ids_sidecar("out/emb.npy").as_posix()
    'out/emb.ids.txt'
    """
    return Path(path).with_suffix(".ids.txt")


def paths_sidecar(path):
    """The file of audio paths (one per ID, in order) written next to a ``.npy`` output.

    Example
    -------
    >>> paths_sidecar("out/emb.npy").as_posix()
    'out/emb.paths.txt'
    """
    return Path(path).with_suffix(".paths.txt")


def save_embeddings(ids, embeddings, path, meta=None, paths=None):
    """Writes the embeddings to ``.pt``, or ``.npy`` plus ``<name>.ids.txt``, atomically.

    ``paths`` maps each ID back to its audio file (IDs made unique by a hash of
    the path say nothing of the file otherwise).

    Arguments
    ---------
    ids : list of str
        One per embedding.
    embeddings : torch.Tensor or list of torch.Tensor
        ``(N, D)`` or ``(N, L, D)`` clip embeddings, or a list of ``N`` frame
        sequences ``(T'_i, D)`` or ``(L, T'_i, D)`` (``.pt`` only).
    path : str or pathlib.Path
        Ends in ``.pt`` (``{"ids", "embeddings", "meta"}``, plus ``"lengths"``
        ``(N,)`` for frame sequences) or ``.npy`` (the array; the IDs in
        :func:`ids_sidecar`; no metadata).
    meta : dict, optional
        What the embeddings are (see :func:`embed_files`).
    paths : list of str, optional
        The audio file of each ID: ``"paths"`` in a ``.pt``, :func:`paths_sidecar`
        beside a ``.npy``.

    Example
    -------
    >>> path = Path(tempfile.mkdtemp()) / "emb.npy"
    >>> save_embeddings(["a", "b"], torch.eye(2), path)
    >>> load_embeddings(path)
    (['a', 'b'], tensor([[1., 0.],
            [0., 1.]]))
    >>> path = path.with_suffix(".pt")
    >>> save_embeddings(["a"], [torch.zeros(5, 2)], path, meta={"level": "frame"})
    >>> torch.load(path)["lengths"]
    tensor([5])
    """
    path = Path(path)
    ids = [str(utt_id) for utt_id in ids]
    if len(ids) != len(embeddings):
        raise ValueError(f"{len(ids)} IDs for {len(embeddings)} embeddings")
    paths = None if paths is None else [str(audio) for audio in paths]
    if paths is not None and len(paths) != len(ids):
        raise ValueError(f"{len(paths)} paths for {len(ids)} IDs")
    frames = isinstance(embeddings, (list, tuple))
    if path.suffix == ".pt":
        data = {"ids": ids, "meta": dict(meta or {})}
        if paths is not None:
            data["paths"] = paths
        if frames:
            data["embeddings"] = [sequence.detach().cpu() for sequence in embeddings]
            data["lengths"] = torch.tensor([sequence.shape[-2] for sequence in embeddings])
        else:
            data["embeddings"] = embeddings.detach().cpu()
        save_atomic(data, path)
        return
    if path.suffix != ".npy":
        raise ValueError(f"Output {path} must end in .pt or .npy")
    if frames:
        raise ValueError(
            f"Output {path}: frame embeddings have one length per file and go to a .pt file"
        )
    if any("\n" in utt_id for utt_id in ids + (paths or [])):
        raise ValueError("IDs or paths with line breaks cannot go to a .txt list; use .pt")
    with atomic_open(ids_sidecar(path)) as stream:
        stream.write("".join(f"{utt_id}\n" for utt_id in ids))
    if paths is not None:
        with atomic_open(paths_sidecar(path)) as stream:
            stream.write("".join(f"{audio}\n" for audio in paths))
    with atomic_open(path, "wb") as stream:
        np.save(stream, embeddings.detach().cpu().numpy())


def load_embeddings(path, with_meta=False):
    """Reads what :func:`save_embeddings` wrote.

    Arguments
    ---------
    path : str or pathlib.Path
        A ``.pt`` or ``.npy`` output.
    with_meta : bool
        Also return the metadata (``{}`` for ``.npy``).

    Returns
    -------
    ids : list of str
    embeddings : torch.Tensor or list of torch.Tensor
    meta : dict
        With ``with_meta`` only.
    """
    path = Path(path)
    if path.suffix == ".pt":
        data = torch.load(path, map_location="cpu", weights_only=True)
        loaded = data["ids"], data["embeddings"], data.get("meta", {})
    else:
        ids = ids_sidecar(path).read_text(encoding="utf-8").splitlines()
        loaded = ids, torch.from_numpy(np.load(path)), {}
    return loaded if with_meta else loaded[:2]


def parse_layer(value):
    """``--layer`` values: ``last``, ``all`` or a block index.

    Example
    -------
    >>> parse_layer("last"), parse_layer("all"), parse_layer("-2")
    ('last', 'all', -2)
    """
    if value in ("last", "all"):
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a block index (0-based, negative from the end), 'last' or 'all', "
            f"got {value!r}"
        ) from None


def add_checkpoint_grid_options(parser):
    """The grid and statistics options of a pretraining checkpoint (also ``ssast_sb.export``'s).

    Arguments
    ---------
    parser : argparse.ArgumentParser
        Gets ``--fstride``, ``--tstride``, ``--input-tdim``, ``--mean``, ``--std`` and
        ``--norm-preset`` in a group of their own.

    Returns
    -------
    argparse._ArgumentGroup
        The group, for more options.
    """
    grid = parser.add_argument_group(
        "pretraining checkpoints", "default: the checkpoint's pretraining grid, AudioSet statistics"
    )
    grid.add_argument("--fstride", type=int, default=None, help="frequency stride of the patches")
    grid.add_argument("--tstride", type=int, default=None, help="time stride of the patches")
    grid.add_argument("--input-tdim", type=int, default=None, help="model input in frames")
    grid.add_argument("--mean", type=float, default=None, help="fbank mean (with --std)")
    grid.add_argument("--std", type=float, default=None, help="fbank std (with --mean)")
    grid.add_argument(
        "--norm-preset", choices=sorted(PRESETS), default=None, help="statistics of a recipe"
    )
    return grid


def add_model_options(parser):
    """The options that choose the model and its layer, shared with ``python -m ssast_sb.verify``.

    Arguments
    ---------
    parser : argparse.ArgumentParser
        Gets ``--model``, ``--layer``, ``--pooling``, the grid, statistics and
        padding options, and ``--device``.
    """
    parser.add_argument(
        "--model",
        required=True,
        help="pretraining checkpoint (SSAST-*.pth, a pretraining run's pretrained/ folder or its "
        ".pth/.ckpt, a CKPT+* folder) or an inference folder",
    )
    parser.add_argument(
        "--layer",
        type=parse_layer,
        default=None,
        help="block index (0-based, negative from the end), 'last' (final LayerNorm output) or "
        "'all' (every block, stacked); default: 'last', or an inference folder's own embedding",
    )
    parser.add_argument("--pooling", choices=POOLINGS, default="mean", help="clip pooling")
    grid = add_checkpoint_grid_options(parser)
    grid.add_argument(
        "--pad-to-input",
        action="store_true",
        help="pad every clip to the model's input and average the padding's tokens, as the "
        "original does (default: embed each clip from its own frames)",
    )
    parser.add_argument("--device", default="cpu")


def embedder_from_args(args):
    """The model that the options of :func:`add_model_options` name (:func:`load_embedder`)."""
    return load_embedder(
        args.model,
        args.device,
        fstride=args.fstride,
        tstride=args.tstride,
        input_tdim=args.input_tdim,
        mean=args.mean,
        std=args.std,
        norm_preset=args.norm_preset,
        pad_to_input=True if args.pad_to_input else None,
    )


def build_parser():
    """Command-line options of ``python -m ssast_sb.embed``."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    add_model_options(parser)
    parser.add_argument("--input", required=True, help="folder, manifest CSV or JSON of audio")
    parser.add_argument("--output", required=True, help="file.pt, or file.npy at clip level")
    parser.add_argument(
        "--level",
        choices=LEVELS,
        default="clip",
        help="one embedding per file, or a time-ordered sequence per file (.pt only)",
    )
    parser.add_argument("--batch-seconds", type=float, default=60.0)
    parser.add_argument("--window-s", type=float, default=None, help="default: model length")
    parser.add_argument("--data-root", default=None, help="root of relative paths in a list")
    parser.add_argument(
        "--on-bad-audio",
        "--on_bad_audio",  # the recipes' spelling, which shared error messages use
        choices=BAD_AUDIO_POLICIES,
        default="error",
        help="a missing, empty or undecodable file: stop with an error naming it, or skip it "
        "(listed in a warning, counted in the last line)",
    )
    return parser


def summary_line(result, output, num_left_out=0, count_left_out=False):
    """The last line of ``python -m ssast_sb.embed``.

    Arguments
    ---------
    result : dict
        What :func:`embed_files` returned.
    output : str
        The output file.
    num_left_out : int
        Files left out before embedding (by :func:`check_audio_list`).
    count_left_out : bool
        Add the count of files left out (``--on-bad-audio skip``).

    Returns
    -------
    str

    Example
    -------
    >>> result = {"ids": ["a", "b"], "embeddings": torch.zeros(2, 8),
    ...           "num_windows": torch.tensor([1, 3]), "left_out": [("c", "empty")]}
    >>> summary_line(result, "emb.pt", num_left_out=1, count_left_out=True)
    '2 embeddings of size 8 (1 clips windowed, 2 files with unusable audio left out) -> emb.pt'
    >>> result = {"ids": ["a"], "embeddings": [torch.zeros(12, 5, 8)], "lengths": torch.tensor([5]),
    ...           "num_windows": torch.tensor([1]), "left_out": [], "meta": {"hop_s": 0.02}}
    >>> summary_line(result, "frames.pt")
    '1 frame sequences of size 12x8, 5 frames in all at 50 frames/s (0 clips windowed) -> frames.pt'
    """
    windowed = int((result["num_windows"] > 1).sum())
    details = f"{windowed} clips windowed"
    if count_left_out:
        left_out = num_left_out + len(result["left_out"])
        details += f", {left_out} files with unusable audio left out"
    if "lengths" in result:
        shape = (*result["embeddings"][0].shape[:-2], result["embeddings"][0].shape[-1])
        rate = 1 / result["meta"]["hop_s"]
        what = (
            f"frame sequences of size {'x'.join(map(str, shape))}, "
            f"{int(result['lengths'].sum())} frames in all at {rate:g} frames/s"
        )
    else:
        what = f"embeddings of size {'x'.join(map(str, result['embeddings'].shape[1:]))}"
    return f"{len(result['ids'])} {what} ({details}) -> {output}"


def main(argv=None):
    """Runs the command line; returns the :func:`embed_files` result."""
    args = build_parser().parse_args(argv)
    if Path(args.output).suffix not in (".pt", ".npy"):
        raise SystemExit(f"--output must end in .pt or .npy, got {args.output}")
    if args.level == "frame" and Path(args.output).suffix != ".pt":
        raise SystemExit(f"--level frame writes one sequence per file to a .pt; got {args.output}")
    embedder = embedder_from_args(args)
    embedder.resolve_layer(args.layer, args.level)  # a bad --layer fails before reading the input
    rows, num_left_out = check_audio_list(args.input, args.data_root, args.on_bad_audio)
    if not rows:
        raise ValueError(f"No usable audio in {args.input}: {num_left_out} files left out")
    result = embed_files(
        embedder,
        [row["wav"] for row in rows],
        ids=[row["ID"] for row in rows],
        durations=[row["duration"] for row in rows],
        layer=args.layer,
        pooling=args.pooling,
        batch_seconds=args.batch_seconds,
        window_s=args.window_s,
        on_bad_audio=args.on_bad_audio,
        level=args.level,
    )
    save_embeddings(
        result["ids"], result["embeddings"], args.output, result["meta"], result["paths"]
    )
    print(summary_line(result, args.output, num_left_out, args.on_bad_audio == "skip"))
    return result


if __name__ == "__main__":
    log_to_console()
    report_user_errors(main)()
