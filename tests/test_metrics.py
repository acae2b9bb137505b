"""Tests for ssast_sb.metrics against hand-computed values and brute-force definitions."""

import itertools
import os

import numpy as np
import pytest
import torch

from ssast_sb.metrics import (
    ScoreStats,
    accuracy,
    average_precision,
    confusion_matrix,
    mean_auc,
    mean_average_precision,
    roc_auc,
)
from ssast_sb.reports import per_class_report, save_confusion_matrix_png


def _brute_ap(scores, targets):
    """AP = sum (R_n - R_{n-1}) P_n, thresholds at each distinct score, by direct counting."""
    scores, targets = np.asarray(scores, float), np.asarray(targets, bool)
    ap, previous_recall = 0.0, 0.0
    for threshold in sorted(set(scores), reverse=True):
        chosen = scores >= threshold
        tp = (chosen & targets).sum()
        precision, recall = tp / chosen.sum(), tp / targets.sum()
        ap += (recall - previous_recall) * precision
        previous_recall = recall
    return ap


def _brute_auc(scores, targets):
    """Probability that a positive outscores a negative, ties counting one half."""
    scores, targets = np.asarray(scores, float), np.asarray(targets, bool)
    pairs = list(itertools.product(scores[targets], scores[~targets]))
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)


def test_average_precision_hand_computed():
    # Ranked 1, 0, 1, 0: P=1 at R=1/2, then P=2/3 at R=1.
    assert average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(5 / 6)
    assert average_precision([0.1, 0.2, 0.3], [0, 0, 1]) == 1.0
    assert np.isnan(average_precision([0.1, 0.2], [0, 0]))


def test_average_precision_ties_form_one_threshold():
    # A tied positive and negative enter together: P=1/2 at R=1 (sklearn gives 0.5),
    # not 1.0 as it would if the positive were ranked first.
    assert average_precision([0.8, 0.8], [1, 0]) == pytest.approx(0.5)
    # 0.9 (pos) -> P=1, R=1/2; {0.8 pos, 0.8 neg} -> P=2/3, R=1.
    assert average_precision([0.9, 0.8, 0.8, 0.1], [1, 0, 1, 0]) == pytest.approx(5 / 6)
    # Swapping tied samples changes nothing.
    assert average_precision([0.9, 0.8, 0.8, 0.1], [1, 1, 0, 0]) == pytest.approx(5 / 6)


def test_roc_auc_hand_computed_with_ties():
    assert roc_auc([0.1, 0.4, 0.4, 0.8], [0, 0, 1, 1]) == pytest.approx(0.875)
    assert roc_auc([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    assert roc_auc([0.9, 0.1], [0, 1]) == 0.0
    assert np.isnan(roc_auc([0.1, 0.2], [1, 1]))


def test_metrics_match_brute_force_on_random_tied_scores():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(5, 40))
        scores = rng.integers(0, 6, size=n) / 5.0  # many ties
        targets = rng.random(n) < 0.4
        if targets.all() or not targets.any():
            continue
        assert average_precision(scores, targets) == pytest.approx(_brute_ap(scores, targets))
        assert roc_auc(scores, targets) == pytest.approx(_brute_auc(scores, targets))


def test_means_over_classes_skip_undefined_classes():
    scores = torch.tensor([[0.9, 0.1, 0.3], [0.8, 0.7, 0.2], [0.2, 0.6, 0.1]])
    targets = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    # class 0: 5/6, class 1: 1, class 2: no positive -> skipped
    assert mean_average_precision(scores, targets) == pytest.approx((5 / 6 + 1) / 2)
    # class 0: 0.5, class 1: 1
    assert mean_auc(scores, targets) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="undefined"):
        mean_average_precision(scores, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="shape"):
        mean_auc(scores, targets[:, :2])


def test_accuracy_with_indices_and_one_hot():
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert accuracy(scores, [1, 0, 0, 0]) == 0.75
    assert accuracy(torch.tensor(scores), torch.tensor([[0, 1], [1, 0], [1, 0], [0, 1]])) == 0.5
    # soft (mixup) labels count by their argmax, as in the original stats.py
    assert accuracy(scores, [[0.3, 0.7], [0.6, 0.4], [0.9, 0.1], [0.8, 0.2]]) == 0.75


def test_confusion_matrix_and_report():
    labels = [0, 0, 0, 1, 1, 2]
    pred = [0, 0, 1, 1, 0, 0]
    matrix = confusion_matrix(pred, labels, 3)
    assert matrix.tolist() == [[2, 1, 0], [1, 1, 0], [1, 0, 0]]
    rows, table = per_class_report(pred, labels, ["a", "b", "c"])
    assert rows[0] == pytest.approx(
        {"class": "a", "precision": 0.5, "recall": 2 / 3, "f1": 4 / 7, "support": 3}
    )
    assert rows[1]["precision"] == 0.5 and rows[1]["recall"] == 0.5
    # class c is never predicted: zero division gives 0, not NaN
    assert rows[2] == {"class": "c", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    lines = table.splitlines()
    assert lines[0].split() == ["class", "precision", "recall", "f1", "support"]
    assert lines[1].split() == ["a", "0.5000", "0.6667", "0.5714", "3"]
    assert lines[-1].split() == ["accuracy", "0.5000", "6"]
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([3], [0], 3)


def test_save_confusion_matrix_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "plots" / "cm.png"
    matrix = confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3)
    assert save_confusion_matrix_png(matrix, ["dog", "rain", "sea waves"], path) == path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(path.parent) == ["cm.png"]  # no temporary file left behind
    with pytest.raises(ValueError, match="class names"):
        save_confusion_matrix_png(matrix, ["dog"], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_classification_stats_single_label():
    stats = ScoreStats()
    stats.append(["a", "b"], torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0]))
    stats.append(["c"], torch.tensor([[1.0, 5.0]]), torch.tensor([1]))
    assert stats.ids == ["a", "b", "c"]
    assert stats.summarize() == pytest.approx({"accuracy": 2 / 3, "error_rate": 1 / 3})
    assert stats.summarize("error_rate") == pytest.approx(1 / 3)
    stats.clear()
    with pytest.raises(ValueError, match="before any append"):
        stats.summarize()
    with pytest.raises(ValueError, match="Batch mismatch"):
        stats.append(["a"], torch.zeros(2, 2), torch.zeros(2))


def test_classification_stats_multi_label():
    stats = ScoreStats(multi_label=True)
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.7], [0.2, 0.6]])
    targets = torch.tensor([[1, 0], [0, 1], [1, 0]])
    stats.append(["a", "b"], scores[:2], targets[:2])
    stats.append(["c"], scores[2:], targets[2:])
    summary = stats.summarize()
    assert summary["mAP"] == pytest.approx(mean_average_precision(scores, targets))
    assert summary["mAUC"] == pytest.approx(0.75)
    # argmax of scores (0, 0, 1) against argmax of targets (0, 1, 0)
    assert summary["accuracy"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="Multi-label"):
        stats.append(["d"], torch.zeros(1, 2), torch.tensor([1]))
