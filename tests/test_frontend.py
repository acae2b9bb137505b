"""The fbank frontend against the original data loader's dumps."""

import logging

import pytest
import torch

from ssast_sb.frontend import NORM_STATS, SSASTFbank, kaldi_fbank, pad_or_cut
from tests.conftest import load_reference

DUMPS = {
    "features_audioset_eval_seed0.pt": "audioset",
    "features_esc50_eval_seed0.pt": "esc50",
    "features_speechcommands_eval_seed0.pt": "speechcommands",
    "features_speechcommands_train_seed0.pt": "speechcommands",
}
# The original fbank is matched to float32 rounding of the FFT: differences show
# only on near-silent bins, where the log magnifies them.
RAW_FBANK_ATOL = 2e-3
MODEL_INPUT_ATOL = 2e-4


@pytest.mark.parametrize("name", sorted(DUMPS))
def test_raw_fbank_matches_original(reference_dir, name):
    dump = load_reference(reference_dir / name)
    frontend = SSASTFbank.from_preset(DUMPS[name])
    assert frontend.target_frames == dump["meta"]["audio_conf"]["target_length"]
    assert (frontend.mean, frontend.std) == (
        dump["meta"]["audio_conf"]["mean"],
        dump["meta"]["audio_conf"]["std"],
    )
    raw = frontend.raw_features(dump["waveform"][0])
    assert raw.shape == dump["raw_fbank_padded"].shape
    diff = (raw - dump["raw_fbank_padded"]).abs()
    assert diff.max() < RAW_FBANK_ATOL
    assert diff.mean() < 1e-5


@pytest.mark.parametrize("name", [n for n in sorted(DUMPS) if "eval" in n])
def test_model_input_matches_original(reference_dir, name):
    dump = load_reference(reference_dir / name)
    features = SSASTFbank.from_preset(DUMPS[name])(dump["waveform"])
    assert features.shape == (1,) + tuple(dump["model_input"].shape)
    assert (features[0] - dump["model_input"]).abs().max() < MODEL_INPUT_ATOL


def test_padding_happens_before_normalisation():
    frontend = SSASTFbank.from_preset("audioset")
    features = frontend(torch.randn(1, 16000))
    mean, std = NORM_STATS["audioset"]
    # 1 s gives 98 real frames; the rest hold -mean / (2 std), about +0.467.
    assert torch.allclose(features[0, 98:], torch.full((926, 128), -mean / (2 * std)))
    assert not torch.allclose(features[0, 97], features[0, 98])


def test_relative_lengths_drop_padding():
    frontend = SSASTFbank(target_frames=200)
    clip = torch.randn(8000)
    padded = torch.cat((clip, torch.zeros(8000)))
    batch = frontend(torch.stack((padded, padded)), torch.tensor([0.5, 1.0]))
    alone = frontend(clip.unsqueeze(0))
    assert torch.equal(batch[0], alone[0])
    assert not torch.equal(batch[1], alone[0])


def test_other_sample_rates_are_resampled_with_a_log_line(caplog):
    t = torch.arange(8000) / 8000
    tone_8k = torch.sin(2 * torch.pi * 440 * t).unsqueeze(0)
    t16 = torch.arange(16000) / 16000
    tone_16k = torch.sin(2 * torch.pi * 440 * t16).unsqueeze(0)
    with caplog.at_level(logging.INFO, logger="ssast_sb.frontend"):
        resampled = SSASTFbank(target_frames=98, sample_rate=8000)(tone_8k)
    assert "8000 Hz to 16000 Hz" in caplog.text
    native = SSASTFbank(target_frames=98)(tone_16k)
    assert resampled.shape == native.shape == (1, 98, 128)
    # The 440 Hz bin dominates in both, so the features agree where there is energy.
    assert resampled[0].mean(0).argmax() == native[0].mean(0).argmax()


def test_kaldi_fbank_removes_dc_and_frame_count():
    clip = torch.randn(32000)
    assert kaldi_fbank(clip).shape == (1 + (32000 - 400) // 160, 128)
    assert torch.allclose(kaldi_fbank(clip), kaldi_fbank(clip + 0.3), atol=1e-3)


def test_short_clip_is_padded_not_crashed():
    features = SSASTFbank(target_frames=16)(torch.randn(1, 100))
    assert features.shape == (1, 16, 128) and torch.isfinite(features).all()


def test_pad_or_cut_and_bad_shapes():
    assert pad_or_cut(torch.ones(10, 3), 4).shape == (4, 3)
    with pytest.raises(ValueError, match="batch, samples"):
        SSASTFbank()(torch.zeros(1, 1, 10))
    with pytest.raises(ValueError, match="Unknown preset"):
        SSASTFbank.from_preset("librispeech")
