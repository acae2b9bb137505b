"""One clip, one answer: a clip's outputs do not depend on the clips it shares a batch with.

A variable-length batch is padded to its longest clip; the encoder lets every token
attend only to its own clip's tokens and pools over them, so a clip's logits and
embeddings are the same alone, beside longer and shorter clips, in reverse order and
under dynamic batching: the Brain's evaluation, ``classify_batch``, ``encode_batch``,
``extract_features``, windowed evaluation and the ONNX export, for patch and frame
models. The clips are real audio of ``../shared/data`` (spoken digits of 0.3 to 0.8 s and
a 5 s ESC-10 clip, longer than the input).
"""

import csv
from pathlib import Path

import pytest
import speechbrain as sb
import torch
from speechbrain.dataio.encoder import CategoricalEncoder

from ssast_sb.augment import FinetuneAugmentation
from ssast_sb.brains.finetune import ClassifierBrain
from ssast_sb.data.audio import load_audio
from ssast_sb.encoder import EncoderConfig, SSASTEncoder
from ssast_sb.export.onnx import export_onnx
from ssast_sb.export.source import load_export_source
from ssast_sb.frontend import SSASTFbank
from ssast_sb.inference import SSASTAudioClassifier, export_inference_folder
from ssast_sb.models import LayerWeightedClassifier, SSASTClassifier
from ssast_sb.onnx_inference import ONNXAudioClassifier
from tests.conftest import export_extra

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-5
INPUT_FRAMES = 96
#: (fshape, tshape, fstride, tstride) of the fine-tuning grids of patch and frame models.
SHAPES = {"patch": (16, 16, 10, 10), "frame": (128, 2, 128, 1)}


@pytest.fixture(scope="module")
def clips(shared_dir):
    """Spoken digits of several lengths, then a 5 s ESC-10 clip (longer than the input)."""
    data = shared_dir / "data"
    with open(data / "kws_sid_fsdd" / "manifest.csv", newline="", encoding="utf-8") as stream:
        rows = sorted(csv.DictReader(stream), key=lambda row: float(row["duration"]))
    chosen = [rows[20], rows[len(rows) // 2], rows[-40]]
    wavs = [load_audio(data / "kws_sid_fsdd" / row["path"]) for row in chosen]
    with open(data / "audio_events_esc10" / "manifest.csv", newline="", encoding="utf-8") as stream:
        event = next(csv.DictReader(stream))
    wavs.append(load_audio(data / "audio_events_esc10" / event["path"]))
    assert len({wav.numel() for wav in wavs}) == len(wavs)
    return wavs


def _model(shape, head="mean"):
    torch.manual_seed(0)
    fshape, tshape, fstride, tstride = SHAPES[shape]
    config = EncoderConfig(
        embed_dim=32,
        depth=2,
        num_heads=2,
        fshape=fshape,
        tshape=tshape,
        fstride=fstride,
        tstride=tstride,
        input_tdim=INPUT_FRAMES,
        variable_length=True,
    )
    if head == "layer_weighted":
        return LayerWeightedClassifier(SSASTEncoder(config), 3, projector_dim=16).eval()
    return SSASTClassifier(SSASTEncoder(config), 3, pooling=head).eval()


def _frontend():
    return SSASTFbank(target_frames=INPUT_FRAMES, variable_length=True)


def _batches(wavs):
    """``(order, batch, lens)``: each clip alone, all together, all in reverse order."""
    count = len(wavs)
    orders = [[i] for i in range(count)] + [list(range(count)), list(reversed(range(count)))]
    for order in orders:
        chosen = [wavs[i] for i in order]
        batch = torch.nn.utils.rnn.pad_sequence(chosen, batch_first=True)
        lens = torch.tensor([wav.numel() / batch.shape[1] for wav in chosen])
        yield order, batch, lens


def _assert_invariant(compute, wavs):
    """``compute(batch, lens)`` gives each clip's row the same in every batch."""
    outputs = {}
    with torch.no_grad():
        for order, batch, lens in _batches(wavs):
            for row, clip in zip(compute(batch, lens), order):
                outputs.setdefault(clip, []).append(row)
    for clip, rows in outputs.items():
        assert len(rows) == 3
        for row in rows[1:]:
            difference = (row - rows[0]).abs().max().item()
            assert difference < TOLERANCE, (clip, difference)


def _brain(model, pool_real_audio, eval_windows=False):
    hparams = {
        "model": model,
        "frontend": _frontend(),
        "augmentation": FinetuneAugmentation(),
        "pool_real_audio": pool_real_audio,
        "eval_windows": eval_windows,
        "multi_label": False,
    }
    return ClassifierBrain(modules={"model": model}, hparams=hparams, run_opts={"device": "cpu"})


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("head", ["mean", "cls", "layer_weighted"])
@pytest.mark.parametrize("pool_real_audio", [True, False])
def test_the_brains_logits_do_not_depend_on_the_batch(clips, shape, head, pool_real_audio):
    brain = _brain(_model(shape, head), pool_real_audio)
    _assert_invariant(lambda batch, lens: brain.clip_logits(batch, lens, sb.Stage.TEST), clips)


@pytest.mark.parametrize("shape", SHAPES)
def test_windowed_evaluation_does_not_depend_on_the_batch(clips, shape):
    brain = _brain(_model(shape), pool_real_audio=True, eval_windows=True)
    _assert_invariant(brain.windowed_logits, clips)


def test_the_padding_did_change_outputs_before(clips):
    """The check can fail: without the clip's frames, its batch changes its logits."""
    model = _model("frame")
    frontend = _frontend()
    alone = model(frontend(clips[0].unsqueeze(0)))
    batch = torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)
    lens = torch.tensor([wav.numel() / batch.shape[1] for wav in clips])
    together = model(frontend(batch, lens))[0]
    assert (together - alone[0]).abs().max() > 100 * TOLERANCE


@pytest.fixture(scope="module", params=list(SHAPES))
def inference_folder(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"inference_{request.param}")
    labels = CategoricalEncoder()
    labels.update_from_iterable(["dog", "rain", "digit"])
    model = _model(request.param)
    export_inference_folder(model, labels, _frontend(), folder / "model", pool_real_audio=True)
    return folder


def test_the_inference_interfaces_do_not_depend_on_the_batch(clips, inference_folder):
    classifier = SSASTAudioClassifier.from_hparams(
        source=str(inference_folder / "model"), savedir=str(inference_folder / "loaded")
    )
    _assert_invariant(lambda batch, lens: classifier.classify_batch(batch, lens)[0], clips)
    _assert_invariant(lambda batch, lens: classifier.encode_batch(batch, lens)[:, 0], clips)

    def own_tokens(batch, lens):  # each clip's class tokens and the tokens of its own patches
        tokens = classifier.extract_features(batch, lens)
        encoder = classifier.mods.embedding_model.model.encoder
        frames = classifier.mods.compute_features.real_frames((lens * batch.shape[1]).round())
        own = encoder.own_patches(frames, classifier.mods.compute_features(batch, lens).shape[1])
        return [torch.cat([row[:2], row[2:][mask]]) for row, mask in zip(tokens, own)]

    _assert_invariant(own_tokens, clips)


def test_the_onnx_export_does_not_depend_on_the_batch(clips, inference_folder):
    export_extra("onnxruntime")
    export_extra("onnx")
    source = load_export_source(inference_folder / "model")
    export_onnx(source, inference_folder / "onnx")
    classifier = ONNXAudioClassifier.from_folder(inference_folder / "onnx", threads=1)
    _assert_invariant(lambda batch, lens: classifier.classify_batch(batch, lens)[0], clips)
    _assert_invariant(lambda batch, lens: classifier.encode_batch(batch, lens)[:, 0], clips)
    # And it agrees with torch, clip by clip.
    torch_classifier = SSASTAudioClassifier.from_hparams(
        source=str(inference_folder / "model"), savedir=str(inference_folder / "loaded")
    )
    batch = torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)
    lens = torch.tensor([wav.numel() / batch.shape[1] for wav in clips])
    expected = torch_classifier.classify_batch(batch, lens)[0]
    assert (classifier.classify_batch(batch, lens)[0] - expected).abs().max() < TOLERANCE


@pytest.mark.slow
def test_the_in_run_test_figure_is_what_classify_file_gives(shared_dir, tmp_path):
    """The example of the issue: a custom.yaml model's in-run test accuracy and classify_file.

    FSDD speaker identification (6 speakers) in variable-length mode, with batches of
    clips of several lengths; the run's test accuracy, its per-class report, the same
    evaluation under dynamic batching, and ``classify_file`` clip by clip agree exactly.
    """
    from hyperpyyaml import load_hyperpyyaml

    from ssast_sb.brains.finetune import run_classification

    data = shared_dir / "data" / "kws_sid_fsdd"
    with open(data / "manifest.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    manifests = {}
    for split, every in (("train", 4), ("valid", 6), ("test", 3)):
        path = tmp_path / f"{split}.csv"
        with open(path, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(["ID", "duration", "wav", "label"])
            for row in [row for row in rows if row["split"] == split][::every]:
                wav = data / row["path"]
                writer.writerow([wav.stem, row["duration"], wav, row["speaker"]])
        manifests[split] = str(path)
    overrides = {
        "data": str(data),
        "output_folder": str(tmp_path / "run"),
        "model_size": "tiny",
        "patch_shape": "frame",
        "tstride": 2,
        "target_frames": 80,
        "norm_mean": -6.85,
        "norm_std": 5.57,
        "num_classes": 6,
        "multi_label": False,
        "loss": "ce",
        "max_train_crop_s": 0.8,
        "number_of_epochs": 2,
        "lr": 5.0e-4,
        "dataloader_opts": {"batch_size": 16, "num_workers": 0},
    }
    opts = {"device": "cpu", "noprogressbar": True}

    def run(**more):
        with open(ROOT / "hparams" / "custom.yaml", encoding="utf-8") as stream:
            hparams = load_hyperpyyaml(stream, {**overrides, **more})
        return run_classification(hparams, opts, manifests)

    results = run()
    report = (tmp_path / "run" / "per_class_report.txt").read_text()
    # The finished run evaluated again with batches grouped by duration: the same figures.
    again = run(dynamic_batching=True, max_batch_length_s=6)
    assert again["test"]["acc"] == results["test"]["acc"]
    assert (tmp_path / "run" / "per_class_report.txt").read_text() == report
    # classify_file, one clip at a time, gives every clip's prediction of the run.
    classifier = SSASTAudioClassifier.from_hparams(
        source=str(tmp_path / "run" / "inference"), savedir=str(tmp_path / "loaded")
    )
    with open(manifests["test"], newline="", encoding="utf-8") as stream:
        test = list(csv.DictReader(stream))
    hits = [classifier.classify_file(row["wav"])[3][0] == row["label"] for row in test]
    assert sum(hits) / len(hits) == pytest.approx(results["test"]["acc"], abs=1e-9)
