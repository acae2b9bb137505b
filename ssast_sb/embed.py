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

Authors
 * ssast-sb contributors
"""

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ssast_sb.data.audio import audio_info, load_audio
from ssast_sb.data.generic import prepare_generic
from ssast_sb.data.manifest import REQUIRED_COLUMNS, read_manifest
from ssast_sb.encoder import SSASTEncoder, pool_tokens
from ssast_sb.fileio import atomic_open, save_atomic
from ssast_sb.frontend import FRAME_LENGTH, FRAME_SHIFT, SAMPLE_RATE
from ssast_sb.inference import SSASTAudioClassifier

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


def list_audio(source, data_root=None):
    """The ``ID``, ``duration`` and ``wav`` rows of a folder, CSV or JSON of audio files.

    A SpeechBrain manifest (``ID,duration,wav`` columns) is read as it is;
    anything else goes through :func:`ssast_sb.data.generic.prepare_generic`
    (folder scan, or a CSV/JSON whose paths lie under ``data_root``).

    Arguments
    ---------
    source : str or pathlib.Path
        A folder, a ``.csv`` or a ``.json`` file.
    data_root : str, optional
        Root of relative paths in a CSV/JSON list (default: its folder).

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
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        with open(source, newline="", encoding="utf-8") as stream:
            header = next(csv.reader(stream), [])
        if all(column in header for column in REQUIRED_COLUMNS):
            return read_manifest(source)
    with tempfile.TemporaryDirectory() as folder:
        prepare_generic(source, folder, "embed", data_root=data_root, force=True)
        return read_manifest(Path(folder) / "embed.csv")


def window_bounds(num_samples, window_frames):
    """Sample ranges of the windows of ``window_frames`` frames that cover a clip.

    Windows start every ``window_frames * 10 ms``, so that their fbank frames are
    exactly the clip's frames, without overlap or gap; the last one is shorter
    (the frontend pads its features).

    Arguments
    ---------
    num_samples : int
        Length of the clip at 16 kHz.
    window_frames : int
        Frames per window (at most the model's ``target_frames``).

    Returns
    -------
    list of tuple
        ``(start, end)`` sample indices; one window when the clip fits.

    Example
    -------
    >>> window_bounds(16000, 64)  # 98 frames -> 64 + 34
    [(0, 10480), (10240, 16000)]
    >>> window_bounds(8000, 64)
    [(0, 8000)]
    """
    num_frames = max(1, 1 + (num_samples - FRAME_LENGTH) // FRAME_SHIFT)
    count = -(-num_frames // window_frames)
    span = FRAME_LENGTH + (window_frames - 1) * FRAME_SHIFT
    hop = window_frames * FRAME_SHIFT
    return [(i * hop, min(i * hop + span, num_samples)) for i in range(count)]


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

    Returns
    -------
    dict
        ``ids`` (list), ``embeddings`` (``(N, D)`` tensor, input order) and
        ``num_windows`` (``(N,)`` windows averaged per clip).
    """
    paths = [str(path) for path in paths]
    ids = list(paths if ids is None else ids)
    if durations is None:
        durations = [audio_info(path).duration_s for path in paths]
    model_frames = classifier.mods.compute_features.target_frames
    window_frames = model_frames if window_s is None else round(window_s * 100)
    if not 0 < window_frames <= model_frames:
        raise ValueError(
            f"window_s={window_s} must be positive and at most the model's input "
            f"({model_frames / 100} s = {model_frames} frames)"
        )
    embeddings = [None] * len(paths)
    num_windows = torch.zeros(len(paths), dtype=torch.long)
    batches = duration_batches(durations, window_frames / 100, batch_seconds)
    with tqdm(total=len(paths), desc="Embedding", unit="clip", disable=not progress) as bar:
        for batch in batches:
            chunks, owners = [], []
            for slot, position in enumerate(batch):
                wav = load_audio(paths[position], SAMPLE_RATE)
                bounds = window_bounds(wav.numel(), window_frames)
                chunks.extend(wav[start:end] for start, end in bounds)
                owners.extend([slot] * len(bounds))
                num_windows[position] = len(bounds)
            wavs = torch.nn.utils.rnn.pad_sequence(chunks, batch_first=True)
            wav_lens = torch.tensor([chunk.numel() / wavs.shape[1] for chunk in chunks])
            window_embeddings = embed_windows(classifier, wavs, wav_lens, layer, pooling)
            owners = torch.tensor(owners)
            sums = window_embeddings.new_zeros(len(batch), window_embeddings.shape[1])
            sums.index_add_(0, owners, window_embeddings)
            means = sums / torch.bincount(owners, minlength=len(batch)).unsqueeze(1)
            for slot, position in enumerate(batch):
                embeddings[position] = means[slot]
            bar.update(len(batch))
    return {"ids": ids, "embeddings": torch.stack(embeddings), "num_windows": num_windows}


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
    parser.add_argument("--device", default="cpu")
    return parser


def main(argv=None):
    """Runs the command line; returns the :func:`embed_files` result."""
    args = build_parser().parse_args(argv)
    if Path(args.output).suffix not in (".pt", ".npy"):
        raise SystemExit(f"--output must end in .pt or .npy, got {args.output}")
    classifier = load_classifier(args.model, args.device)
    rows = list_audio(args.input, args.data_root)
    result = embed_files(
        classifier,
        [row["wav"] for row in rows],
        ids=[row["ID"] for row in rows],
        durations=[row["duration"] for row in rows],
        layer=args.layer,
        pooling=args.pooling,
        batch_seconds=args.batch_seconds,
        window_s=args.window_s,
    )
    save_embeddings(result["ids"], result["embeddings"], args.output)
    windowed = int((result["num_windows"] > 1).sum())
    print(
        f"{len(result['ids'])} embeddings of size {result['embeddings'].shape[1]} "
        f"({windowed} clips windowed) -> {args.output}"
    )
    return result


if __name__ == "__main__":
    main()
