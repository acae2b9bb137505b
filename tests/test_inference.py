"""Inference folders, embeddings and verification with a model fine-tuned on FSDD speakers.

One small SSAST is fine-tuned for speaker identification (6 FSDD speakers) by
``run_classification`` with the settings of ``tests/helpers/fsdd_speakers.yaml`` (the
original fine-tuning recipe, shortened); every test reuses it.
Its encoder (width 128, 3 blocks) starts from a random original-format
checkpoint at another input length, so the fold also goes through the
adaptation path of pretrained models.
"""

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest
import soundfile as sf
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.inference import EncoderClassifier

from ssast_sb.brains.finetune import run_classification
from ssast_sb.checkpoints import export_original
from ssast_sb.data.audio import load_audio
from ssast_sb.embed import load_embeddings
from ssast_sb.embed import main as embed_main
from ssast_sb.encoder import EncoderConfig, SSASTEncoder, pool_tokens
from ssast_sb.inference import SSASTAudioClassifier
from ssast_sb.models import SSASTPretrainModel
from ssast_sb.verify import main as verify_main
from ssast_sb.verify import verify
from ssast_sb.windows import window_bounds

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TARGET_FRAMES = 64  # 0.64 s: most FSDD digits fit, longer ones are cut
NUM_SPEAKERS = 6
SPLITS = ("train", "valid", "test")


def fsdd_rows(shared_dir):
    """FSDD manifest rows with absolute paths."""
    folder = shared_dir / "data" / "kws_sid_fsdd"
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    for row in rows:
        row["relative"] = row["path"]
        row["wav"] = str(folder / row["path"])
        row["ID"] = Path(row["path"]).stem
    return folder, rows


def write_manifest(rows, path, label=True):
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["ID", "duration", "wav", "label"] if label else ["ID", "duration", "wav"])
        for row in rows:
            fields = [row["ID"], row["duration"], row["wav"]]
            writer.writerow(fields + [row["speaker"]] if label else fields)
    return path


def fold_hparams(output, pretrained_path):
    """The YAML of this module's speaker-ID run, ``tests/helpers/fsdd_speakers.yaml``."""
    overrides = {"experiment_folder": str(output / "fold"), "pretrained_path": str(pretrained_path)}
    with open(ROOT / "tests" / "helpers" / "fsdd_speakers.yaml", encoding="utf-8") as stream:
        return load_hyperpyyaml(stream, overrides)


@pytest.fixture(scope="module")
def finetuned(shared_dir, tmp_path_factory):
    """Fine-tunes once; yields the inference folder, the in-memory model and held-out clips."""
    # The CI cores are shared: two threads per process stall each other (about 10x slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    output = tmp_path_factory.mktemp("fsdd_speakers")
    data_root, rows = fsdd_rows(shared_dir)
    splits = {split: [row for row in rows if row["split"] == split] for split in SPLITS}
    manifests = {
        "train": write_manifest(splits["train"], output / "train.csv"),
        "valid": write_manifest(splits["valid"][::5], output / "valid.csv"),
        "test": write_manifest(splits["test"], output / "test.csv"),
    }
    torch.manual_seed(0)
    config = EncoderConfig(
        embed_dim=128,
        depth=3,
        num_heads=2,
        fshape=128,
        tshape=2,
        fstride=128,
        tstride=2,
        input_tdim=128,
    )
    pretrained = SSASTPretrainModel(SSASTEncoder(config), num_masked=8)
    torch.save(export_original(pretrained), output / "init.pth")

    settings = fold_hparams(output, output / "init.pth")
    # The YAML's model, holding the exported (best) weights after the run.
    results = run_classification(settings, {"device": "cpu", "noprogressbar": True}, manifests)
    yield SimpleNamespace(
        folder=output / "fold" / "inference",
        model=settings["model"].eval(),
        frontend=settings["frontend"],
        results=results,
        data_root=data_root,
        held_out=splits["test"][::5],  # 10 clips per speaker, one per digit
        cohort=splits["train"][::20],
        output=output,
    )
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def classifier(finetuned):
    return SSASTAudioClassifier.from_hparams(
        source=str(finetuned.folder), savedir=str(finetuned.output / "loaded")
    )


def padded_batch(paths):
    wavs = [load_audio(path) for path in paths]
    batch = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
    return wavs, batch, torch.tensor([wav.numel() / batch.shape[1] for wav in wavs])


@torch.no_grad()
def in_memory_probabilities(finetuned, wavs):
    features = torch.stack(
        [finetuned.frontend.normalize(finetuned.frontend.raw_features(wav)) for wav in wavs]
    )
    return finetuned.model(features).softmax(dim=-1)


def test_reloaded_folder_matches_in_memory_model(finetuned, classifier):
    paths = [row["wav"] for row in finetuned.held_out[:6]]
    wavs, batch, lens = padded_batch(paths)
    expected = in_memory_probabilities(finetuned, wavs)
    log_probabilities, score, index, labels = classifier.classify_batch(batch, lens)
    torch.testing.assert_close(log_probabilities.exp(), expected, atol=1e-6, rtol=1e-5)
    assert torch.equal(index, expected.argmax(-1)) and len(labels) == len(paths)

    # SpeechBrain's EncoderClassifier computes features without lengths, so it gets an
    # unpadded batch: every clip cut to the shortest one.
    shortest = min(wav.numel() for wav in wavs)
    same_length = torch.stack([wav[:shortest] for wav in wavs])
    expected = in_memory_probabilities(finetuned, list(same_length))
    speechbrain_classifier = EncoderClassifier.from_hparams(
        source=str(finetuned.folder), savedir=str(finetuned.output / "loaded_sb")
    )
    log_probabilities, _, sb_index, sb_labels = speechbrain_classifier.classify_batch(same_length)
    torch.testing.assert_close(log_probabilities.exp(), expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(classifier.classify_batch(same_length)[0].exp(), expected)
    assert sb_labels == classifier.classify_batch(same_length)[3]


def test_classify_file_beats_chance_on_held_out_speakers(finetuned, classifier):
    hits = [
        classifier.classify_file(row["wav"])[3][0] == row["speaker"] for row in finetuned.held_out
    ]
    accuracy = sum(hits) / len(hits)
    # classify_batch of a whole clip: its first TARGET_FRAMES frames only.
    first_window = [
        classifier.classify_batch(load_audio(row["wav"]).unsqueeze(0))[3][0] == row["speaker"]
        for row in finetuned.held_out
    ]
    print(
        f"held-out speaker accuracy {accuracy:.3f} on {len(hits)} clips "
        f"(first {TARGET_FRAMES} frames only: {sum(first_window) / len(hits):.3f}; "
        f"chance {1 / NUM_SPEAKERS:.3f}); fold results {finetuned.results}"
    )
    assert accuracy >= 0.5


def test_encode_batch_and_extract_features(finetuned, classifier):
    _, batch, lens = padded_batch([row["wav"] for row in finetuned.held_out[:3]])
    embeddings = classifier.encode_batch(batch, lens)
    assert embeddings.shape == (3, 1, 128)

    tokens, layers = classifier.extract_features(batch, lens, return_layers=True)
    assert tokens.shape == (3, 2 + TARGET_FRAMES // 2, 128)
    assert len(layers) == 3 and all(layer.shape == tokens.shape for layer in layers)
    # The model's embedding is the mean of its patch tokens (pooling "mean").
    torch.testing.assert_close(pool_tokens(tokens, "mean"), embeddings.squeeze(1))
    only_tokens = classifier.extract_features(batch, lens)
    torch.testing.assert_close(only_tokens, tokens)


def write_trials(rows, path):
    """Every pair of clips: same speaker -> target trial."""
    lines = [
        f"{int(a['speaker'] == b['speaker'])} {a['relative']} {b['relative']}"
        for i, a in enumerate(rows)
        for b in rows[i + 1 :]
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_verify_separates_speakers(finetuned, classifier, capsys):
    trials = write_trials(finetuned.held_out, finetuned.output / "trials.txt")
    plain = verify(classifier, str(trials), finetuned.data_root, progress=False)
    assert plain["num_trials"] == 60 * 59 // 2 and int(plain["labels"].sum()) == 6 * 45

    cohort = write_manifest(finetuned.cohort, finetuned.output / "cohort.csv", label=False)
    argv = ["--model", str(finetuned.folder), "--trials", str(trials)]
    argv += ["--data", str(finetuned.data_root), "--cohort", str(cohort), "--cohort-size", "20"]
    normed = verify_main(argv)
    printed = capsys.readouterr().out
    assert "EER" in printed and "AS-norm, top 20" in printed
    assert f"minDCF(p_target=0.01, c_miss=1, c_fa=1, normalised) {normed['minDCF']:.4f}" in printed
    print(
        f"verification EER {plain['EER']:.3f} (AS-norm {normed['EER']:.3f}), "
        f"minDCF {plain['minDCF']:.4f} (AS-norm {normed['minDCF']:.4f}); chance EER 0.5"
    )
    assert plain["EER"] < 0.3 and normed["EER"] < 0.3
    # Normalised: 1.0 is the cost of rejecting every trial, the raw value is 0.01 times it.
    assert 0.0 <= normed["minDCF"] <= 1.0
    assert normed["minDCF_raw"] == pytest.approx(0.01 * normed["minDCF"])
    assert not torch.equal(plain["scores"], normed["scores"])


def run_embed(finetuned, source, output, *options):
    """``python -m ssast_sb.embed`` in this process."""
    argv = ["--model", str(finetuned.folder), "--input", str(source), "--output", str(output)]
    return embed_main([*argv, *options])


def test_embed_cli_windows_long_files(finetuned, classifier, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    waveforms = {row["ID"]: load_audio(row["wav"]) for row in finetuned.held_out[:4]}
    long_wav = torch.cat([load_audio(row["wav"]) for row in finetuned.held_out[10:16]])
    waveforms["long"] = long_wav
    for utt_id, wav in waveforms.items():
        sf.write(clips / f"{utt_id}.wav", wav.numpy(), 16000)
    bounds = window_bounds(long_wav.numel(), TARGET_FRAMES)
    assert len(bounds) >= 3

    result = run_embed(finetuned, clips, tmp_path / "emb.pt", "--batch-seconds", "2")
    ids, embeddings = load_embeddings(tmp_path / "emb.pt")
    assert sorted(ids) == sorted(waveforms) and embeddings.shape == (5, 128)
    torch.testing.assert_close(embeddings, result["embeddings"])
    windows_per_clip = [len(window_bounds(waveforms[i].numel(), TARGET_FRAMES)) for i in ids]
    assert result["num_windows"].tolist() == windows_per_clip

    # The long clip's embedding is the mean of its windows' embeddings, each window embedded alone.
    with torch.no_grad():
        windows = [classifier.encode_batch(long_wav[a:b].unsqueeze(0)) for a, b in bounds]
    torch.testing.assert_close(embeddings[ids.index("long")], torch.cat(windows).mean(dim=0)[0])

    # The final-LayerNorm tokens, mean-pooled, are this model's own embedding.
    run_embed(finetuned, clips, tmp_path / "last.npy", "--layer", "last", "--pooling", "mean")
    npy_ids, last = load_embeddings(tmp_path / "last.npy")
    assert npy_ids == ids and (tmp_path / "last.ids.txt").exists()
    torch.testing.assert_close(last, embeddings)

    run_embed(finetuned, clips, tmp_path / "block0.pt", "--layer", "0", "--pooling", "cls")
    _, block0 = load_embeddings(tmp_path / "block0.pt")
    assert block0.shape == (5, 128) and not torch.allclose(block0, embeddings)
