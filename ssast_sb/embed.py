"""Clip embeddings of a folder or manifest of audio files with a trained SSAST model.

::

    python -m ssast_sb.embed --model results/esc50/inference --input clips/ --output emb.pt
    python -m ssast_sb.embed --model DIR --input train.csv --output emb.npy --layer 6

The model is an inference folder (see :mod:`ssast_sb.inference`). Clips are
sorted by duration and batched so that each batch holds at most
``batch_seconds`` of model input. A clip longer than the model's input
(``target_frames`` of its frontend) is cut into windows of the model's length
whose frames line up with the clip's own frames; the last window is padded by
the frontend as a short clip is in training, and the clip's embedding is the
mean of its window embeddings.

The output holds ``{"ids": [...], "embeddings": (N, D)}`` in input order: a
``.pt`` file, or a ``.npy`` array plus the IDs in ``<name>.ids.txt`` next to it.
A missing, empty or undecodable file stops the run with an ``AudioError``
naming it; with ``--on-bad-audio skip`` such files are left out, listed in a
warning and counted in the last line.

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

from ssast_sb.data.audio import AudioError, audio_info, load_audio
from ssast_sb.data.generic import prepare_generic
from ssast_sb.data.manifest import (
    BAD_AUDIO_POLICIES,
    REQUIRED_COLUMNS,
    read_manifest,
    validate_audio_rows,
)
from ssast_sb.encoder import SSASTEncoder, pool_tokens
from ssast_sb.fileio import atomic_open, save_atomic
from ssast_sb.frontend import SAMPLE_RATE
from ssast_sb.inference import SSASTAudioClassifier, window_bounds

logger = logging.getLogger(__name__)

PROG = "python -m ssast_sb.embed"


def load_classifier(model_dir, device="cpu", savedir=None):
    """Loads an inference folder as an :class:`~ssast_sb.inference.SSASTAudioClassifier`.

    Arguments
    ---------
    model_dir : str or pathlib.Path
        The folder written by :func:`ssast_sb.inference.export_inference_folder`.
    device : str
        ``cpu`` or ``cuda[:N]``.
    savedir : str, optional
        Where SpeechBrain links the files; None loads them in place.

    Returns
    -------
    SSASTAudioClassifier
    """
    return SSASTAudioClassifier.from_hparams(
        source=str(Path(model_dir).absolute()), savedir=savedir, run_opts={"device": device}
    )


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
            rows, summary = validate_audio_rows(csv.DictReader(stream), on_bad_audio)
        return rows, summary["total"] - summary["kept"]
    with tempfile.TemporaryDirectory() as folder:
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


def duration_batches(durations, window_s, batch_seconds):
    """Groups clips, shortest first, into batches of at most ``batch_seconds`` of model input.

    A clip costs ``windows x window_s`` seconds, since every window is padded
    to the model's length; a clip costlier than ``batch_seconds`` gets a batch
    of its own. (SpeechBrain's ``DynamicBatchSampler``, which the fine-tuning
    loaders use, buckets a dataset by its own length; here the cost of a clip
    is its number of model windows and all of a clip's windows must share a
    batch, which it does not express.)

    Arguments
    ---------
    durations : sequence of float
        Clip durations in seconds.
    window_s : float
        Model input (window) length in seconds.
    batch_seconds : float
        Budget per batch.

    Returns
    -------
    list of list of int
        Positions of the clips in each batch.

    Example
    -------
    >>> duration_batches([3.0, 0.5, 1.0, 0.2], window_s=1.0, batch_seconds=2.0)
    [[3, 1], [2], [0]]
    """
    batches, current, total = [], [], 0.0
    for position in sorted(range(len(durations)), key=lambda i: durations[i]):
        cost = window_s * max(1, -(-round(durations[position] * 100) // round(window_s * 100)))
        if current and total + cost > batch_seconds:
            batches.append(current)
            current, total = [], 0.0
        current.append(position)
        total += cost
    if current:
        batches.append(current)
    return batches


def embed_windows(classifier, wavs, wav_lens, layer=None, pooling="mean"):
    """One embedding per waveform, each at most the model's length.

    Arguments
    ---------
    classifier : SSASTAudioClassifier
        The loaded model.
    wavs : torch.Tensor
        ``(B, N)`` 16 kHz waveforms, zero-padded.
    wav_lens : torch.Tensor
        ``(B,)`` relative lengths.
    layer : int or str, optional
        None: the model's own embedding (``embedding_model``, what its head
        sees); ``last``: the encoder output after the final LayerNorm; an int:
        the output of that block (0-based, negative from the end, before the
        final LayerNorm).
    pooling : str
        ``mean`` (patch tokens) or ``cls`` (class tokens), when ``layer`` is set.

    Returns
    -------
    torch.Tensor
        ``(B, D)`` on the CPU.
    """
    if layer is None:
        return classifier.encode_batch(wavs, wav_lens).squeeze(1).cpu()
    tokens, layers = classifier.extract_features(wavs, wav_lens, return_layers=True)
    chosen = tokens if layer == "last" else layers[int(layer)]
    return pool_tokens(chosen, pooling, SSASTEncoder.num_class_tokens).cpu()


def embed_clips(classifier, wavs, window_frames, layer=None, pooling="mean"):
    """Clip embeddings as the mean of their windows' embeddings, all windows in one batch.

    Arguments
    ---------
    classifier : SSASTAudioClassifier
        The loaded model.
    wavs : list of torch.Tensor
        ``(N_i,)`` 16 kHz clips.
    window_frames : int
        Frames per window (:func:`ssast_sb.inference.window_bounds`).
    layer : int or str, optional
        See :func:`embed_windows`.
    pooling : str
        See :func:`embed_windows`.

    Returns
    -------
    embeddings : torch.Tensor
        ``(len(wavs), D)`` on the CPU.
    num_windows : torch.Tensor
        ``(len(wavs),)`` windows averaged per clip.
    """
    chunks, owners = [], []
    for slot, wav in enumerate(wavs):
        bounds = window_bounds(wav.numel(), window_frames)
        chunks.extend(wav[start:end] for start, end in bounds)
        owners.extend([slot] * len(bounds))
    batch = torch.nn.utils.rnn.pad_sequence(chunks, batch_first=True)
    wav_lens = torch.tensor([chunk.numel() / batch.shape[1] for chunk in chunks])
    window_embeddings = embed_windows(classifier, batch, wav_lens, layer, pooling)
    owners = torch.tensor(owners)
    sums = window_embeddings.new_zeros(len(wavs), window_embeddings.shape[1])
    sums.index_add_(0, owners, window_embeddings)
    num_windows = torch.bincount(owners, minlength=len(wavs))
    return sums / num_windows.unsqueeze(1), num_windows


def _window_frames(classifier, window_s):
    """Frames per window: the model's input, or ``window_s`` when given (at most that)."""
    model_frames = classifier.mods.compute_features.target_frames
    window_frames = model_frames if window_s is None else round(window_s * 100)
    if not 0 < window_frames <= model_frames:
        raise ValueError(
            f"window_s={window_s} must be positive and at most the model's input "
            f"({model_frames / 100} s = {model_frames} frames)"
        )
    return window_frames


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


def _measure_durations(paths, on_bad_audio):
    """Durations from the headers, and ``{position: problem}`` of the files left out."""
    durations, left_out = [], {}
    for position, path in enumerate(paths):
        info, problem = _try_audio(audio_info, path, on_bad_audio)
        durations.append(0.0 if info is None else info.duration_s)
        if problem is not None:
            left_out[position] = problem
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
    classifier,
    paths,
    ids=None,
    durations=None,
    layer=None,
    pooling="mean",
    batch_seconds=60.0,
    window_s=None,
    progress=True,
    on_bad_audio="error",
):
    """Embeds audio files, windowing those longer than the model's input.

    Arguments
    ---------
    classifier : SSASTAudioClassifier
        The loaded model (:func:`load_classifier`).
    paths : sequence of str
        Audio files (any rate; resampled to 16 kHz, mixed to mono).
    ids : sequence of str, optional
        Their IDs (default: the paths).
    durations : sequence of float, optional
        Their durations in seconds, for batching (default: read from the headers).
    layer : int or str, optional
        See :func:`embed_windows`.
    pooling : str
        See :func:`embed_windows`.
    batch_seconds : float
        Model input per batch, in seconds.
    window_s : float, optional
        Window length (default and maximum: the model's input length).
    progress : bool
        Show a tqdm progress bar.
    on_bad_audio : {"error", "skip"}
        ``error`` raises the ``AudioError`` (naming the file) of a missing, empty
        or undecodable file; ``skip`` leaves such files out, listed in one warning.

    Returns
    -------
    dict
        ``ids`` (list), ``embeddings`` (``(N, D)`` tensor, input order) and
        ``num_windows`` (``(N,)`` windows averaged per clip) of the embedded
        files, and ``left_out``: ``(id, problem)`` of the files left out.
    """
    if on_bad_audio not in BAD_AUDIO_POLICIES:
        raise ValueError(f"on_bad_audio must be one of {BAD_AUDIO_POLICIES}, got {on_bad_audio!r}")
    paths = [str(path) for path in paths]
    ids = list(paths if ids is None else ids)
    window_frames = _window_frames(classifier, window_s)
    left_out = {}
    if durations is None:
        durations, left_out = _measure_durations(paths, on_bad_audio)
    embeddings = [None] * len(paths)
    num_windows = torch.zeros(len(paths), dtype=torch.long)
    batches = duration_batches(durations, window_frames / 100, batch_seconds)
    with tqdm(total=len(paths), desc="Embedding", unit="clip", disable=not progress) as bar:
        for batch in batches:
            wavs = {}
            for position in (position for position in batch if position not in left_out):
                wav, problem = _try_audio(_load_16k, paths[position], on_bad_audio)
                if problem is None:
                    wavs[position] = wav
                else:
                    left_out[position] = problem
            if wavs:
                means, counts = embed_clips(
                    classifier, list(wavs.values()), window_frames, layer, pooling
                )
                for slot, position in enumerate(wavs):
                    embeddings[position], num_windows[position] = means[slot], counts[slot]
            bar.update(len(batch))
    _warn_left_out([left_out[position] for position in sorted(left_out)], len(paths))
    kept = [position for position in range(len(paths)) if position not in left_out]
    if not kept:
        raise ValueError(
            f"No usable audio to embed: all {len(paths)} files left out" if paths else "No files"
        )
    return {
        "ids": [ids[position] for position in kept],
        "embeddings": torch.stack([embeddings[position] for position in kept]),
        "num_windows": num_windows[kept],
        "left_out": [(ids[position], left_out[position]) for position in sorted(left_out)],
    }


def ids_sidecar(path):
    """The IDs file written next to a ``.npy`` output.

    Example
    -------
    >>> ids_sidecar("out/emb.npy").as_posix()
    'out/emb.ids.txt'
    """
    return Path(path).with_suffix(".ids.txt")


def save_embeddings(ids, embeddings, path):
    """Writes ``{"ids", "embeddings"}`` to ``.pt``, or ``.npy`` plus ``<name>.ids.txt``, atomically.

    Arguments
    ---------
    ids : list of str
        One per row.
    embeddings : torch.Tensor
        ``(N, D)``.
    path : str or pathlib.Path
        Ends in ``.pt`` or ``.npy``.

    Example
    -------
    >>> path = Path(tempfile.mkdtemp()) / "emb.npy"
    >>> save_embeddings(["a", "b"], torch.eye(2), path)
    >>> load_embeddings(path)
    (['a', 'b'], tensor([[1., 0.],
            [0., 1.]]))
    """
    path = Path(path)
    ids = [str(utt_id) for utt_id in ids]
    if len(ids) != len(embeddings):
        raise ValueError(f"{len(ids)} IDs for {len(embeddings)} embeddings")
    if path.suffix == ".pt":
        save_atomic({"ids": ids, "embeddings": embeddings.detach().cpu()}, path)
        return
    if path.suffix != ".npy":
        raise ValueError(f"Output {path} must end in .pt or .npy")
    if any("\n" in utt_id for utt_id in ids):
        raise ValueError("IDs with line breaks cannot go to an .ids.txt file; use .pt")
    with atomic_open(ids_sidecar(path)) as stream:
        stream.write("".join(f"{utt_id}\n" for utt_id in ids))
    with atomic_open(path, "wb") as stream:
        np.save(stream, embeddings.detach().cpu().numpy())


def load_embeddings(path):
    """Reads what :func:`save_embeddings` wrote.

    Returns
    -------
    ids : list of str
    embeddings : torch.Tensor
    """
    path = Path(path)
    if path.suffix == ".pt":
        data = torch.load(path, map_location="cpu", weights_only=True)
        return data["ids"], data["embeddings"]
    ids = ids_sidecar(path).read_text(encoding="utf-8").splitlines()
    return ids, torch.from_numpy(np.load(path))


def parse_layer(value):
    """``--layer`` values: ``last`` or a block index.

    Example
    -------
    >>> parse_layer("last"), parse_layer("-2")
    ('last', -2)
    """
    return value if value == "last" else int(value)


def build_parser():
    """Command-line options of ``python -m ssast_sb.embed``."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="inference folder")
    parser.add_argument("--input", required=True, help="folder, manifest CSV or JSON of audio")
    parser.add_argument("--output", required=True, help="file.pt or file.npy")
    parser.add_argument(
        "--layer",
        type=parse_layer,
        default=None,
        help="block index (0-based) or 'last' (final LayerNorm output); "
        "default: the model's own embedding",
    )
    parser.add_argument("--pooling", choices=("mean", "cls"), default="mean")
    parser.add_argument("--batch-seconds", type=float, default=60.0)
    parser.add_argument("--window-s", type=float, default=None, help="default: model length")
    parser.add_argument("--data-root", default=None, help="root of relative paths in a list")
    parser.add_argument(
        "--on-bad-audio",
        choices=BAD_AUDIO_POLICIES,
        default="error",
        help="a missing, empty or undecodable file: stop with an error naming it, or skip it "
        "(listed in a warning, counted in the last line)",
    )
    parser.add_argument("--device", default="cpu")
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
    """
    windowed = int((result["num_windows"] > 1).sum())
    details = f"{windowed} clips windowed"
    if count_left_out:
        left_out = num_left_out + len(result["left_out"])
        details += f", {left_out} files with unusable audio left out"
    return (
        f"{len(result['ids'])} embeddings of size {result['embeddings'].shape[1]} "
        f"({details}) -> {output}"
    )


def main(argv=None):
    """Runs the command line; returns the :func:`embed_files` result."""
    args = build_parser().parse_args(argv)
    if Path(args.output).suffix not in (".pt", ".npy"):
        raise SystemExit(f"--output must end in .pt or .npy, got {args.output}")
    classifier = load_classifier(args.model, args.device)
    rows, num_left_out = check_audio_list(args.input, args.data_root, args.on_bad_audio)
    if not rows:
        raise ValueError(f"No usable audio in {args.input}: {num_left_out} files left out")
    result = embed_files(
        classifier,
        [row["wav"] for row in rows],
        ids=[row["ID"] for row in rows],
        durations=[row["duration"] for row in rows],
        layer=args.layer,
        pooling=args.pooling,
        batch_seconds=args.batch_seconds,
        window_s=args.window_s,
        on_bad_audio=args.on_bad_audio,
    )
    save_embeddings(result["ids"], result["embeddings"], args.output)
    print(summary_line(result, args.output, num_left_out, args.on_bad_audio == "skip"))
    return result


if __name__ == "__main__":
    main()
