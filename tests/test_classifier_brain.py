"""ClassifierBrain options from the YAML: optimiser groups (layer decay), real-audio pooling."""

from types import SimpleNamespace

import pytest
import speechbrain as sb
import torch
from speechbrain.dataio.encoder import CategoricalEncoder

from ssast_sb.augment import FinetuneAugmentation
from ssast_sb.inference import SSASTAudioClassifier, export_inference_folder
from ssast_sb.models import LayerWeightedClassifier
from ssast_sb.padding import valid_patches
from ssast_sb.windows import clip_frames, window_bounds
from tests.test_device import _classifier_brain


def test_the_original_two_groups(tmp_path):
    brain = _classifier_brain(tmp_path, FinetuneAugmentation(), lr=1e-3, head_lr=10.0)
    brain.init_optimizers()
    rates = [group["lr"] for group in brain.optimizer.param_groups]
    assert rates == pytest.approx([1e-3, 1e-2]) and brain.lr_multipliers == [1.0, 10.0]


def test_layer_decay_gives_each_block_its_rate(tmp_path):
    brain = _classifier_brain(
        tmp_path, FinetuneAugmentation(), lr=1e-3, head_lr=10.0, layer_decay=0.5
    )
    brain.init_optimizers()
    groups = brain.optimizer.param_groups
    model = brain.hparams.model
    depth = len(model.encoder.blocks)
    # head, final norm, 12 blocks, embeddings: every trainable parameter exactly once.
    assert len(groups) == depth + 3
    ids = [id(p) for group in groups for p in group["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    rates = [group["lr"] for group in groups]
    assert rates[0] == pytest.approx(1e-2) and rates[1] == pytest.approx(1e-3)
    assert rates[2] == pytest.approx(1e-3 * 0.5**depth) and rates[-1] == pytest.approx(
        1e-3 * 0.5 ** (depth + 1)
    )
    assert brain.lr_multipliers == pytest.approx([rate / 1e-3 for rate in rates])


def _batch(wavs, lens, targets):
    batch = SimpleNamespace(sig=(wavs, lens), target=SimpleNamespace(data=targets), id=["a", "b"])
    batch.to = lambda device: batch
    return batch


def test_pool_real_audio_averages_the_patches_of_real_audio(tmp_path):
    brain = _classifier_brain(tmp_path, FinetuneAugmentation(), pool_real_audio=True)
    brain.on_fit_start()
    model, frontend = brain.hparams.model, brain.hparams.frontend
    wavs = torch.randn(2, 8000, generator=torch.Generator().manual_seed(0)) * 0.1
    lens = torch.tensor([1.0, 0.5])  # the second clip is half padding
    logits, _ = brain.compute_forward(_batch(wavs, lens, torch.tensor([[0], [1]])), sb.Stage.VALID)
    features = brain.featurize(wavs, lens, sb.Stage.VALID)
    frames = frontend.real_frames(torch.tensor([8000, 4000]))
    assert frames.tolist() == [48, 23]
    with torch.no_grad():
        assert torch.allclose(logits, model(features, frames))
        assert not torch.allclose(logits, model(features))  # the padding is left out


def test_pool_real_audio_reaches_the_inference_folder(tmp_path):
    brain = _classifier_brain(tmp_path, FinetuneAugmentation(), pool_real_audio=True)
    model, frontend = brain.hparams.model.eval(), brain.hparams.frontend
    labels = CategoricalEncoder()
    labels.update_from_iterable(["a", "b", "c"])
    folder = export_inference_folder(
        model, labels, frontend, tmp_path / "inference", pool_real_audio=True
    )
    classifier = SSASTAudioClassifier.from_hparams(
        source=str(folder), savedir=str(tmp_path / "loaded")
    )
    wavs = torch.randn(2, 8000, generator=torch.Generator().manual_seed(1)) * 0.1
    wavs[1, 4000:] = 0
    lens = torch.tensor([1.0, 0.5])
    log_probs = classifier.classify_batch(wavs, lens)[0]
    with torch.no_grad():
        features = frontend(wavs, lens)
        expected = model(features, frontend.real_frames(torch.tensor([8000, 4000])))
    torch.testing.assert_close(log_probs, expected.log_softmax(-1), atol=1e-5, rtol=1e-5)


def test_layer_weighted_head_pools_real_audio_too(tmp_path):
    # The SUPERB head with pool_real_audio: class tokens and real-audio patches are averaged;
    # a clip padded with zeros gives the same output as the clip alone.
    brain = _classifier_brain(tmp_path, FinetuneAugmentation(), pool_real_audio=True)
    encoder = brain.hparams.model.encoder
    torch.manual_seed(0)
    model = LayerWeightedClassifier(encoder, 3, projector_dim=8).eval()
    frontend = brain.hparams.frontend
    wav = torch.randn(1, 8000, generator=torch.Generator().manual_seed(2)) * 0.1
    padded = torch.cat([wav, torch.zeros(1, 8000)], dim=1)
    with torch.no_grad():
        full = model.embed(frontend(padded), frontend.real_frames(torch.tensor([8000])))
        every_token = model.embed(frontend(padded))
    frames = frontend.real_frames(torch.tensor([8000]))
    real = valid_patches(frames, encoder.grid, encoder.config.tstride)[0]
    keep = torch.cat([torch.ones(encoder.num_class_tokens, dtype=torch.bool), real])
    assert 0 < real.sum() < real.numel()
    with torch.no_grad():
        _, layers = encoder(frontend(padded), return_layers=True)
        mixed = torch.einsum("l,lbtd->btd", model.layer_weights.softmax(0), torch.stack(layers))
        kept = model.projector(mixed)[0, keep]
    torch.testing.assert_close(full[0], kept.mean(dim=0))
    assert not torch.allclose(full, every_token)


def test_eval_windows_scores_every_window_of_a_long_clip(tmp_path):
    # A clip three model inputs long, beside one that fits: the long one's score is the
    # frame-weighted mean of its windows' probabilities, the short one's is unchanged.
    brain = _classifier_brain(tmp_path, FinetuneAugmentation(), eval_windows=True)
    brain.on_fit_start()
    frontend = brain.hparams.frontend
    span = 400 + (frontend.target_frames - 1) * 160  # samples of one model input
    generator = torch.Generator().manual_seed(3)
    long_clip = torch.randn(3 * span, generator=generator) * 0.1
    short_clip = torch.randn(span // 2, generator=generator) * 0.1
    wavs = torch.zeros(2, long_clip.numel())
    wavs[0], wavs[1, : short_clip.numel()] = long_clip, short_clip
    lens = torch.tensor([1.0, short_clip.numel() / long_clip.numel()])
    with torch.no_grad():
        scores, _ = brain.compute_forward(
            _batch(wavs, lens, torch.tensor([[0], [1]])), sb.Stage.TEST
        )
        bounds = window_bounds(long_clip.numel(), frontend.target_frames)
        assert len(bounds) == 4  # 3 full windows and the frames left over
        windows = [long_clip[start:end] for start, end in bounds]
        log_probs = torch.cat(
            [brain.clip_logits(w.unsqueeze(0), torch.ones(1), sb.Stage.TEST) for w in windows]
        ).log_softmax(-1)
        weights = torch.tensor([float(clip_frames(w.numel())) for w in windows])
        expected_long = (log_probs.exp() * (weights / weights.sum()).unsqueeze(1)).sum(0).log()
        expected_short = brain.clip_logits(short_clip.unsqueeze(0), torch.ones(1), sb.Stage.TEST)
    torch.testing.assert_close(scores[0], expected_long, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(scores[1], expected_short[0].log_softmax(-1), atol=1e-5, rtol=1e-5)
