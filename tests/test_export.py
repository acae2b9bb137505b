"""Export to Hugging Face's AST and to ONNX: strict loading and parity on real clips.

The models are the original code's random-init tiny checkpoints
(``../shared/reference``), adapted to fine-tuning grids as fine-tuning does, some
with a random head in an inference folder; the clips are ESC-10 and FSDD audio
from ``../shared/data``. Every exported model must give our outputs within 1e-4.
The tests skip when the ``export`` extra is not installed (CI installs it).
"""

import csv
import json
import subprocess
import sys

import pytest
import torch
from speechbrain.dataio.encoder import CategoricalEncoder

from ssast_sb.checkpoints import encoder_from_original
from ssast_sb.data.audio import load_audio
from ssast_sb.encoder import pool_tokens
from ssast_sb.export.__main__ import main as export_main
from ssast_sb.export.source import load_export_source
from ssast_sb.features import SSASTEncoderInterface
from ssast_sb.frontend import SSASTFbank
from ssast_sb.inference import SSASTAudioClassifier, export_inference_folder
from ssast_sb.models import LayerWeightedClassifier, SSASTClassifier, adapt_encoder
from tests.conftest import export_extra, load_reference

transformers = export_extra("transformers")
onnxruntime = export_extra("onnxruntime")

from ssast_sb.export.hf import HEAD_FILE, HFExportError  # noqa: E402
from ssast_sb.onnx_inference import ONNXAudioClassifier, ONNXEncoderInterface  # noqa: E402

TOLERANCE = 1e-4
LABELS = ["dog", "rain", "sea", "baby"]
MEAN, STD = -5.0, 4.0


@pytest.fixture(scope="module")
def checkpoints(reference_dir, tmp_path_factory):
    """The reference pretraining checkpoints saved as ``.pth`` files: {shape: path}."""
    folder = tmp_path_factory.mktemp("checkpoints")
    paths = {}
    for shape in ("patch", "frame"):
        dump = load_reference(reference_dir / f"tiny_{shape}_seed0.pt")
        paths[shape] = folder / f"tiny_{shape}.pth"
        torch.save(dump["pretrain_state_dict"], paths[shape])
    return paths


@pytest.fixture(scope="module")
def clips(shared_dir):
    """Five real clips (16 kHz): three ESC-10 events of 5 s, two short FSDD digits."""
    paths = []
    for task, split, count in (("audio_events_esc10", "valid", 3), ("kws_sid_fsdd", "test", 2)):
        with open(shared_dir / "data" / task / "manifest.csv", encoding="utf-8") as stream:
            rows = [row for row in csv.DictReader(stream) if row["split"] == split]
        paths += [shared_dir / "data" / task / row["path"] for row in rows[::37][:count]]
    assert len(paths) == 5
    return [(path, load_audio(path, 16000)) for path in paths]


def random_head(model, seed=0):
    """Gives a classifier's head random weights large enough to make logits differ."""
    generator = torch.Generator().manual_seed(seed)
    for name, parameter in model.named_parameters():
        if not name.startswith("encoder."):
            parameter.data = torch.randn(parameter.shape, generator=generator) * 0.5
    return model.eval()


def inference_folder(path, checkpoint, head, frames=256, variable_length=False, pool_real=False):
    """An inference folder: the checkpoint at stride 10 (patch) or 1 (frame), a random head."""
    pretrained, _ = encoder_from_original(checkpoint)
    strides = (10, 10) if pretrained.config.fshape == 16 else (128, 1)
    encoder = adapt_encoder(pretrained, *strides, frames, variable_length=variable_length)
    if head == "layer_weighted":
        model = LayerWeightedClassifier(encoder, len(LABELS), projector_dim=32)
    else:
        model = SSASTClassifier(encoder, len(LABELS), pooling=head)
    labels = CategoricalEncoder()
    labels.update_from_iterable(LABELS)
    frontend = SSASTFbank(frames, MEAN, STD, variable_length=variable_length)
    export_inference_folder(random_head(model), labels, frontend, path, pool_real_audio=pool_real)
    return path


def ours(folder, tmp_path):
    """The torch interface of an inference folder."""
    return SSASTAudioClassifier.from_hparams(source=str(folder), savedir=str(tmp_path / "ours"))


def hf_inputs(folder, clips):
    """Hugging Face's features of the clips, by the exported ``ASTFeatureExtractor``."""
    extractor = transformers.ASTFeatureExtractor.from_pretrained(folder)
    waves = [wave.numpy() for _, wave in clips]
    return extractor(waves, sampling_rate=16000, return_tensors="pt")["input_values"]


def test_hf_export_of_a_pretraining_checkpoint_at_a_chosen_grid(checkpoints, clips, tmp_path):
    summary = export_main(
        [str(checkpoints["patch"]), "--format", "hf", "--output", str(tmp_path / "hf"),
         "--fstride", "10", "--tstride", "10", "--input-tdim", "512"]
    )  # fmt: skip
    assert summary["class"] == "ASTModel" and summary["pooling"] == "mean"
    model, info = transformers.ASTModel.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert not info["mismatched_keys"]
    config = model.config
    assert (config.frequency_stride, config.time_stride, config.max_length) == (10, 10, 512)
    assert config.layer_norm_eps == 1e-6
    extractor = transformers.ASTFeatureExtractor.from_pretrained(tmp_path / "hf")
    assert extractor.max_length == 512
    assert extractor.mean == pytest.approx(-4.2677393) and extractor.std == pytest.approx(4.5689974)

    # The same model and features from our side: the original adaptation, padded input.
    source = load_export_source(checkpoints["patch"], fstride=10, tstride=10, input_tdim=512)
    frontend = SSASTFbank(512, source.mean, source.std)
    features = torch.cat([frontend(wave.unsqueeze(0), torch.ones(1)) for _, wave in clips])
    # Hugging Face's fbank does not remove the clip's mean first (Kaldi removes each
    # frame's): the same features up to float rounding (2e-4 measured).
    assert (hf_inputs(tmp_path / "hf", clips) - features).abs().max() < 1e-3
    with torch.no_grad():
        expected = source.encoder(features)
        hidden = model(input_values=features).last_hidden_state
    assert hidden.shape == expected.shape == (len(clips), 2 + 12 * 50, 192)
    assert (hidden - expected).abs().max() < TOLERANCE
    assert "mean of the patch tokens" in (tmp_path / "hf" / "README.md").read_text()


def test_hf_classifier_of_a_cls_pooled_inference_folder(checkpoints, clips, tmp_path):
    folder = inference_folder(tmp_path / "inference", checkpoints["patch"], "cls")
    export_main([str(folder), "--format", "hf", "--output", str(tmp_path / "hf")])
    model, info = transformers.ASTForAudioClassification.from_pretrained(
        tmp_path / "hf", output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert [model.config.id2label[i] for i in range(len(LABELS))] == LABELS
    extractor = transformers.ASTFeatureExtractor.from_pretrained(tmp_path / "hf")
    assert (extractor.mean, extractor.std, extractor.max_length) == (MEAN, STD, 256)

    classifier = ours(folder, tmp_path)
    waves = [wave[: 2 * 16000] for _, wave in clips]  # within the 2.56 s input: one window each
    features = torch.cat([classifier.mods.compute_features(w[None], torch.ones(1)) for w in waves])
    with torch.no_grad():
        logits = model(input_values=features).logits
    for wave, row in zip(waves, logits.log_softmax(-1)):
        expected = classifier.classify_waveform(wave)[0][0]
        assert (row - expected).abs().max() < TOLERANCE
    assert logits.std() > 0.1  # the head is not a constant


def test_hf_mean_pooled_classifier_exports_the_encoder_and_its_head(checkpoints, clips, tmp_path):
    from safetensors.torch import load_file

    folder = inference_folder(tmp_path / "inference", checkpoints["patch"], "mean")
    summary = export_main([str(folder), "--format", "hf", "--output", str(tmp_path / "hf")])
    assert summary["class"] == "ASTModel" and HEAD_FILE in summary["files"]
    model = transformers.ASTModel.from_pretrained(tmp_path / "hf").eval()
    head = load_file(str(tmp_path / "hf" / HEAD_FILE))
    assert set(head) == {"mlp_head.0.weight", "mlp_head.0.bias", "mlp_head.1.weight",
                         "mlp_head.1.bias"}  # fmt: skip
    classifier = ours(folder, tmp_path)
    waves = [wave[:16000] for _, wave in clips]
    inputs = torch.cat([classifier.mods.compute_features(w[None], torch.ones(1)) for w in waves])
    with torch.no_grad():
        pooled = model(input_values=inputs).last_hidden_state[:, 2:].mean(1)
        normed = torch.nn.functional.layer_norm(
            pooled, (pooled.shape[-1],), head["mlp_head.0.weight"], head["mlp_head.0.bias"]
        )
        logits = normed @ head["mlp_head.1.weight"].T + head["mlp_head.1.bias"]
        expected = classifier.mods.embedding_model.model(inputs)
    assert (logits - expected).abs().max() < TOLERANCE


def test_hf_refuses_frame_models_and_points_to_onnx(checkpoints, tmp_path):
    with pytest.raises(HFExportError, match=r"128x2 patches.*--format onnx"):
        export_main([str(checkpoints["frame"]), "--format", "hf", "--output", str(tmp_path)])


def test_one_token_models_are_refused_with_the_reason(checkpoints, tmp_path):
    state = torch.load(checkpoints["patch"], weights_only=True)
    state.pop("module.v.dist_token")
    state["module.v.pos_embed"] = state["module.v.pos_embed"][:, 1:]
    torch.save(state, tmp_path / "one_token.pth")
    for fmt in ("hf", "onnx"):
        with pytest.raises(ValueError, match="one class token .*hold two"):
            export_main([str(tmp_path / "one_token.pth"), "--format", fmt, "--output",
                         str(tmp_path / fmt)])  # fmt: skip


def windowed_long_clip(clips):
    """An ESC-10 clip with an FSDD digit appended: 5.3 s, three windows of a 2.56 s model."""
    return torch.cat([clips[0][1], clips[-1][1]])


@pytest.mark.parametrize("head", ["mean", "cls", "layer_weighted"])
def test_onnx_classifier_matches_ours_through_the_same_interface(
    checkpoints, clips, tmp_path, head
):
    folder = inference_folder(
        tmp_path / "inference", checkpoints["patch"], head, variable_length=True, pool_real=True
    )
    summary = export_main([str(folder), "--format", "onnx", "--output", str(tmp_path / "onnx")])
    assert summary["dynamic_time"] and summary["outputs"] == ["logits", "embedding"]
    metadata = json.loads((tmp_path / "onnx" / "ssast_onnx.json").read_text())
    assert metadata["labels"] == LABELS and metadata["mean"] == MEAN
    reference, exported = ours(folder, tmp_path), ONNXAudioClassifier.from_folder(tmp_path / "onnx")

    # classify_file: clips shorter than the input (a dynamic time axis) and longer (windows).
    long_clip = tmp_path / "long.wav"
    import soundfile

    soundfile.write(long_clip, windowed_long_clip(clips).numpy(), 16000)
    for path in [path for path, _ in clips] + [long_clip]:
        expected, theirs = reference.classify_file(path), exported.classify_file(path)
        assert (expected[0] - theirs[0]).abs().max() < TOLERANCE
        assert expected[3] == theirs[3]
    # Batches of 1 and of 3 rows of different lengths (dynamic batch; real-audio pooling).
    waves = [wave[: n * 4000] for (_, wave), n in zip(clips, (4, 2, 3))]
    wavs = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
    lens = torch.tensor([wave.numel() / wavs.shape[1] for wave in waves])
    for rows in (slice(0, 1), slice(0, 3)):
        for method in ("encode_batch", "classify_batch"):
            expected = getattr(reference, method)(wavs[rows], lens[rows])
            theirs = getattr(exported, method)(wavs[rows], lens[rows])
            expected, theirs = (
                out[0] if isinstance(out, tuple) else out for out in (expected, theirs)
            )
            assert expected.shape == theirs.shape
            assert (expected - theirs).abs().max() < TOLERANCE


def test_onnx_encoder_of_a_frame_checkpoint_matches_the_encoder_interface(
    checkpoints, clips, tmp_path
):
    summary = export_main(
        [str(checkpoints["frame"]), "--format", "onnx", "--output", str(tmp_path / "onnx"),
         "--tstride", "1", "--input-tdim", "400"]
    )  # fmt: skip
    assert summary["outputs"] == ["embedding", "tokens"] and summary["dynamic_time"]
    # AudioSet's mean is negative: the card folds its sign in.
    assert "(fbank + 4.267739) / (2 * 4.568997)" in (tmp_path / "onnx" / "README.md").read_text()
    exported = ONNXEncoderInterface.from_folder(tmp_path / "onnx")
    interface = SSASTEncoderInterface.from_checkpoint(
        checkpoints["frame"], tstride=1, input_tdim=400
    )
    # Rows of 2 s, 1.5 s and 0.5 s in one batch, and a 5 s clip (two windows of 4 s).
    waves = [wave[: n * 8000] for (_, wave), n in zip(clips, (4, 3, 1))]
    wavs = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
    lens = torch.tensor([wave.numel() / wavs.shape[1] for wave in waves])
    expected, theirs = interface.encode_batch(wavs, lens), exported.encode_batch(wavs, lens)
    assert theirs.shape == expected.shape == (3, 192)
    assert (theirs - expected).abs().max() < TOLERANCE
    for expected, theirs in zip(
        interface.encode_frames(wavs, lens), exported.encode_frames(wavs, lens)
    ):
        assert theirs.shape == expected.shape and (theirs - expected).abs().max() < TOLERANCE
    path = clips[0][0]
    for level in ("clip", "frame"):
        expected, theirs = (
            interface.encode_file(path, level=level),
            exported.encode_file(path, level=level),
        )
        assert (theirs - expected).abs().max() < TOLERANCE
    with pytest.raises(ValueError, match="last output only"):
        exported.encode_batch(wavs, lens, layer=3)
    with pytest.raises(ValueError, match="encoder export"):
        ONNXAudioClassifier.from_folder(tmp_path / "onnx")


def test_int8_quantization_shrinks_the_model_and_keeps_its_decisions(checkpoints, clips, tmp_path):
    folder = inference_folder(tmp_path / "inference", checkpoints["patch"], "mean")
    for name, extra in (("fp32", []), ("int8", ["--quantize", "int8"])):
        export_main([str(folder), "--format", "onnx", "--output", str(tmp_path / name), *extra])
    sizes = {name: (tmp_path / name / "model.onnx").stat().st_size for name in ("fp32", "int8")}
    assert sizes["int8"] < 0.4 * sizes["fp32"]
    fp32 = ONNXAudioClassifier.from_folder(tmp_path / "fp32")
    int8 = ONNXAudioClassifier.from_folder(tmp_path / "int8")
    waves = torch.stack([wave[:4000] for _, wave in clips])
    expected, theirs = fp32.classify_batch(waves), int8.classify_batch(waves)
    # Quantization moves the log-probabilities a little, not to another model's.
    assert (expected[0].exp() - theirs[0].exp()).abs().max() < 0.1
    assert json.loads((tmp_path / "int8" / "ssast_onnx.json").read_text())["quantized"] == "int8"


def test_export_refuses_quantizing_a_hf_export(checkpoints, tmp_path):
    with pytest.raises(SystemExit, match="--quantize applies to --format onnx"):
        export_main([str(checkpoints["patch"]), "--format", "hf", "--quantize", "int8",
                     "--output", str(tmp_path)])  # fmt: skip


def test_mean_pooling_of_tokens_is_what_the_hf_card_says():
    # The card's recipe for mean pooling is pool_tokens' (class tokens excluded).
    tokens = torch.randn(2, 7, 4)
    assert torch.allclose(pool_tokens(tokens, "mean"), tokens[:, 2:].mean(1))


def test_the_core_package_never_imports_the_export_extra():
    modules = [
        "ssast_sb",
        "ssast_sb.inference",
        "ssast_sb.features",
        "ssast_sb.embed",
        "ssast_sb.export.source",
        "ssast_sb.export.hf",
        "ssast_sb.export.onnx",
        "ssast_sb.export.__main__",
        "ssast_sb.onnx_inference",
        "ssast_sb.brains.finetune",
    ]
    code = "; ".join(f"import {name}" for name in modules) + (
        "; import sys; print(sorted(m for m in ('transformers', 'onnxruntime', 'onnx') "
        "if m in sys.modules))"
    )  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
