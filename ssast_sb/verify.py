"""Speaker verification with SSAST embeddings: cosine scores, AS-norm, EER and minDCF.

::

    python -m ssast_sb.verify --model results/voxceleb/inference \\
        --trials veri_test2.txt --data /data/voxceleb1/wav --cohort train.csv

The trial list has VoxCeleb's format, one trial per line::

    1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav

(``1`` same speaker, ``0`` different), with paths relative to ``--data``. Every
file is embedded once (:func:`ssast_sb.embed.embed_files`, long files windowed),
each trial is scored by the cosine of its two embeddings and, with a cohort,
normalised by adaptive s-norm: each side's score is standardised by the mean
and standard deviation of its ``cohort_size`` closest cohort scores, and the two
are averaged (Matejka et al., 2017; SpeechBrain's VoxCeleb recipe). EER and
minDCF (p_target 0.01, c_miss = c_fa = 1) come from
``speechbrain.utils.metric_stats``.

Authors
 * ssast-sb contributors
"""

import argparse
from pathlib import Path

import torch
from speechbrain.utils.metric_stats import EER, minDCF

from ssast_sb.embed import embed_files, list_audio, load_classifier

PROG = "python -m ssast_sb.verify"


def read_trials(path):
    """Reads a VoxCeleb trial list.

    Arguments
    ---------
    path : str or pathlib.Path
        Lines ``<0|1> <enrol path> <test path>``; blank lines are skipped.

    Returns
    -------
    list of tuple
        ``(label, enrol, test)`` with ``label`` an int.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "trials.txt")
    >>> _ = open(path, "w").write("1 a/1.wav a/2.wav\\n0 a/1.wav b/1.wav\\n")
    >>> read_trials(path)
    [(1, 'a/1.wav', 'a/2.wav'), (0, 'a/1.wav', 'b/1.wav')]
    """
    trials = []
    with open(path, encoding="utf-8") as stream:
        for line_number, line in enumerate(stream, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3 or fields[0] not in ("0", "1"):
                raise ValueError(
                    f"{path}, line {line_number}: expected '<0|1> <enrol> <test>', got {line!r}"
                )
            trials.append((int(fields[0]), fields[1], fields[2]))
    if not trials:
        raise ValueError(f"{path} lists no trials")
    return trials


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


def verification_metrics(scores, labels):
    """EER and minDCF (p_target 0.01, c_miss = c_fa = 1) of trial scores.

    Arguments
    ---------
    scores : torch.Tensor
        ``(T,)``.
    labels : torch.Tensor
        ``(T,)`` 1 for target (same-speaker) trials, 0 for non-target.

    Returns
    -------
    dict
        ``EER`` and ``minDCF`` (fractions) and their thresholds.

    Example
    -------
    >>> scores, labels = torch.tensor([0.9, 0.8, 0.1, 0.85]), torch.tensor([1, 1, 0, 0])
    >>> metrics = verification_metrics(scores, labels)
    >>> print(f"EER {metrics['EER']:.2f}, minDCF {metrics['minDCF']:.3f}")
    EER 0.50, minDCF 0.005
    """
    labels = torch.as_tensor(labels).bool()
    positive, negative = scores[labels], scores[~labels]
    if len(positive) == 0 or len(negative) == 0:
        raise ValueError("EER needs both target and non-target trials")
    eer, eer_threshold = EER(positive, negative)
    dcf, dcf_threshold = minDCF(positive, negative, c_miss=1.0, c_fa=1.0, p_target=0.01)
    return {
        "EER": float(eer),
        "EER_threshold": float(eer_threshold),
        "minDCF": float(dcf),
        "minDCF_threshold": float(dcf_threshold),
    }


def verify(
    classifier,
    trials,
    data_root,
    cohort=None,
    cohort_size=200,
    batch_seconds=60.0,
    progress=True,
):
    """Scores a trial list and returns EER and minDCF.

    Arguments
    ---------
    classifier : SSASTAudioClassifier
        The loaded model (:func:`ssast_sb.embed.load_classifier`).
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

    Returns
    -------
    dict
        ``EER``, ``minDCF`` (fractions), their thresholds, ``num_trials``,
        ``scores`` and ``labels`` (tensors in trial order).
    """
    if not isinstance(trials, list):
        trials = read_trials(trials)
    files = sorted({path for _, enrol, test in trials for path in (enrol, test)})
    embedded = embed_files(
        classifier,
        [Path(data_root) / path for path in files],
        ids=files,
        batch_seconds=batch_seconds,
        progress=progress,
    )
    embeddings = embedded["embeddings"]
    position = {path: i for i, path in enumerate(files)}
    enrol = torch.tensor([position[enrol] for _, enrol, _ in trials])
    test = torch.tensor([position[test] for _, _, test in trials])
    labels = torch.tensor([label for label, _, _ in trials])
    scores = cosine_scores(embeddings[enrol], embeddings[test])
    if cohort is not None:
        rows = list_audio(cohort)
        cohort_embeddings = embed_files(
            classifier,
            [row["wav"] for row in rows],
            durations=[row["duration"] for row in rows],
            batch_seconds=batch_seconds,
            progress=progress,
        )["embeddings"]
        mean, std = cohort_statistics(embeddings, cohort_embeddings, cohort_size)
        scores = adaptive_snorm(scores, (mean[enrol], std[enrol]), (mean[test], std[test]))
    metrics = verification_metrics(scores, labels)
    return dict(metrics, num_trials=len(trials), scores=scores, labels=labels)


def build_parser():
    """Command-line options of ``python -m ssast_sb.verify``."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="inference folder")
    parser.add_argument("--trials", required=True, help="VoxCeleb-style trial list")
    parser.add_argument("--data", required=True, help="root of the trial paths")
    parser.add_argument("--cohort", default=None, help="folder or manifest for AS-norm")
    parser.add_argument("--cohort-size", type=int, default=200)
    parser.add_argument("--batch-seconds", type=float, default=60.0)
    parser.add_argument("--device", default="cpu")
    return parser


def main(argv=None):
    """Runs the command line, prints and returns the :func:`verify` metrics."""
    args = build_parser().parse_args(argv)
    result = verify(
        load_classifier(args.model, args.device),
        args.trials,
        args.data,
        cohort=args.cohort,
        cohort_size=args.cohort_size,
        batch_seconds=args.batch_seconds,
    )
    norm = f"AS-norm, top {args.cohort_size}" if args.cohort else "no score normalisation"
    print(
        f"{result['num_trials']} trials ({norm}): EER {100 * result['EER']:.2f}%, "
        f"minDCF(p_target=0.01) {result['minDCF']:.4f}"
    )
    return result


if __name__ == "__main__":
    main()
