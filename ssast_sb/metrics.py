"""Evaluation metrics of SSAST fine-tuning (docs/fidelity.md d.1).

The original reports the mean over classes of sklearn's average precision
(AudioSet), the mean ROC AUC, and top-1 accuracy (ESC-50, Speech Commands and
the SUPERB tasks). This module computes the same numbers with numpy only:

* :func:`mean_average_precision`, :func:`mean_auc`: per-class AP and AUC with
  sklearn's definitions (ties between scores form one threshold), averaged
  over the classes where the metric is defined;
* :func:`accuracy` and :func:`confusion_matrix` for single-label tasks (the
  per-class report and the confusion-matrix figure are in :mod:`ssast_sb.reports`);
* :class:`ScoreStats`, a small accumulator in the spirit of SpeechBrain's
  ``MetricStats`` for use in ``on_stage_end`` (named apart from SpeechBrain's
  ``ClassificationStats``, whose interface differs).

Inputs may be torch tensors, numpy arrays or nested lists.

Authors
 * ssast-sb contributors
"""

import logging

import numpy as np
import torch

logger = logging.getLogger(__name__)


def _to_numpy(values, dtype=None):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


def _check_scores_targets(scores, targets):
    scores = _to_numpy(scores, np.float64)
    targets = _to_numpy(targets, np.float64)
    if scores.ndim == 1:
        scores, targets = scores[:, None], targets.reshape(-1, 1)
    if scores.shape != targets.shape:
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} differ in shape")
    return scores, targets > 0.5


def _threshold_counts(scores, positives):
    """Cumulative true and false positives at each distinct score, highest first."""
    order = np.argsort(-scores, kind="mergesort")
    scores, positives = scores[order], positives[order]
    # The last sample of each run of equal scores closes a threshold.
    last_of_run = np.r_[np.flatnonzero(np.diff(scores) != 0), scores.size - 1]
    true_pos = np.cumsum(positives)[last_of_run]
    false_pos = (last_of_run + 1) - true_pos
    return true_pos, false_pos


def average_precision(scores, targets):
    """Average precision of one class: ``sum_n (R_n - R_{n-1}) P_n``.

    Thresholds are the distinct scores, so tied samples enter together, as in
    ``sklearn.metrics.average_precision_score``.

    Arguments
    ---------
    scores : array-like
        ``(N,)`` scores, higher meaning more likely positive.
    targets : array-like
        ``(N,)`` binary targets (values above 0.5 count as positive).

    Returns
    -------
    float
        The AP, or NaN when there is no positive sample.

    Example
    -------
    >>> average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])
    0.8333333333333333
    """
    scores, positives = _check_scores_targets(scores, targets)
    scores, positives = scores[:, 0], positives[:, 0]
    num_positives = positives.sum()
    if num_positives == 0:
        return float("nan")
    true_pos, false_pos = _threshold_counts(scores, positives)
    precision = true_pos / (true_pos + false_pos)
    recall = true_pos / num_positives
    recall_step = np.diff(np.r_[0.0, recall])
    return float(np.sum(recall_step * precision))


def roc_auc(scores, targets):
    """Area under the ROC curve of one class; a tied positive/negative pair counts 1/2.

    This equals sklearn's ``roc_auc_score`` (trapezoids between distinct
    thresholds), computed as the Mann-Whitney statistic with average ranks.

    Arguments
    ---------
    scores : array-like
        ``(N,)`` scores.
    targets : array-like
        ``(N,)`` binary targets.

    Returns
    -------
    float
        The AUC, or NaN when all targets are equal (AUC undefined).

    Example
    -------
    >>> roc_auc([0.1, 0.4, 0.4, 0.8], [0, 0, 1, 1])
    0.875
    """
    scores, positives = _check_scores_targets(scores, targets)
    scores, positives = scores[:, 0], positives[:, 0]
    num_pos = int(positives.sum())
    num_neg = positives.size - num_pos
    if num_pos == 0 or num_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    # Average 1-based rank of each run of equal scores.
    run_starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores) != 0) + 1]
    run_ends = np.r_[run_starts[1:], scores.size]
    run_ranks = (run_starts + run_ends + 1) / 2.0
    ranks = np.empty(scores.size)
    ranks[order] = np.repeat(run_ranks, run_ends - run_starts)
    rank_sum = ranks[positives].sum()
    return float((rank_sum - num_pos * (num_pos + 1) / 2.0) / (num_pos * num_neg))


def _mean_over_classes(metric, scores, targets):
    scores, positives = _check_scores_targets(scores, targets)
    values = np.array([metric(scores[:, c], positives[:, c]) for c in range(scores.shape[1])])
    defined = ~np.isnan(values)
    if not defined.any():
        raise ValueError(f"{metric.__name__} is undefined for every class")
    if not defined.all():
        logger.debug("%s skipped %d class(es)", metric.__name__, int((~defined).sum()))
    return float(values[defined].mean())


def mean_average_precision(scores, targets):
    """Mean over classes of the average precision (the AudioSet mAP).

    Classes without a positive sample are skipped (their AP is undefined).

    Arguments
    ---------
    scores : array-like
        ``(N, C)`` scores (logits or probabilities: only their order matters).
    targets : array-like
        ``(N, C)`` multi-hot targets (values above 0.5 count as positive).

    Returns
    -------
    float

    Example
    -------
    >>> scores = [[0.9, 0.1], [0.8, 0.7], [0.2, 0.6]]
    >>> targets = [[1, 0], [0, 1], [1, 0]]
    >>> round(mean_average_precision(scores, targets), 4)  # (5/6 + 1) / 2
    0.9167
    """
    return _mean_over_classes(average_precision, scores, targets)


def mean_auc(scores, targets):
    """Mean over classes of the ROC AUC; classes with a single target value are skipped.

    Arguments
    ---------
    scores : array-like
        ``(N, C)`` scores.
    targets : array-like
        ``(N, C)`` multi-hot targets.

    Returns
    -------
    float

    Example
    -------
    >>> mean_auc([[0.9, 0.1], [0.8, 0.7], [0.2, 0.6]], [[1, 0], [0, 1], [1, 0]])
    0.75
    """
    return _mean_over_classes(roc_auc, scores, targets)


def _class_indices(labels):
    """Class indices from ``(N,)`` integers or ``(N, C)`` one-hot/soft labels (argmax)."""
    labels = _to_numpy(labels)
    if labels.ndim == 2:
        return labels.argmax(axis=1)
    return labels.astype(np.int64)


def accuracy(scores, labels):
    """Top-1 accuracy: the share of samples whose highest score is the true class.

    Arguments
    ---------
    scores : array-like
        ``(N, C)`` scores.
    labels : array-like
        ``(N,)`` class indices, or ``(N, C)`` one-hot or soft labels (their
        argmax is the class, as in the original's ``stats.py``).

    Returns
    -------
    float

    Example
    -------
    >>> accuracy([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], [1, 0, 0])
    0.6666666666666666
    """
    predicted = _to_numpy(scores).argmax(axis=1)
    labels = _class_indices(labels)
    if predicted.shape != labels.shape:
        raise ValueError(f"{predicted.size} predictions but {labels.size} labels")
    return float((predicted == labels).mean())


def confusion_matrix(pred, labels, num_classes):
    """Count (true class, predicted class) pairs.

    Arguments
    ---------
    pred : array-like
        ``(N,)`` predicted class indices.
    labels : array-like
        ``(N,)`` true class indices.
    num_classes : int
        Number of classes C.

    Returns
    -------
    numpy.ndarray
        ``(C, C)`` int64 matrix; row = true class, column = predicted class
        (sklearn's convention).

    Example
    -------
    >>> confusion_matrix([0, 1, 1], [0, 0, 1], 2)
    array([[1, 1],
           [0, 1]])
    """
    pred, labels = _class_indices(pred), _class_indices(labels)
    if pred.shape != labels.shape:
        raise ValueError(f"{pred.size} predictions but {labels.size} labels")
    for name, values in (("pred", pred), ("labels", labels)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} has class indices outside [0, {num_classes})")
    flat = np.bincount(labels * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


class ScoreStats:
    """Accumulate scores and targets over batches, then summarise them.

    Used like SpeechBrain's ``MetricStats``: ``append`` in ``compute_objectives``,
    ``summarize`` in ``on_stage_end``, ``clear`` at the start of a stage.

    Arguments
    ---------
    multi_label : bool
        False: single-label task, ``summarize`` gives ``accuracy`` and
        ``error_rate`` (targets are class indices, or one-hot/soft rows whose
        argmax is the class). True: multi-label task, ``summarize`` gives ``mAP``
        and ``mAUC`` (targets are multi-hot rows) plus ``accuracy`` of the argmax.

    Example
    -------
    >>> stats = ScoreStats()
    >>> stats.append(["a", "b"], torch.tensor([[0.2, 0.8], [0.9, 0.1]]), torch.tensor([1, 1]))
    >>> stats.append(["c"], torch.tensor([[0.3, 0.7]]), torch.tensor([1]))
    >>> stats.summarize()
    {'accuracy': 0.6666666666666666, 'error_rate': 0.33333333333333337}
    >>> stats.summarize("accuracy")
    0.6666666666666666
    """

    def __init__(self, multi_label=False):
        self.multi_label = multi_label
        self.clear()

    def clear(self):
        """Forget everything appended so far.

        Example
        -------
        >>> stats = ScoreStats()
        >>> stats.append(["a"], torch.ones(1, 2), torch.tensor([0]))
        >>> stats.clear(); len(stats.ids)
        0
        """
        self.ids = []
        self._scores = []
        self._targets = []

    def append(self, ids, scores, targets):
        """Store one batch.

        Arguments
        ---------
        ids : sequence of str
            Utterance IDs of the batch.
        scores : torch.Tensor
            ``(B, C)`` logits or probabilities.
        targets : torch.Tensor
            ``(B,)`` class indices or ``(B, C)`` (multi-)hot or soft targets.

        Example
        -------
        >>> stats = ScoreStats(multi_label=True)
        >>> stats.append(["a"], torch.tensor([[0.1, 0.9]]), torch.tensor([[0, 1]]))
        >>> stats.scores.shape
        (1, 2)
        """
        scores = _to_numpy(scores, np.float64)
        targets = _to_numpy(targets)
        if scores.ndim != 2 or len(ids) != scores.shape[0] or targets.shape[0] != len(ids):
            raise ValueError(
                f"Batch mismatch: {len(ids)} ids, scores {scores.shape}, targets {targets.shape}"
            )
        if self.multi_label and targets.shape != scores.shape:
            raise ValueError(
                f"Multi-label targets must be (B, C) like the scores {scores.shape}, "
                f"got {targets.shape}"
            )
        self.ids.extend(ids)
        self._scores.append(scores)
        self._targets.append(targets)

    @property
    def scores(self):
        """All appended scores, ``(N, C)`` numpy array."""
        return np.concatenate(self._scores) if self._scores else np.zeros((0, 0))

    @property
    def targets(self):
        """All appended targets, ``(N,)`` or ``(N, C)`` numpy array."""
        return np.concatenate(self._targets) if self._targets else np.zeros((0,))

    def summarize(self, field=None):
        """Compute the metrics over everything appended.

        Arguments
        ---------
        field : str, optional
            Return only this metric.

        Returns
        -------
        dict or float
            ``{"accuracy", "error_rate"}`` (single-label) or
            ``{"mAP", "mAUC", "accuracy"}`` (multi-label); one value when
            ``field`` is given.

        Example
        -------
        >>> stats = ScoreStats(multi_label=True)
        >>> stats.append(["a", "b"], torch.tensor([[0.9, 0.2], [0.1, 0.8]]),
        ...              torch.tensor([[1, 0], [0, 1]]))
        >>> stats.summarize()
        {'mAP': 1.0, 'mAUC': 1.0, 'accuracy': 1.0}
        """
        if not self.ids:
            raise ValueError("ScoreStats.summarize called before any append")
        scores, targets = self.scores, self.targets
        if self.multi_label:
            summary = {
                "mAP": mean_average_precision(scores, targets),
                "mAUC": mean_auc(scores, targets),
                "accuracy": accuracy(scores, targets),
            }
        else:
            acc = accuracy(scores, targets)
            summary = {"accuracy": acc, "error_rate": 1.0 - acc}
        return summary if field is None else summary[field]
