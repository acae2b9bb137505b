"""Speaker verification with SSAST embeddings: cosine scores, AS-norm, EER and minDCF.

::

    python -m ssast_sb.verify --model results/voxceleb/inference \\
        --trials veri_test2.txt --data /data/voxceleb1/wav --cohort train.csv
    python -m ssast_sb.verify --model SSAST-Base-Frame-400.pth --layer all \\
        --trials veri_test2.txt --data /data/voxceleb1/wav

``--model`` is anything ``python -m ssast_sb.embed`` reads, through the same
loader (:func:`ssast_sb.embed.load_embedder`): an inference folder, or a
self-supervised pretraining checkpoint used frozen, so that a pretrained model
is evaluated for verification before any fine-tuning (its grid, statistics and
input handling as in ``ssast_sb.embed``: each clip embedded from its own frames,
``--pad-to-input`` for the original padding). ``--layer all`` scores every
block's embeddings from one pass and prints one line per block, then the block
with the lowest EER.

The trial list has VoxCeleb's format, one trial per line::

    1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav

(``1`` same speaker, ``0`` different), with paths relative to ``--data``. A line
with a tab is split on tabs, so that paths may hold spaces; any other line is
split on whitespace. Every file is embedded once
(:func:`ssast_sb.embed.embed_files`, long files windowed; ``--layer`` and
``--pooling`` as in ``python -m ssast_sb.embed``), each trial is scored by the
cosine of its two embeddings and, with a cohort, normalised by adaptive s-norm:
each side's score is standardised by the mean and standard deviation of its
``cohort_size`` closest cohort scores, and the two are averaged (Matejka et al.,
2017; SpeechBrain's VoxCeleb recipe). EER and minDCF are those of
``speechbrain.utils.metric_stats`` (the same thresholds: every score and the
midpoints between consecutive ones), computed by sorting the scores
(:func:`error_rates`) instead of comparing every threshold with every score,
which needs memory quadratic in the trials (27 GB for 45k trials). minDCF is
reported normalised, divided by the cost of the better trivial system,
``min(c_miss * p_target, c_fa * (1 - p_target))``, so that rejecting every
trial scores 1 (the raw value is kept as ``minDCF_raw``). ``--scores`` writes
every trial's score. With ``--on-bad-audio skip``, a missing, empty or
undecodable file is left out (listed in a warning) and the trials that involve
it are dropped and counted.

Authors
 * ssast-sb contributors
"""

import argparse
import logging
from pathlib import Path

import torch

from ssast_sb.console import log_to_console
from ssast_sb.data.manifest import BAD_AUDIO_POLICIES
from ssast_sb.embed import (
    add_model_options,
    as_embedder,
    embed_files,
    embedder_from_args,
    list_audio,
)
from ssast_sb.errors import report_user_errors
from ssast_sb.fileio import atomic_open

logger = logging.getLogger(__name__)

PROG = "python -m ssast_sb.verify"


def split_trial_line(line):
    """The fields of a trial line: split on tabs when it has one, else on whitespace.

    Arguments
    ---------
    line : str
        One line of a trial list.

    Returns
    -------
    list of str

    Example
    -------
    >>> split_trial_line("1\\tspeaker a/1.wav\\tspeaker b/2.wav\\n")
    ['1', 'speaker a/1.wav', 'speaker b/2.wav']
    >>> split_trial_line("0 a/1.wav  b/1.wav\\n")
    ['0', 'a/1.wav', 'b/1.wav']
    """
    if "\t" in line:
        return line.rstrip("\r\n").split("\t")
    return line.split()


def read_trials(path):
    """Reads a VoxCeleb trial list.

    Arguments
    ---------
    path : str or pathlib.Path
        Lines ``<0|1> <enrol path> <test path>``, separated by tabs (paths may
        then hold spaces) or by whitespace; blank lines are skipped, a UTF-8
        byte-order mark is allowed.

    Returns
    -------
    list of tuple
        ``(label, enrol, test)`` with ``label`` an int.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "trials.txt")
    >>> _ = open(path, "w").write("1 a/1.wav a/2.wav\\n0\\ta/1.wav\\tb b/1.wav\\n")
    >>> read_trials(path)
    [(1, 'a/1.wav', 'a/2.wav'), (0, 'a/1.wav', 'b b/1.wav')]
    """
    trials = []
    with open(path, encoding="utf-8-sig") as stream:
        for line_number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            fields = split_trial_line(line)
            if len(fields) != 3 or fields[0] not in ("0", "1") or "" in fields:
                raise ValueError(
                    f"{path}, line {line_number}: expected '<0|1> <enrol> <test>', got {line!r} "
                    "(fields are split on tabs when the line has one, else on whitespace)"
                )
            trials.append((int(fields[0]), fields[1], fields[2]))
    if not trials:
        raise ValueError(f"{path} lists no trials")
    return trials


def write_scores(trials, scores, path):
    """Writes one tab-separated line ``label, enrol, test, score`` per trial, atomically.

    Arguments
    ---------
    trials : list of tuple
        ``(label, enrol, test)``.
    scores : torch.Tensor
        ``(T,)`` their scores.
    path : str or pathlib.Path
        The output file.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "scores.txt")
    >>> write_scores([(1, "a b/1.wav", "a/2.wav")], torch.tensor([0.25]), path)
    >>> open(path).read()
    '1\\ta b/1.wav\\ta/2.wav\\t0.250000\\n'
    """
    if len(trials) != len(scores):
        raise ValueError(f"{len(trials)} trials for {len(scores)} scores")
    with atomic_open(path) as stream:
        for (label, enrol, test), score in zip(trials, scores.tolist()):
            stream.write(f"{label}\t{enrol}\t{test}\t{score:.6f}\n")


def cosine_scores(enrol, test):
    """Cosine similarity of paired rows.

    Example
    -------
    >>> enrol, test = torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    >>> cosine_scores(enrol, test)
    tensor([1.0000, 0.7071])
    """
    return torch.nn.functional.cosine_similarity(enrol, test, dim=-1)


def cohort_statistics(embeddings, cohort, cohort_size):
    """Mean and standard deviation of each embedding's ``cohort_size`` best cohort scores.

    Arguments
    ---------
    embeddings : torch.Tensor
        ``(N, D)``.
    cohort : torch.Tensor
        ``(K, D)`` impostor embeddings.
    cohort_size : int
        Top-k scores kept per embedding (all when ``K`` is smaller).

    Returns
    -------
    mean, std : torch.Tensor
        ``(N,)`` each.

    Example
    -------
    >>> mean, std = cohort_statistics(torch.eye(2), torch.tensor([[1.0, 0], [0, 1.0], [1, 1.0]]), 2)
    >>> mean
    tensor([0.8536, 0.8536])
    """
    normed = torch.nn.functional.normalize(embeddings, dim=-1)
    cohort = torch.nn.functional.normalize(cohort, dim=-1)
    scores = normed @ cohort.T
    top = scores.topk(min(cohort_size, cohort.shape[0]), dim=1).values
    return top.mean(dim=1), top.std(dim=1)


def adaptive_snorm(scores, enrol_stats, test_stats):
    """Adaptive s-norm: the average of the score standardised by each side's cohort statistics.

    Arguments
    ---------
    scores : torch.Tensor
        ``(T,)`` raw trial scores.
    enrol_stats, test_stats : tuple of torch.Tensor
        ``(mean, std)`` of each trial's enrolment and test side, ``(T,)`` each.

    Returns
    -------
    torch.Tensor

    Example
    -------
    >>> adaptive_snorm(torch.tensor([0.5]), (torch.tensor([0.1]), torch.tensor([0.2])),
    ...                (torch.tensor([0.3]), torch.tensor([0.1])))
    tensor([2.])
    """
    (enrol_mean, enrol_std), (test_mean, test_std) = enrol_stats, test_stats
    return 0.5 * ((scores - enrol_mean) / enrol_std + (scores - test_mean) / test_std)


def error_rates(positive, negative):
    """Miss and false-alarm rates at every threshold that SpeechBrain's EER and minDCF try.

    The thresholds are the distinct scores and the midpoints between consecutive
    ones; a trial is accepted when its score exceeds the threshold. The counts
    come from sorted scores (``searchsorted``), in ``O(T log T)`` time and
    ``O(T)`` memory.

    Arguments
    ---------
    positive, negative : torch.Tensor
        Scores of the target and non-target trials.

    Returns
    -------
    thresholds, p_miss, p_fa : torch.Tensor
        Increasing thresholds; at each, the fraction of targets rejected
        (``score <= threshold``) and of non-targets accepted.

    Example
    -------
    >>> thresholds, p_miss, p_fa = error_rates(torch.tensor([0.8, 0.9]), torch.tensor([0.1, 0.85]))
    >>> thresholds
    tensor([0.1000, 0.4500, 0.8000, 0.8250, 0.8500, 0.8750, 0.9000])
    >>> p_miss, p_fa
    (tensor([0.0000, 0.0000, 0.5000, 0.5000, 0.5000, 0.5000, 1.0000]), \
tensor([0.5000, 0.5000, 0.5000, 0.5000, 0.0000, 0.0000, 0.0000]))
    """
    scores = torch.unique(torch.cat([positive, negative]))  # sorted
    thresholds = torch.sort(torch.cat([scores, (scores[:-1] + scores[1:]) / 2])).values
    rejected = torch.searchsorted(positive.sort().values, thresholds, right=True)
    accepted = len(negative) - torch.searchsorted(negative.sort().values, thresholds, right=True)
    return thresholds, rejected.float() / len(positive), accepted.float() / len(negative)


def verification_metrics(scores, labels, p_target=0.01, c_miss=1.0, c_fa=1.0):
    """EER and minDCF of trial scores.

    minDCF is normalised: the minimum over thresholds of ``c_miss * p_miss *
    p_target + c_fa * p_fa * (1 - p_target)``, divided by ``min(c_miss *
    p_target, c_fa * (1 - p_target))``, the cost of accepting or rejecting every
    trial, whichever is lower. 1 is no better than that trivial system.

    Arguments
    ---------
    scores : torch.Tensor
        ``(T,)``.
    labels : torch.Tensor
        ``(T,)`` 1 for target (same-speaker) trials, 0 for non-target.
    p_target : float
        Prior of a target trial, in (0, 1).
    c_miss, c_fa : float
        Costs of a miss and of a false alarm (positive).

    Returns
    -------
    dict
        ``EER`` (fraction), ``minDCF`` (normalised), ``minDCF_raw``, their
        thresholds, and ``p_target``, ``c_miss``, ``c_fa``.

    Example
    -------
    >>> scores, labels = torch.tensor([0.9, 0.8, 0.1, 0.85]), torch.tensor([1, 1, 0, 0])
    >>> metrics = verification_metrics(scores, labels)
    >>> print(f"EER {metrics['EER']:.2f}, minDCF {metrics['minDCF']:.3f} "
    ...       f"(raw {metrics['minDCF_raw']:.3f})")
    EER 0.50, minDCF 0.500 (raw 0.005)
    """
    if not 0 < p_target < 1:
        raise ValueError(f"p_target must lie in (0, 1), got {p_target}")
    if not (c_miss > 0 and c_fa > 0):
        raise ValueError(f"c_miss and c_fa must be positive, got {c_miss} and {c_fa}")
    labels = torch.as_tensor(labels).bool()
    positive, negative = scores[labels], scores[~labels]
    if len(positive) == 0 or len(negative) == 0:
        raise ValueError("EER needs both target and non-target trials")
    thresholds, p_miss, p_fa = error_rates(positive, negative)
    at_eer = int((p_fa - p_miss).abs().argmin())  # the first, as SpeechBrain's EER
    eer, eer_threshold = (float(p_fa[at_eer]) + float(p_miss[at_eer])) / 2, thresholds[at_eer]
    dcf, at_dcf = torch.min(c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target), dim=0)
    dcf_threshold = thresholds[at_dcf]
    trivial = min(c_miss * p_target, c_fa * (1 - p_target))
    return {
        "EER": float(eer),
        "EER_threshold": float(eer_threshold),
        "minDCF": float(dcf) / trivial,
        "minDCF_raw": float(dcf),
        "minDCF_threshold": float(dcf_threshold),
        "p_target": p_target,
        "c_miss": c_miss,
        "c_fa": c_fa,
    }


def describe_min_dcf(metrics):
    """minDCF with its parameters, as printed by ``python -m ssast_sb.verify``.

    Example
    -------
    >>> describe_min_dcf({"minDCF": 0.63, "p_target": 0.01, "c_miss": 1.0, "c_fa": 1.0})
    'minDCF(p_target=0.01, c_miss=1, c_fa=1, normalised) 0.6300'
    """
    return (
        f"minDCF(p_target={metrics['p_target']:g}, c_miss={metrics['c_miss']:g}, "
        f"c_fa={metrics['c_fa']:g}, normalised) {metrics['minDCF']:.4f}"
    )


def drop_trials(trials, left_out):
    """The trials whose two files are both usable.

    Arguments
    ---------
    trials : list of tuple
        ``(label, enrol, test)``.
    left_out : set of str
        Paths left out.

    Returns
    -------
    list of tuple

    Example
    -------
    >>> drop_trials([(1, "a", "b"), (0, "a", "c"), (0, "c", "b")], {"c"})
    [(1, 'a', 'b')]
    """
    return [trial for trial in trials if not left_out.intersection(trial[1:])]


def score_trials(
    embeddings,
    enrol,
    test,
    labels,
    cohort_embeddings=None,
    cohort_size=200,
    p_target=0.01,
    c_miss=1.0,
    c_fa=1.0,
):
    """Cosine scores of trials, AS-normalised against a cohort when one is given, and their metrics.

    Arguments
    ---------
    embeddings : torch.Tensor
        ``(N, D)`` embeddings of the trial files.
    enrol, test : torch.Tensor
        ``(T,)`` rows of each trial's two files.
    labels : torch.Tensor
        ``(T,)`` 1 for target trials.
    cohort_embeddings : torch.Tensor, optional
        ``(K, D)`` for adaptive s-norm.
    cohort_size : int
        Closest cohort scores kept per side.
    p_target, c_miss, c_fa : float
        minDCF parameters (see :func:`verification_metrics`).

    Returns
    -------
    dict
        As :func:`verification_metrics`, plus ``scores`` ``(T,)``.

    Example
    -------
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> result = score_trials(embeddings, torch.tensor([0, 0]), torch.tensor([1, 2]),
    ...                       torch.tensor([1, 0]))
    >>> result["EER"], result["scores"]
    (0.0, tensor([0.9939, 0.0000]))
    """
    scores = cosine_scores(embeddings[enrol], embeddings[test])
    if cohort_embeddings is not None:
        mean, std = cohort_statistics(embeddings, cohort_embeddings, cohort_size)
        scores = adaptive_snorm(scores, (mean[enrol], std[enrol]), (mean[test], std[test]))
    metrics = verification_metrics(scores, labels, p_target=p_target, c_miss=c_miss, c_fa=c_fa)
    return dict(metrics, scores=scores)


def verify(
    model,
    trials,
    data_root,
    cohort=None,
    cohort_size=200,
    batch_seconds=60.0,
    progress=True,
    layer=None,
    pooling="mean",
    on_bad_audio="error",
    p_target=0.01,
    c_miss=1.0,
    c_fa=1.0,
):
    """Scores a trial list and returns EER and minDCF.

    Arguments
    ---------
    model : SSASTEncoderInterface or SSASTAudioClassifier
        The loaded model (:func:`ssast_sb.embed.load_embedder`: an inference
        folder or a pretraining checkpoint).
    trials : str or list of tuple
        A trial-list file or ``(label, enrol, test)`` triples.
    data_root : str or pathlib.Path
        Root of the trial paths.
    cohort : str, optional
        Folder or manifest of cohort (impostor) audio for adaptive s-norm.
    cohort_size : int
        Closest cohort scores kept per side.
    batch_seconds : float
        Model input per batch (see :func:`ssast_sb.embed.embed_files`).
    progress : bool
        Progress bars.
    layer : int or str, optional
        Embedding layer: a block index, ``last``, ``all`` (every block scored
        apart), or None (``last``, or an inference folder's own embedding); see
        :class:`ssast_sb.features.SSASTEncoderInterface`.
    pooling : str
        ``mean`` or ``cls``.
    on_bad_audio : {"error", "skip"}
        A missing, empty or undecodable file raises an ``AudioError`` naming
        it, or (``skip``) is left out with its trials, listed in warnings.
    p_target, c_miss, c_fa : float
        minDCF parameters (see :func:`verification_metrics`).

    Returns
    -------
    dict
        ``num_trials`` (scored), ``num_dropped_trials``, ``left_out`` (trial
        files left out), ``trials`` (the scored triples), ``labels`` (in their
        order) and ``meta`` (the embeddings', see
        :func:`ssast_sb.embed.embed_files`); for one layer also what
        :func:`score_trials` returns (metrics and ``scores``), for ``all`` a list
        ``layers`` of those, one per block, each with its ``layer``.
    """
    embedder = as_embedder(model)
    if not isinstance(trials, list):
        trials = read_trials(trials)
    files = sorted({path for _, enrol, test in trials for path in (enrol, test)})
    options = dict(
        layer=layer,
        pooling=pooling,
        batch_seconds=batch_seconds,
        progress=progress,
        on_bad_audio=on_bad_audio,
    )
    embedded = embed_files(
        embedder, [Path(data_root) / path for path in files], ids=files, **options
    )
    left_out = {path for path, _ in embedded["left_out"]}
    kept = drop_trials(trials, left_out)
    if not kept:
        raise ValueError(f"No trials left: all {len(trials)} involve a file left out")
    if len(kept) < len(trials):
        logger.warning(
            "Dropped %d of %d trials that involve a file left out",
            len(trials) - len(kept),
            len(trials),
        )
    embeddings = embedded["embeddings"]
    position = {path: i for i, path in enumerate(embedded["ids"])}
    enrol = torch.tensor([position[enrol] for _, enrol, _ in kept])
    test = torch.tensor([position[test] for _, _, test in kept])
    labels = torch.tensor([label for label, _, _ in kept])
    cohort_embeddings = None
    if cohort is not None:
        rows = list_audio(cohort, on_bad_audio=on_bad_audio)
        cohort_embeddings = embed_files(
            embedder,
            [row["wav"] for row in rows],
            durations=[row["duration"] for row in rows],
            **options,
        )["embeddings"]
    result = dict(
        num_trials=len(kept),
        num_dropped_trials=len(trials) - len(kept),
        left_out=sorted(left_out),
        trials=kept,
        labels=labels,
        meta=embedded["meta"],
    )
    score = dict(cohort_size=cohort_size, p_target=p_target, c_miss=c_miss, c_fa=c_fa)
    if embeddings.dim() == 2:
        return dict(
            result, **score_trials(embeddings, enrol, test, labels, cohort_embeddings, **score)
        )
    result["layers"] = [
        dict(
            score_trials(
                embeddings[:, block],
                enrol,
                test,
                labels,
                None if cohort_embeddings is None else cohort_embeddings[:, block],
                **score,
            ),
            layer=block,
        )
        for block in range(embeddings.shape[1])
    ]
    return result


def summary_line(result, normalisation, count_left_out=False):
    """The line ``python -m ssast_sb.verify`` prints.

    Arguments
    ---------
    result : dict
        What :func:`verify` returned.
    normalisation : str
        How the scores were normalised.
    count_left_out : bool
        Add the dropped trials and the files left out (``--on-bad-audio skip``).

    Returns
    -------
    str

    Example
    -------
    >>> result = {"num_trials": 8, "EER": 0.25, "minDCF": 0.5, "p_target": 0.01,
    ...           "c_miss": 1.0, "c_fa": 1.0, "num_dropped_trials": 2, "left_out": ["x.wav"]}
    >>> summary_line(result, "no score normalisation", count_left_out=True)
    '8 trials (no score normalisation): EER 25.00%, minDCF(p_target=0.01, c_miss=1, c_fa=1, \
normalised) 0.5000; 2 trials dropped (1 files with unusable audio left out)'
    """
    line = (
        f"{result['num_trials']} trials ({normalisation}): EER {100 * result['EER']:.2f}%, "
        f"{describe_min_dcf(result)}"
    )
    if count_left_out:
        line += (
            f"; {result['num_dropped_trials']} trials dropped "
            f"({len(result['left_out'])} files with unusable audio left out)"
        )
    return line


def build_parser():
    """Command-line options of ``python -m ssast_sb.verify``."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    add_model_options(parser)
    parser.add_argument("--trials", required=True, help="VoxCeleb-style trial list")
    parser.add_argument("--data", required=True, help="root of the trial paths")
    parser.add_argument("--cohort", default=None, help="folder or manifest for AS-norm")
    parser.add_argument("--cohort-size", type=int, default=200)
    parser.add_argument(
        "--scores", default=None, help="write 'label enrol test score' per trial (tab-separated)"
    )
    parser.add_argument("--p-target", type=float, default=0.01, help="minDCF prior of a target")
    parser.add_argument("--c-miss", type=float, default=1.0, help="minDCF cost of a miss")
    parser.add_argument("--c-fa", type=float, default=1.0, help="minDCF cost of a false alarm")
    parser.add_argument(
        "--on-bad-audio",
        "--on_bad_audio",  # the recipes' spelling, which shared error messages use
        choices=BAD_AUDIO_POLICIES,
        default="error",
        help="a missing, empty or undecodable file: stop with an error naming it, or leave it "
        "and its trials out (listed in a warning, counted in the printed line)",
    )
    parser.add_argument("--batch-seconds", type=float, default=60.0)
    return parser


def main(argv=None):
    """Runs the command line, prints and returns the :func:`verify` result."""
    args = build_parser().parse_args(argv)
    if args.scores and args.layer == "all":
        raise SystemExit("--scores writes the scores of one layer: give --layer N or last, not all")
    result = verify(
        embedder_from_args(args),
        args.trials,
        args.data,
        cohort=args.cohort,
        cohort_size=args.cohort_size,
        batch_seconds=args.batch_seconds,
        layer=args.layer,
        pooling=args.pooling,
        on_bad_audio=args.on_bad_audio,
        p_target=args.p_target,
        c_miss=args.c_miss,
        c_fa=args.c_fa,
    )
    if args.scores:
        write_scores(result["trials"], result["scores"], args.scores)
    norm = f"AS-norm, top {args.cohort_size}" if args.cohort else "no score normalisation"
    skip = args.on_bad_audio == "skip"
    if "layers" not in result:
        print(summary_line(result, norm, skip))
        return result
    for metrics in result["layers"]:
        print(f"layer {metrics['layer']}: {summary_line(dict(result, **metrics), norm, skip)}")
    best = min(result["layers"], key=lambda metrics: metrics["EER"])
    print(f"lowest EER: layer {best['layer']}, {100 * best['EER']:.2f}%")
    return result


if __name__ == "__main__":
    log_to_console()
    report_user_errors(main)()
