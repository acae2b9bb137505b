"""What a corpus says about the model's input: fbank statistics and a clip length.

The original recipes hard-code each dataset's fbank mean and std (computed by
its ``get_norm_stats.py``) and its input length. For a corpus of your own,
:func:`training_statistics` computes the mean and std of the training clips'
fbank once and keeps them next to the manifests, and :func:`input_frames`
picks an input length from the clips' durations.

Authors
 * ssast-sb contributors
"""

import hashlib
import json
import logging
import math
import random
from pathlib import Path

from tqdm import tqdm

from ssast_sb.fileio import atomic_open
from ssast_sb.frontend import SAMPLE_RATE, kaldi_fbank
from ssast_sb.windows import clip_frames

from .audio import load_audio
from .manifest import read_manifest

logger = logging.getLogger(__name__)


def fbank_statistics(paths, max_clips=1000, seed=0, progress=True):
    """Mean and standard deviation of the fbank of audio files, over every frame and bin.

    The features are the frontend's (:func:`ssast_sb.frontend.kaldi_fbank` at 16 kHz),
    at each clip's own length: no padding enters the statistics. (The original's
    ``get_norm_stats.py`` averages per-batch means of padded inputs; a corpus of
    clips much shorter than the input would get the padding's statistics.)

    Arguments
    ---------
    paths : sequence of str
        Audio files.
    max_clips : int
        At most this many clips, drawn with ``seed``, are read.
    seed : int
        Seed of the draw.
    progress : bool
        Show a progress bar.

    Returns
    -------
    tuple
        ``(mean, std, clips read)``.

    Example
    -------
    >>> import os, tempfile, numpy as np, soundfile as sf
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(path, np.random.default_rng(0).normal(0, 0.1, 16000), 16000)
    >>> mean, std, count = fbank_statistics([path], progress=False)
    >>> count, std > 0
    (1, True)
    """
    paths = sorted(str(path) for path in paths)
    if len(paths) > max_clips:
        paths = sorted(random.Random(seed).sample(paths, max_clips))
    total = total_squares = count = 0.0
    for path in tqdm(paths, desc="fbank statistics", unit="clip", disable=not progress):
        features = kaldi_fbank(load_audio(path, SAMPLE_RATE)).double()
        total += float(features.sum())
        total_squares += float((features**2).sum())
        count += features.numel()
    if not count:
        raise ValueError("No clips to compute fbank statistics from")
    mean = total / count
    return mean, math.sqrt(max(total_squares / count - mean**2, 0.0)), len(paths)


def _file_digest(path):
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def training_statistics(train_manifest, save_path, max_clips=1000, seed=0):
    """The fbank mean and std of a training manifest, computed once and kept in ``save_path``.

    The JSON file records the manifest's SHA-1: when the manifest changes, the
    statistics are computed again.

    Arguments
    ---------
    train_manifest : str or pathlib.Path
        The training CSV.
    save_path : str or pathlib.Path
        Where the statistics are kept.
    max_clips, seed : int
        See :func:`fbank_statistics`.

    Returns
    -------
    dict
        ``mean``, ``std``, ``clips``, ``manifest_sha1``.
    """
    save_path, digest = Path(save_path), _file_digest(train_manifest)
    if save_path.is_file():
        kept = json.loads(save_path.read_text(encoding="utf-8"))
        if kept.get("manifest_sha1") == digest and kept.get("max_clips") == max_clips:
            return kept
    rows = read_manifest(train_manifest)
    mean, std, clips = fbank_statistics([row["wav"] for row in rows], max_clips, seed)
    stats = {
        "mean": round(mean, 6),
        "std": round(std, 6),
        "clips": clips,
        "max_clips": max_clips,
        "manifest_sha1": digest,
    }
    with atomic_open(save_path) as stream:
        json.dump(stats, stream, indent=1)
    return stats


def input_frames(durations, percentile=95.0, multiple=16, maximum=1024):
    """An input length that holds ``percentile`` % of the clips whole.

    Arguments
    ---------
    durations : sequence of float
        Clip durations in seconds.
    percentile : float
        Share of the clips that must fit.
    multiple : int
        The length is rounded up to a multiple of this (a 16-frame patch).
    maximum : int
        Upper bound (the released checkpoints were pretrained on 1024 frames).

    Returns
    -------
    tuple
        ``(frames, the duration at the percentile)``.

    Example
    -------
    >>> input_frames([1.0] * 19 + [30.0])
    (112, 1.0)
    >>> input_frames([30.0])
    (1024, 30.0)
    """
    if not durations:
        raise ValueError("No durations to choose an input length from")
    ordered = sorted(durations)  # nearest rank: the shortest duration that many clips fit in
    at = ordered[max(0, math.ceil(percentile / 100 * len(ordered)) - 1)]
    frames = math.ceil(clip_frames(round(at * SAMPLE_RATE)) / multiple) * multiple
    return min(max(frames, multiple), maximum), round(at, 3)
