"""EER and minDCF of ``ssast_sb.verify`` are SpeechBrain's, in memory linear in the trials.

SpeechBrain's ``minDCF`` compares every threshold with every score: for the
44,850 trials of all pairs of FSDD's 300 test clips it asks for 27 GB.
"""

import time

import pytest
import torch
from speechbrain.utils.metric_stats import EER, minDCF

from ssast_sb.verify import error_rates, verification_metrics


@pytest.mark.parametrize("ties", [False, True])
def test_the_metrics_are_speechbrains(ties):
    generator = torch.Generator().manual_seed(0)
    labels = (torch.rand(600, generator=generator) < 0.2).long()
    scores = torch.randn(600, generator=generator) + labels.float()
    if ties:  # few distinct values: many trials share a threshold
        scores = (scores * 4).round() / 4
    positive, negative = scores[labels.bool()], scores[~labels.bool()]
    for p_target, c_miss, c_fa in ((0.01, 1.0, 1.0), (0.5, 3.0, 2.0)):
        metrics = verification_metrics(scores, labels, p_target, c_miss, c_fa)
        eer, eer_threshold = EER(positive, negative)
        dcf, dcf_threshold = minDCF(positive, negative, c_miss, c_fa, p_target)
        assert metrics["EER"] == pytest.approx(eer, abs=1e-7)
        assert metrics["EER_threshold"] == eer_threshold
        assert metrics["minDCF_raw"] == dcf and metrics["minDCF_threshold"] == dcf_threshold
        assert metrics["minDCF"] == dcf / min(c_miss * p_target, c_fa * (1 - p_target))


def test_error_rates_count_the_trials_on_each_side_of_every_threshold():
    positive, negative = torch.tensor([0.2, 0.5, 0.5, 0.9]), torch.tensor([0.1, 0.5, 0.7])
    thresholds, p_miss, p_fa = error_rates(positive, negative)
    assert thresholds.tolist() == pytest.approx([0.1, 0.15, 0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9])
    for threshold, miss, false_alarm in zip(thresholds, p_miss, p_fa):
        assert miss == (positive <= threshold).float().mean()
        assert false_alarm == (negative > threshold).float().mean()


def test_a_large_trial_list_is_scored_in_linear_memory():
    generator = torch.Generator().manual_seed(1)
    labels = (torch.rand(200_000, generator=generator) < 0.1).long()
    scores = torch.randn(200_000, generator=generator) + 2 * labels.float()
    start = time.perf_counter()
    metrics = verification_metrics(scores, labels)  # SpeechBrain's minDCF: hundreds of GB
    assert time.perf_counter() - start < 10
    # Two unit-variance Gaussians 2 apart: EER = Phi(-1) = 0.1587.
    assert metrics["EER"] == pytest.approx(0.1587, abs=0.01)
