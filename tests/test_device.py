"""The CUDA path without a GPU: device-clean randomness, global-norm clipping, honest exports.

The Brains are built as ``--device cuda:0`` builds them (``brain.device = "cuda:0"``),
but no step below may need CUDA: every generator is a CPU one, its draws feed CPU
ops, and only what the model consumes is moved to the device.
"""

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import speechbrain as sb
import torch
from speechbrain.dataio.batch import PaddedBatch

from ssast_sb.augment import FinetuneAugmentation
from ssast_sb.brains.common import AtomicCheckpointer, SeededGenerator, global_grad_norm
from ssast_sb.brains.finetune import ClassifierBrain
from ssast_sb.brains.pretrain import MSPMBrain, export_pretrained
from ssast_sb.checkpoints import (
    CheckpointError,
    encoder_from_original,
    load_original,
    pretrain_model_from_original,
    task_encoder,
)
from ssast_sb.encoder import EncoderConfig, SSASTEncoder
from ssast_sb.frontend import SSASTFbank
from ssast_sb.mae import MAEPretrainModel
from ssast_sb.masking import draw_mask
from ssast_sb.models import SSASTClassifier, SSASTPretrainModel
from ssast_sb.padding import random_crop

ROOT = Path(__file__).resolve().parents[1]
GPU_DEVICE = "cuda:0"
FRAMES = 64


def _tiny_encoder(frames=FRAMES, shape="patch"):
    return SSASTEncoder(EncoderConfig.from_names("tiny", shape, input_tdim=frames))


def _no_cuda(monkeypatch):
    """Any CUDA initialisation below is a failure, even on a machine that has a GPU."""

    def refuse(*args, **kwargs):
        raise AssertionError("a CUDA call was made")

    monkeypatch.setattr(torch.cuda, "_lazy_init", refuse)


# ---------------------------------------------------------------- generators


def test_seeded_generator_is_cpu_and_checkpoints_without_cuda(monkeypatch, tmp_path):
    _no_cuda(monkeypatch)
    rng = SeededGenerator(seed=3, rank=1)
    assert rng.generator.device.type == "cpu"
    checkpointer = AtomicCheckpointer(tmp_path, {"rng": rng})
    checkpointer.save_checkpoint()
    expected = torch.rand(5, generator=rng.generator)
    SeededGenerator(seed=0).generator.manual_seed(0)  # an unrelated generator changes nothing
    checkpointer.recover_if_possible()
    assert torch.equal(torch.rand(5, generator=rng.generator), expected)


def test_no_generator_is_created_on_a_non_cpu_device():
    """Audit of the package: ``torch.Generator(device=...)`` only ever names the CPU."""
    offenders = []
    for path in sorted((ROOT / "ssast_sb").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in re.finditer(r"torch\.Generator\(([^)]*)\)", line):
                argument = match.group(1).strip()
                if argument and argument not in ('device="cpu"', "'cpu'", '"cpu"'):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_masking_and_padding_helpers_draw_on_cpu_and_move():
    generator = SeededGenerator(0).generator
    for strategy in ("random", "cluster", "unbiased_cluster"):
        mask = draw_mask(strategy, 3, (8, 4), 20, generator, "cpu")
        assert mask.device.type == "cpu" and mask.shape == (3, 20)
        assert mask.to("meta").device.type == "meta"  # what compute_forward does with the device
    cropped, frames = random_crop(torch.randn(100, 8), 64, generator)
    assert cropped.shape == (64, 8) and frames == 64


# ---------------------------------------------------------------- the Brains


def _classifier_brain(tmp_path, augmentation, **overrides):
    torch.manual_seed(0)
    model = SSASTClassifier(_tiny_encoder(), num_classes=3)
    counter = sb.utils.epoch_loop.EpochCounter(1)
    hparams = dict(
        model=model,
        frontend=SSASTFbank(target_frames=FRAMES),
        augmentation=augmentation,
        num_classes=3,
        multi_label=False,
        loss="ce",
        lr=1e-3,
        head_lr=1.0,
        layer_decay=1.0,
        pool_real_audio=False,
        eval_windows=False,
        warmup=False,
        lr_milestones=[5],
        lr_decay=0.5,
        seed=0,
        epoch_counter=counter,
    )
    hparams.update(overrides)
    return ClassifierBrain(
        modules={"model": model},
        opt_class=lambda groups: torch.optim.SGD(groups, lr=hparams["lr"]),
        hparams=hparams,
        run_opts={"device": "cpu", "noprogressbar": True, "max_grad_norm": 1.0},
        checkpointer=AtomicCheckpointer(tmp_path / "save", {"model": model, "counter": counter}),
    )


def _waveforms(batch=4, seconds=0.7):
    generator = torch.Generator().manual_seed(1)
    wavs = torch.randn(batch, int(16000 * seconds), generator=generator) * 0.1
    lens = torch.tensor([1.0, 0.8, 0.6, 1.0][:batch])
    return wavs, lens


def test_classifier_brain_augments_for_cuda_without_touching_cuda(monkeypatch, tmp_path):
    # Every augmentation of the original loader: mixup, SpecAugment, noise and roll.
    augmentation = FinetuneAugmentation(freqm=8, timem=12, mixup=1.0, noise=True)
    brain = _classifier_brain(tmp_path, augmentation)
    brain.device = GPU_DEVICE  # as --device cuda:0 sets it; nothing below may need the GPU
    _no_cuda(monkeypatch)
    brain.on_fit_start()
    assert brain.aug_rng.generator.device.type == "cpu"
    wavs, lens = _waveforms()
    targets = torch.tensor([0, 1, 2, 0])

    mixed, soft = brain._mixup(wavs, lens, targets)
    assert mixed.shape == wavs.shape and soft.shape == (4, 3)
    assert torch.allclose(soft.sum(-1), torch.ones(4))
    features = brain.featurize(mixed, lens, sb.Stage.TRAIN)
    assert features.shape == (4, FRAMES, 128) and torch.isfinite(features).all()

    # The generator is checkpointed with the Brain and resumes the same draws.
    brain.checkpointer.save_checkpoint()
    expected = brain.featurize(wavs, lens, sb.Stage.TRAIN)
    brain.featurize(wavs, lens, sb.Stage.TRAIN)
    brain.checkpointer.recover_if_possible()
    assert torch.equal(brain.featurize(wavs, lens, sb.Stage.TRAIN), expected)


def _mspm_brain(model, tmp_path):
    hparams = dict(
        model=model,
        seed=0,
        valid_num_masked=12,
        plateau_factor=0.5,
        plateau_patience=1,
        warmup=False,
        epoch_counter=sb.utils.epoch_loop.EpochCounter(1),
    )
    return MSPMBrain(
        modules={"model": model},
        opt_class=lambda params: torch.optim.Adam(params, lr=1e-4),
        hparams=hparams,
        run_opts={"device": "cpu", "noprogressbar": True},
        checkpointer=AtomicCheckpointer(tmp_path / "save", {"model": model}),
    )


@pytest.mark.parametrize("kind", ["faithful", "mae"])
def test_mspm_brain_draws_masks_on_cpu_for_cuda(monkeypatch, tmp_path, kind):
    encoder = _tiny_encoder()
    if kind == "mae":
        model = MAEPretrainModel(encoder, num_masked=20, decoder_dim=48, decoder_depth=1)
    else:
        model = SSASTPretrainModel(encoder, num_masked=20)
    brain = _mspm_brain(model, tmp_path)
    brain.device = GPU_DEVICE
    _no_cuda(monkeypatch)
    brain.on_fit_start()
    assert brain.mask_rng.generator.device.type == "cpu"
    mpc, mpg = brain.draw_masks(4, sb.Stage.TRAIN)
    # The model's own draw_masks: its num_masked, and one mask for both passes under MAE.
    assert mpc.device.type == "cpu" and mpc.shape == (4, 20)
    assert torch.equal(mpc, mpg) == (kind == "mae")
    brain.on_stage_start(sb.Stage.VALID)
    first = brain.draw_masks(4, sb.Stage.VALID)
    brain.on_stage_start(sb.Stage.VALID)
    again = brain.draw_masks(4, sb.Stage.VALID)
    assert first[0].shape == (4, 12) and torch.equal(first[0], again[0])


def test_mspm_brain_trains_with_masks_moved_to_the_device(tmp_path):
    model = SSASTPretrainModel(_tiny_encoder(), num_masked=20)
    brain = _mspm_brain(model, tmp_path)
    brain.on_fit_start()
    brain.on_stage_start(sb.Stage.TRAIN)
    batch = PaddedBatch([{"id": str(i), "fbank": torch.randn(FRAMES, 128)} for i in range(2)])
    before = [p.detach().clone() for p in model.parameters()]
    assert torch.isfinite(brain.fit_batch(batch))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


# ---------------------------------------------------------------- gradient clipping


def test_classifier_brain_clips_the_global_norm_of_both_groups(tmp_path):
    """SGD at lr 1 on backbone and head: the step is the gradient after clipping."""
    brain = _classifier_brain(
        tmp_path, FinetuneAugmentation(), lr=1.0, head_lr=1.0, lr_milestones=[]
    )
    brain.on_fit_start()
    assert len(brain.optimizer.param_groups) == 2
    wavs, lens = _waveforms()
    batch = SimpleNamespace(
        sig=(wavs, lens), target=SimpleNamespace(data=torch.tensor([[0], [1], [2], [0]]))
    )
    brain.on_stage_start(sb.Stage.TRAIN)
    batch.id = ["a", "b", "c", "d"]
    batch.to = lambda device: batch
    loss = brain.compute_objectives(brain.compute_forward(batch, sb.Stage.TRAIN), batch, None)
    (loss * 1000).backward()  # a gradient far above max_grad_norm in both groups
    head = brain.optimizer.param_groups[1]["params"]
    head_norm = float(torch.stack([p.grad.norm() for p in head]).norm())
    assert global_grad_norm(brain.optimizer) > 1.0 and head_norm > 0.1
    before = [p.detach().clone() for group in brain.optimizer.param_groups for p in group["params"]]
    brain.optimizers_step()
    after = [p.detach() for group in brain.optimizer.param_groups for p in group["params"]]
    step = torch.cat([(a - b).flatten() for a, b in zip(after, before)])
    assert step.norm().item() == pytest.approx(1.0, rel=2e-3)  # fp32 differences of weights
    # SpeechBrain's own step would clip group 0 alone: group 1's step would keep its norm.
    head_step = torch.cat(
        [(a - b).flatten() for a, b in zip(after[-len(head) :], before[-len(head) :])]
    )
    assert head_step.norm().item() < head_norm


def test_speechbrain_alone_leaves_the_second_group_unclipped():
    """The behaviour the mixin replaces, so this test notices if SpeechBrain changes."""
    body, head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)

    class Plain(sb.Brain):
        pass

    brain = Plain(
        {"body": body, "head": head},
        lambda _: torch.optim.SGD(
            [{"params": body.parameters()}, {"params": head.parameters()}], lr=1.0
        ),
        run_opts={"max_grad_norm": 1.0, "noprogressbar": True},
    )
    brain.init_optimizers()
    (head(body(torch.ones(3, 2))).sum() * 100).backward()
    head_norm = float(torch.stack([p.grad.norm() for p in head.parameters()]).norm())
    before = [p.detach().clone() for p in head.parameters()]
    brain.optimizers_step()
    step = torch.cat([(p.detach() - b).flatten() for p, b in zip(head.parameters(), before)])
    assert step.norm().item() == pytest.approx(head_norm, rel=1e-5) and head_norm > 1.0


# ---------------------------------------------------------------- exports


def _export(model, tmp_path):
    checkpointer = SimpleNamespace(
        recover_if_possible=lambda **kwargs: None, find_checkpoint=lambda **kwargs: None
    )
    brain = SimpleNamespace(model=model, checkpointer=checkpointer, steps_per_epoch=None)
    return export_pretrained(brain, {"pretrained_folder": tmp_path / "pretrained"})


def test_mae_run_exports_its_encoder_only(tmp_path):
    torch.manual_seed(0)
    model = MAEPretrainModel(_tiny_encoder(), num_masked=20, decoder_dim=48, decoder_depth=1)
    paths = _export(model, tmp_path)
    state = load_original(paths["pth"])
    assert not [k for k in state if k.startswith(("cpredlayer", "gpredlayer", "mask_embed"))]
    assert {k for k in state if not k.startswith("v.")} == {"p_input_fdim", "p_input_tdim"}

    encoder, _ = encoder_from_original(paths["pth"])
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(encoder.state_dict()[key], value), key

    # Fine-tuning starts from it; a full pretraining model refuses it, naming the heads.
    adapted = task_encoder(paths["pth"], fstride=16, tstride=16, target_frames=128)
    assert adapted.grid == (8, 8)
    with pytest.raises(CheckpointError, match="cpredlayer, gpredlayer, mask_embed are absent"):
        pretrain_model_from_original(paths["pth"])
    # The SpeechBrain-layout checkpoint keeps the whole MAE model (decoder included).
    saved = torch.load(paths["ckpt"], map_location="cpu", weights_only=True)
    assert set(saved) == set(model.state_dict())


def test_mspm_run_exports_encoder_and_heads(tmp_path):
    model = SSASTPretrainModel(_tiny_encoder(), num_masked=20)
    paths = _export(model, tmp_path)
    loaded, _ = pretrain_model_from_original(paths["pth"])
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
