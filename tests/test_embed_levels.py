"""Clip and frame embeddings of any layer, checked against the encoder called directly.

The model is each released-format tiny reference checkpoint of the original code
(random init, 12 blocks, 1024 frames), used without fine-tuning; the audio is
real FSDD and ESC-10 clips. The expected values are computed here, by hand:
the fbank normalised with AudioSet statistics, an encoder built for the clip's
own whole patch columns with the first columns of the checkpoint's position
embedding (no ``variable_length`` code), and the tokens pooled or reshaped to
``(f_dim, t_dim, D)`` explicitly.
"""

import csv
import dataclasses
import math

import pytest
import soundfile as sf
import torch
from conftest import load_reference

from ssast_sb.checkpoints import encoder_from_original
from ssast_sb.data.audio import load_audio
from ssast_sb.embed import load_embeddings
from ssast_sb.embed import main as embed_main
from ssast_sb.encoder import SSASTEncoder
from ssast_sb.features import SSASTEncoderInterface
from ssast_sb.frontend import NORM_STATS, kaldi_fbank

MEAN, STD = NORM_STATS["audioset"]
PAD_VALUE = (0.0 - MEAN) / (2 * STD)  # zero fbank after normalisation, as the original pads
DEPTH = 12


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=["patch", "frame"])
def reference(request, reference_dir, tmp_path_factory):
    """The released-format checkpoint, its encoder (loaded directly) and the interface."""
    state = load_reference(reference_dir / f"tiny_{request.param}_seed0.pt")["pretrain_state_dict"]
    path = tmp_path_factory.mktemp(request.param) / f"SSAST-Tiny-{request.param}.pth"
    torch.save(state, path)
    encoder = encoder_from_original(path)[0].eval()
    return path, encoder, SSASTEncoderInterface.from_checkpoint(path)


def rows_of(shared_dir, name):
    folder = shared_dir / "data" / name
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as stream:
        return [dict(row, file=folder / row["path"]) for row in csv.DictReader(stream)]


@pytest.fixture(scope="module")
def clips(shared_dir):
    """Four FSDD digits of different lengths and one 5 s ESC-10 clip, as 16 kHz waveforms."""
    fsdd = sorted(rows_of(shared_dir, "kws_sid_fsdd")[:40], key=lambda row: row["duration"])
    chosen = [fsdd[0], fsdd[13], fsdd[26], fsdd[-1], rows_of(shared_dir, "audio_events_esc10")[0]]
    return [load_audio(row["file"]) for row in chosen]


def features(wav):
    """Normalised fbank of a clip, by hand: ``(fbank - mean) / (2 std)``."""
    return (kaldi_fbank(wav) - MEAN) / (2 * STD)


def own_length_encoder(encoder, columns):
    """The checkpoint's encoder at ``columns`` time columns: the first of its position embedding."""
    config = encoder.config
    frames = (columns - 1) * config.tstride + config.tshape
    short = SSASTEncoder(dataclasses.replace(config, input_tdim=frames, variable_length=False))
    f_dim, t_dim = encoder.grid
    state = encoder.state_dict()
    grid = state["pos_embed"][:, 2:].reshape(1, f_dim, t_dim, -1)[:, :, :columns]
    state["pos_embed"] = torch.cat(
        [state["pos_embed"][:, :2], grid.reshape(1, -1, grid.shape[-1])], 1
    )
    short.load_state_dict(state)
    return short.eval(), frames


@torch.no_grad()
def direct(encoder, wav):
    """Every block's tokens, the final tokens and the real columns of one clip alone."""
    fbank = features(wav)[: encoder.config.input_tdim]
    columns = min(encoder.grid[1], math.ceil(fbank.shape[0] / encoder.config.tstride))
    short, frames = own_length_encoder(encoder, columns)
    padded = torch.nn.functional.pad(fbank, (0, 0, 0, frames - fbank.shape[0]), value=PAD_VALUE)
    tokens, layers = short(padded.unsqueeze(0), return_layers=True)
    return [layer[0] for layer in layers], tokens[0], columns


def by_frequency_rows(tokens, f_dim):
    """``(f_dim, t_dim, D)`` patch tokens (frequency-major order) of ``(2 + N, D)`` tokens."""
    return tokens[2:].reshape(f_dim, -1, tokens.shape[-1])


def padded_batch(wavs):
    batch = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
    return batch, torch.tensor([wav.numel() / batch.shape[1] for wav in wavs])


def test_clip_embeddings_of_every_layer_match_the_encoder_called_directly(reference, clips):
    _, encoder, embedder = reference
    batch, lens = padded_batch(clips)
    expected = [direct(encoder, wav) for wav in clips]  # each clip alone, at its own length

    every = embedder.encode_batch(batch, lens, layer="all")
    assert every.shape == (len(clips), DEPTH, 192)
    for block in range(DEPTH):
        means = torch.stack([layers[block][2:].mean(0) for layers, _, _ in expected])
        torch.testing.assert_close(every[:, block], means, atol=2e-5, rtol=1e-4)
    for layer in (3, -1):
        torch.testing.assert_close(embedder.encode_batch(batch, lens, layer=layer), every[:, layer])
    cls = embedder.encode_batch(batch, lens, layer=3, pooling="cls")
    classes = torch.stack([layers[3][:2].mean(0) for layers, _, _ in expected])
    torch.testing.assert_close(cls, classes, atol=2e-5, rtol=1e-4)

    last = embedder.encode_batch(batch, lens)  # default: the final LayerNorm output
    torch.testing.assert_close(last, embedder.encode_batch(batch, lens, layer="last"))
    finals = torch.stack([tokens[2:].mean(0) for _, tokens, _ in expected])
    torch.testing.assert_close(last, finals, atol=2e-5, rtol=1e-4)
    assert not torch.allclose(last, every[:, -1], atol=1e-3)


def test_frame_embeddings_average_the_frequency_rows(reference, clips):
    _, encoder, embedder = reference
    batch, lens = padded_batch(clips)
    frames, lengths = embedder.encode_frames(batch, lens, layer="all")
    f_dim, tstride = encoder.grid[0], encoder.config.tstride
    assert f_dim == (8 if encoder.config.fshape == 16 else 1)
    assert embedder.frame_hop_s == pytest.approx(tstride * 0.01)
    for row, wav in enumerate(clips):
        layers, tokens, columns = direct(encoder, wav)
        real_frames = 1 + (wav.numel() - 400) // 160
        assert lengths[row] == columns == math.ceil(real_frames / tstride)
        expected = torch.stack([by_frequency_rows(layer, f_dim).mean(0) for layer in layers])
        assert expected.shape == (DEPTH, columns, 192)
        torch.testing.assert_close(frames[row, :, :columns], expected, atol=2e-5, rtol=1e-4)
        assert not frames[row, :, columns:].any()  # zero after the row's length
    last, last_lengths = embedder.encode_frames(batch, lens)
    assert torch.equal(last_lengths, lengths)
    layers, tokens, columns = direct(encoder, clips[1])
    final = by_frequency_rows(tokens, f_dim).mean(0)
    torch.testing.assert_close(last[1, :columns], final, atol=2e-5, rtol=1e-4)
    block, _ = embedder.encode_frames(batch, lens, layer=-3)
    torch.testing.assert_close(block, frames[:, DEPTH - 3])


def test_long_files_are_windows_averaged_or_concatenated_in_time(reference, shared_dir, tmp_path):
    path, encoder, _ = reference
    fsdd = rows_of(shared_dir, "kws_sid_fsdd")
    wav = torch.cat([load_audio(row["file"]) for row in fsdd[:6]])
    sf.write(tmp_path / "digits.wav", wav.numpy(), 16000)
    argv = ["--model", str(path), "--input", str(tmp_path), "--window-s", "0.64", "--layer", "2"]
    clip = embed_main([*argv, "--output", str(tmp_path / "clip.pt")])
    frames = embed_main([*argv, "--output", str(tmp_path / "frames.pt"), "--level", "frame"])

    # Windows of 64 frames whose frames are the clip's own, each embedded alone by hand.
    window_samples, hop = 400 + 63 * 160, 64 * 160
    windows = [wav[start : start + window_samples] for start in range(0, wav.numel() - 400, hop)]
    assert len(windows) >= 3 and clip["num_windows"].tolist() == [len(windows)]
    alone = [direct(encoder, window) for window in windows]
    means = torch.stack([layers[2][2:].mean(0) for layers, _, _ in alone])
    torch.testing.assert_close(clip["embeddings"][0], means.mean(0), atol=2e-5, rtol=1e-4)

    f_dim, tstride = encoder.grid[0], encoder.config.tstride
    sequence = torch.cat([by_frequency_rows(layers[2], f_dim).mean(0) for layers, _, _ in alone])
    total_frames = 1 + (wav.numel() - 400) // 160
    assert frames["lengths"].tolist() == [math.ceil(total_frames / tstride)] == [len(sequence)]
    torch.testing.assert_close(frames["embeddings"][0], sequence, atol=2e-5, rtol=1e-4)

    ids, saved, meta = load_embeddings(tmp_path / "frames.pt", with_meta=True)
    assert ids == ["digits"] and torch.equal(saved[0], frames["embeddings"][0])
    assert meta["hop_s"] == pytest.approx(tstride / 100)
    assert meta["frame_rate_hz"] == pytest.approx(100 / tstride)
    assert (meta["level"], meta["layer"], meta["pooling"], meta["window_frames"]) == (
        "frame",
        2,
        None,
        64,
    )
    data = torch.load(tmp_path / "frames.pt", weights_only=True)
    assert data["lengths"].tolist() == frames["lengths"].tolist()


def test_pad_to_input_pads_to_the_full_input_as_the_original(reference, clips):
    path, encoder, embedder = reference
    padded_embedder = SSASTEncoderInterface.from_checkpoint(path, pad_to_input=True)
    wav = clips[1]
    fbank = features(wav)
    full = torch.nn.functional.pad(fbank, (0, 0, 0, 1024 - fbank.shape[0]), value=PAD_VALUE)
    with torch.no_grad():
        tokens, layers = encoder(full.unsqueeze(0), return_layers=True)
    # The original's ft_avgtok: every patch token of the padded input averaged.
    embedding = padded_embedder.encode_batch(wav.unsqueeze(0), layer=4)
    torch.testing.assert_close(embedding[0], layers[4][0, 2:].mean(0), atol=2e-5, rtol=1e-4)
    own = embedder.encode_batch(wav.unsqueeze(0), layer=4)
    assert not torch.allclose(embedding, own, atol=1e-3)
    # Frames: those of real audio only, from the padded input's tokens.
    frames, lengths = padded_embedder.encode_frames(wav.unsqueeze(0))
    f_dim = encoder.grid[0]
    expected = by_frequency_rows(tokens[0], f_dim).mean(0)[: lengths[0]]
    assert lengths.tolist() == [direct(encoder, wav)[2]]
    torch.testing.assert_close(frames[0], expected, atol=2e-5, rtol=1e-4)
