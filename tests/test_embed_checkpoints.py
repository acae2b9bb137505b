"""Any SSAST checkpoint embeds real audio without fine-tuning, from the command line or Python.

The checkpoints are the released-format tiny reference models of the original
code (random init), saved as a released ``.pth``, laid out as a pretraining run
(``pretrained/ssast_pretrained.pth`` and ``.ckpt``, a ``CKPT+*`` folder), and a
tiny inference folder; the audio is real FSDD and ESC-10 clips. Bad ``--model``
values fail with errors naming them, and a frozen checkpoint scores FSDD speaker
verification trials.
"""

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch
from conftest import load_reference
from speechbrain.dataio.encoder import CategoricalEncoder

from ssast_sb.checkpoints import CheckpointError, pretrain_model_from_original
from ssast_sb.data.audio import load_audio
from ssast_sb.embed import load_embeddings
from ssast_sb.embed import main as embed_main
from ssast_sb.encoder import EncoderConfig, SSASTEncoder, pool_tokens
from ssast_sb.features import SSASTEncoderInterface
from ssast_sb.frontend import NORM_STATS, SSASTFbank
from ssast_sb.inference import SSASTAudioClassifier, export_inference_folder
from ssast_sb.models import SSASTClassifier
from ssast_sb.verify import main as verify_main

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", params=["patch", "frame"])
def reference(request, reference_dir, tmp_path_factory):
    """``(shape, path of the released-format .pth, the whole dump)``."""
    dump = load_reference(reference_dir / f"tiny_{request.param}_seed0.pt")
    path = tmp_path_factory.mktemp(request.param) / f"SSAST-Tiny-{request.param}.pth"
    torch.save(dump["pretrain_state_dict"], path)
    return request.param, path, dump


def rows_of(shared_dir, name):
    folder = shared_dir / "data" / name
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as stream:
        return [dict(row, file=folder / row["path"]) for row in csv.DictReader(stream)]


@pytest.fixture(scope="module")
def fsdd(shared_dir):
    return rows_of(shared_dir, "kws_sid_fsdd")


@pytest.fixture(scope="module")
def clip_folder(shared_dir, fsdd, tmp_path_factory):
    """Three FSDD digits and two ESC-10 clips; one digit at 22.05 kHz, one clip at 8 kHz."""
    folder = tmp_path_factory.mktemp("clips")
    esc10 = rows_of(shared_dir, "audio_events_esc10")
    for row in [fsdd[0], fsdd[1], esc10[0]]:
        (folder / row["file"].name).write_bytes(row["file"].read_bytes())
    sf.write(folder / "digit_22k.wav", load_audio(fsdd[2]["file"], 22050).numpy(), 22050)
    sf.write(folder / "event_8k.wav", load_audio(esc10[1]["file"], 8000).numpy(), 8000)
    return folder


def test_released_checkpoint_embeds_real_clips_from_the_command_line(
    reference, clip_folder, tmp_path, capsys
):
    shape, path, _ = reference
    output = tmp_path / "emb.pt"
    result = embed_main(
        ["--model", str(path), "--input", str(clip_folder), "--output", str(output)]
    )
    assert sorted(result["ids"]) == sorted(p.stem for p in clip_folder.iterdir())
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f"5 embeddings of size 192 (0 clips windowed) -> {output}"
    )
    ids, embeddings, meta = load_embeddings(output, with_meta=True)
    assert ids == result["ids"] and embeddings.shape == (5, 192)
    assert torch.isfinite(embeddings).all() and torch.linalg.matrix_rank(embeddings) == 5
    grid = "grid 8x64" if shape == "patch" else "grid 1x512"
    assert grid in meta["encoder"] and "over 1024 frames" in meta["encoder"]
    assert (meta["model"], meta["layer"], meta["level"], meta["pooling"]) == (
        str(path),
        "last",
        "clip",
        "mean",
    )
    assert (meta["mean"], meta["std"]) == pytest.approx(NORM_STATS["audioset"])
    assert meta["pad_to_input"] is False and meta["pool_real_audio"] is True
    assert "hop_s" not in meta

    # The same from Python, file by file (any sample rate: load_audio resamples).
    embedder = SSASTEncoderInterface.from_checkpoint(path)
    for utt_id, embedding in zip(ids, embeddings):
        (file,) = clip_folder.glob(f"{utt_id}.*")
        torch.testing.assert_close(embedder.encode_file(file), embedding, atol=1e-5, rtol=1e-5)
        alone = embedder.encode_batch(load_audio(file).unsqueeze(0))[0]
        torch.testing.assert_close(alone, embedding, atol=1e-5, rtol=1e-5)

    everything = embed_main(
        ["--model", str(path), "--input", str(clip_folder), "--output", str(tmp_path / "all.npy")]
        + ["--layer", "all"]
    )
    npy_ids, stacked = load_embeddings(tmp_path / "all.npy")
    assert npy_ids == ids and stacked.shape == (5, 12, 192)
    assert everything["meta"]["layer"] == "all" and everything["meta"]["num_blocks"] == 12
    frames = embedder.encode_file(clip_folder / "event_8k.wav", level="frame")
    samples = load_audio(clip_folder / "event_8k.wav").numel()
    tstride = 16 if shape == "patch" else 2
    assert frames.shape == (-(-(1 + (samples - 400) // 160) // tstride), 192)


def test_the_output_maps_every_id_to_its_file_also_for_colliding_names(reference, fsdd, tmp_path):
    """Two class folders holding the same file name: hashed IDs, each mapped to its file."""
    _, path, _ = reference
    folder = tmp_path / "clips"
    for label, row in zip(("yes", "no"), fsdd[:2]):
        (folder / label).mkdir(parents=True)
        (folder / label / "take 1.wav").write_bytes(row["file"].read_bytes())
    model = ["--model", str(path), "--input", str(folder)]
    result = embed_main(model + ["--output", str(tmp_path / "emb.pt")])
    assert len(set(result["ids"])) == 2
    saved = torch.load(tmp_path / "emb.pt", weights_only=True)
    assert sorted(saved["paths"]) == sorted(str(file) for file in folder.glob("*/take 1.wav"))
    embedder = SSASTEncoderInterface.from_checkpoint(path)
    for file, embedding in zip(saved["paths"], saved["embeddings"]):
        torch.testing.assert_close(embedder.encode_file(file), embedding, atol=1e-5, rtol=1e-5)
    embed_main(model + ["--output", str(tmp_path / "emb.npy")])
    lines = (tmp_path / "emb.paths.txt").read_text(encoding="utf-8").splitlines()
    assert lines == saved["paths"]
    assert (tmp_path / "emb.ids.txt").read_text(encoding="utf-8").splitlines() == saved["ids"]


def test_the_commands_log_above_their_progress_bar(reference, clip_folder, tmp_path):
    """``embed`` shows its notices (a resampled file) on their own line, once per file."""
    _, path, _ = reference
    command = [sys.executable, "-m", "ssast_sb.embed", "--model", str(path)]
    command += ["--input", str(clip_folder), "--output", str(tmp_path / "emb.pt")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    # The bar is cleared (carriage return) before a line and drawn again after it.
    shown = [line.rsplit("\r", 1)[-1] for line in result.stderr.split("\n")]
    notices = [line for line in shown if "Resampling" in line]
    assert len(notices) == 2, result.stderr  # the 22.05 kHz digit and the 8 kHz clip
    assert all(line.startswith("ssast_sb.data.audio - Resampling ") for line in notices)


def pretraining_layouts(reference_path, root):
    """A pretraining run's exports of the reference model, and a SpeechBrain CKPT folder."""
    pretrained = root / "run" / "pretrained"
    pretrained.mkdir(parents=True)
    (pretrained / "ssast_pretrained.pth").write_bytes(reference_path.read_bytes())
    model, _ = pretrain_model_from_original(reference_path)
    torch.save(model.state_dict(), pretrained / "ssast_pretrained.ckpt")  # this package's layout
    ckpt = root / "run" / "save" / "CKPT+2024-01-01+00-00-00+00"
    ckpt.mkdir(parents=True)
    torch.save(model.state_dict(), ckpt / "model.ckpt")
    (ckpt / "CKPT.yaml").write_text("acc: 0.5\n")
    return [
        pretrained,
        pretrained / "ssast_pretrained.pth",
        pretrained / "ssast_pretrained.ckpt",
        ckpt,
    ]


def test_a_pretraining_runs_folders_and_files_load_the_same_encoder(reference, fsdd, tmp_path):
    _, path, _ = reference
    wav = load_audio(fsdd[3]["file"])
    expected = SSASTEncoderInterface.from_checkpoint(path).encode_batch(
        wav.unsqueeze(0), layer="all"
    )
    for source in pretraining_layouts(path, tmp_path):
        embedder = SSASTEncoderInterface.from_checkpoint(source)
        torch.testing.assert_close(embedder.encode_batch(wav.unsqueeze(0), layer="all"), expected)
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "digit.flac").write_bytes(fsdd[3]["file"].read_bytes())
    result = embed_main(
        ["--model", str(tmp_path / "run" / "pretrained"), "--input", str(clips)]
        + ["--output", str(tmp_path / "e.pt"), "--layer", "5"]
    )
    assert result["ids"] == ["digit"]
    torch.testing.assert_close(result["embeddings"][0], expected[0, 5], atol=1e-5, rtol=1e-5)


#: A grid of the original fine-tuning recipes per model, with its name in the dump.
GRIDS = {"patch": ("superb_1s", 10, 10, 100), "frame": ("sc35", 128, 1, 128)}


def test_another_grid_goes_through_the_original_adaptation(reference, fsdd):
    shape, path, dump = reference
    name, fstride, tstride, input_tdim = GRIDS[shape]
    embedder = SSASTEncoderInterface.from_checkpoint(
        path, fstride=fstride, tstride=tstride, input_tdim=input_tdim, norm_preset="speechcommands"
    )
    original = dump["ft"][name]
    delta = original["state_dict_delta"]
    # The position embedding is the one the original fine-tuning code makes for this grid ...
    torch.testing.assert_close(embedder.encoder.pos_embed, delta["module.v.pos_embed"])
    # ... and its encoder, with the original's head on top, gives the original's outputs.
    num_labels = delta["module.mlp_head.1.weight"].shape[0]
    head = torch.nn.Sequential(torch.nn.LayerNorm(192), torch.nn.Linear(192, num_labels))
    prefix = "module.mlp_head."
    head.load_state_dict({k.removeprefix(prefix): v for k, v in delta.items() if prefix in k})
    with torch.no_grad():
        pooled = pool_tokens(embedder.encoder(original["input"]), "mean")
        torch.testing.assert_close(head(pooled), original["ft_avgtok"], atol=1e-5, rtol=1e-5)

    meta = embedder.describe(level="frame")
    assert (meta["mean"], meta["std"]) == pytest.approx(NORM_STATS["speechcommands"])
    assert meta["hop_s"] == pytest.approx(tstride / 100)
    assert meta["window_frames"] == tstride * embedder.encoder.grid[1]
    wav = load_audio(fsdd[4]["file"])
    frames, lengths = embedder.encode_frames(wav.unsqueeze(0))
    assert lengths.tolist() == [
        min(embedder.encoder.grid[1], -(-(1 + (wav.numel() - 400) // 160) // tstride))
    ]
    with pytest.raises(ValueError, match="both mean and std"):
        SSASTEncoderInterface.from_checkpoint(path, mean=-4.0)
    custom = SSASTEncoderInterface.from_checkpoint(path, mean=-5.0, std=4.0)
    assert (custom.mods.compute_features.mean, custom.mods.compute_features.std) == (-5.0, 4.0)


def export_tiny_folder(folder):
    """A tiny fine-tuned model's inference folder (fixed 64-frame input, 3 labels)."""
    torch.manual_seed(0)
    config = EncoderConfig(embed_dim=16, depth=2, num_heads=2, input_tdim=64)
    labels = CategoricalEncoder()
    labels.update_from_iterable(["a", "b", "c"])
    model = SSASTClassifier(SSASTEncoder(config), 3)
    return export_inference_folder(model, labels, SSASTFbank(target_frames=64), folder)


def test_bad_models_fail_naming_them(reference, fsdd, tmp_path):
    _, path, _ = reference
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "digit.flac").write_bytes(fsdd[0]["file"].read_bytes())
    argv = ["--input", str(clips), "--output", str(tmp_path / "e.pt")]
    trials = tmp_path / "trials.txt"
    trials.write_text(f"1 {fsdd[0]['path']} {fsdd[1]['path']}\n")
    verify_argv = ["--trials", str(trials), "--data", str(fsdd[0]["file"].parents[1])]
    missing = tmp_path / "SSAST-Base-Frame-400.pth"
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    empty = tmp_path / "empty folder"
    empty.mkdir()
    folder = export_tiny_folder(tmp_path / "inference")
    cases = [
        (missing, FileNotFoundError, "does not exist"),
        (text, CheckpointError, "cannot be read: it is truncated or not a PyTorch checkpoint"),
        (empty, FileNotFoundError, "is a folder without hyperparams.yaml"),
        (folder / "model.ckpt", CheckpointError, "is a fine-tuned classifier"),
    ]
    for model, error, message in cases:
        for main, options in ((embed_main, argv), (verify_main, verify_argv)):
            with pytest.raises(error, match=re.escape(str(model)) + ".*" + re.escape(message)):
                main(["--model", str(model), *options])
    assert not (tmp_path / "e.pt").exists()
    with pytest.raises(
        ValueError, match=re.escape(f"{folder} is an inference folder") + ".*tstride"
    ):
        embed_main(["--model", str(folder), "--tstride", "1", *argv])
    with pytest.raises(ValueError, match="the encoder has 12 blocks"):
        embed_main(["--model", str(path), "--layer", "12", *argv])
    with pytest.raises(SystemExit):
        embed_main(["--model", str(path), "--layer", "middle", *argv])
    with pytest.raises(SystemExit, match="--level frame writes one sequence per file to a .pt"):
        embed_main(
            ["--model", str(path), *argv[:2], "--output", str(tmp_path / "e.npy")]
            + ["--level", "frame"]
        )


def test_an_inference_folder_gives_frames_and_every_layer(fsdd, tmp_path):
    folder = export_tiny_folder(tmp_path / "inference")
    embedder = SSASTEncoderInterface.from_checkpoint(folder)
    assert embedder.pad_to_input  # fine-tuned on padded inputs: kept
    wav = load_audio(fsdd[5]["file"])
    classifier = SSASTAudioClassifier.from_hparams(source=str(folder), savedir=str(tmp_path / "sb"))
    tokens, layers = classifier.extract_features(wav.unsqueeze(0), return_layers=True)
    own = embedder.encode_batch(wav.unsqueeze(0))  # the model's own embedding, as its head sees it
    torch.testing.assert_close(own, classifier.encode_batch(wav.unsqueeze(0))[:, 0])
    every = embedder.encode_batch(wav.unsqueeze(0), layer="all")
    torch.testing.assert_close(every[0], torch.stack([layer[0, 2:].mean(0) for layer in layers]))
    frames, lengths = embedder.encode_frames(wav.unsqueeze(0), layer=1)
    columns = -(-(1 + (wav.numel() - 400) // 160) // 16)
    assert lengths.tolist() == [columns]
    expected = layers[1][0, 2:].reshape(8, 4, 16).mean(0)[:columns]
    torch.testing.assert_close(frames[0], expected)


def speaker_trials(fsdd, root, speakers=3, per_speaker=4):
    """Every pair of ``per_speaker`` test clips of ``speakers`` FSDD speakers, as a trial list."""
    chosen = {}
    for row in fsdd:
        if row["split"] == "test" and len(chosen.setdefault(row["speaker"], [])) < per_speaker:
            chosen[row["speaker"]].append(row)
    rows = [row for speaker in sorted(chosen)[:speakers] for row in chosen[speaker]]
    lines = [
        f"{int(a['speaker'] == b['speaker'])} {a['path']} {b['path']}"
        for i, a in enumerate(rows)
        for b in rows[i + 1 :]
    ]
    (root / "trials.txt").write_text("\n".join(lines) + "\n")
    return root / "trials.txt", rows


def test_verify_scores_trials_with_a_frozen_checkpoints_layer(reference, fsdd, tmp_path, capsys):
    _, path, _ = reference
    trials, rows = speaker_trials(fsdd, tmp_path)
    data = rows[0]["file"].parents[1]
    argv = ["--model", str(path), "--trials", str(trials), "--data", str(data)]
    result = verify_main([*argv, "--layer", "3"])
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed == (
        f"66 trials (no score normalisation): EER {100 * result['EER']:.2f}%, "
        f"minDCF(p_target=0.01, c_miss=1, c_fa=1, normalised) {result['minDCF']:.4f}"
    )
    assert 0.0 <= result["EER"] <= 1.0 and result["num_trials"] == 66
    assert result["meta"]["layer"] == 3

    # The scores are cosines of the block-3 embeddings that embed writes for the same files.
    embedder = SSASTEncoderInterface.from_checkpoint(path)
    embeddings = {row["path"]: embedder.encode_file(row["file"], layer=3) for row in rows}
    for (_, enrol, test), score in zip(result["trials"], result["scores"]):
        cosine = torch.nn.functional.cosine_similarity(embeddings[enrol], embeddings[test], dim=0)
        torch.testing.assert_close(score, cosine, atol=1e-5, rtol=1e-5)

    every = verify_main([*argv, "--layer", "all"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(every["layers"]) == 12 and len(lines) == 13
    assert lines[3] == f"layer 3: {printed}"
    torch.testing.assert_close(every["layers"][3]["scores"], result["scores"], atol=1e-5, rtol=1e-5)
    best = min(every["layers"], key=lambda metrics: metrics["EER"])
    assert lines[-1] == f"lowest EER: layer {best['layer']}, {100 * best['EER']:.2f}%"
    with pytest.raises(SystemExit, match="--scores writes the scores of one layer"):
        verify_main([*argv, "--layer", "all", "--scores", str(tmp_path / "s.txt")])
