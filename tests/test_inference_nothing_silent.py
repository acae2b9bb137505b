"""Inference, embeddings and verification say what they do to long, short and bad clips.

Every input is a copy of clips of the shared data (ESC-10, FSDD), re-laid out or
corrupted inside the test; the model is a tiny random SSAST exported as an
inference folder, whose outputs are compared with what its windows give alone.
"""

import csv
import logging
import math
import re

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.utils.metric_stats import minDCF

from ssast_sb.data.audio import AudioError, load_audio
from ssast_sb.embed import embed_files, load_embeddings
from ssast_sb.embed import main as embed_main
from ssast_sb.encoder import EncoderConfig, SSASTEncoder
from ssast_sb.frontend import SSASTFbank
from ssast_sb.inference import SSASTAudioClassifier, export_inference_folder
from ssast_sb.models import SSASTClassifier
from ssast_sb.verify import main as verify_main
from ssast_sb.verify import read_trials, verify

TARGET_FRAMES = 512  # 5.12 s, the ESC-50 input
FRAMES_PER_WINDOW_HOP = TARGET_FRAMES * 160
WINDOW_SPAN = 400 + (TARGET_FRAMES - 1) * 160


pytestmark = pytest.mark.usefixtures("one_thread")


def read_rows(shared_dir, name):
    folder = shared_dir / "data" / name
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    for row in rows:
        row["file"] = folder / row["path"]
    return rows


@pytest.fixture(scope="module")
def esc10(shared_dir):
    return read_rows(shared_dir, "audio_events_esc10")


@pytest.fixture(scope="module")
def fsdd(shared_dir):
    return read_rows(shared_dir, "kws_sid_fsdd")


def export_tiny(folder, multi_label=False):
    torch.manual_seed(0)
    config = EncoderConfig(embed_dim=16, depth=1, num_heads=2, input_tdim=TARGET_FRAMES)
    labels = CategoricalEncoder()
    labels.update_from_iterable(["Dog bark", "Rain", "Rooster"])
    model = SSASTClassifier(SSASTEncoder(config), 3)
    frontend = SSASTFbank(target_frames=TARGET_FRAMES)
    return export_inference_folder(model, labels, frontend, folder, multi_label=multi_label)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("tiny_single_label"))


@pytest.fixture(scope="module")
def multi_label_folder(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("tiny_multi_label"), multi_label=True)


def load(folder, tmp_path):
    """A fresh classifier: its once-per-classifier warnings not yet given."""
    return SSASTAudioClassifier.from_hparams(source=str(folder), savedir=str(tmp_path / "sb"))


def concatenated_copy(rows, path):
    """The clips of ``rows`` one after the other, written to ``path`` (16 kHz WAV)."""
    wav = torch.cat([load_audio(row["file"]) for row in rows])
    sf.write(path, wav.numpy(), 16000)
    return path, load_audio(path)


def window_by_window(classifier, wav):
    """Log of the frame-weighted mean of the probabilities of each window classified alone."""
    log_probs, weights = [], []
    for start in range(0, wav.numel(), FRAMES_PER_WINDOW_HOP):
        if start and wav.numel() - start < 400:  # no frame starts here
            break
        window = wav[start : start + WINDOW_SPAN]
        log_probs.append(classifier.classify_batch(window.unsqueeze(0))[0][0])
        weights.append(min(TARGET_FRAMES, max(1, 1 + (window.numel() - 400) // 160)))
    probabilities = torch.stack(log_probs).exp()
    weights = torch.tensor(weights, dtype=torch.float)
    return (probabilities * weights.unsqueeze(1)).sum(0).div(weights.sum()).log(), len(weights)


def warnings_of(caplog, logger_name):
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == logger_name and record.levelno >= logging.WARNING
    ]


# --- A. Long clips are classified by windows, and the classifier says so ----------------------


def test_classify_file_averages_the_windows_of_a_three_minute_clip(esc10, folder, tmp_path, caplog):
    path, wav = concatenated_copy(esc10[:36], tmp_path / "three minutes.wav")
    classifier = load(folder, tmp_path)
    with caplog.at_level(logging.WARNING, logger="ssast_sb.inference"):
        out_prob, score, index, labels = classifier.classify_file(path, windows_per_batch=8)
    assert warnings_of(caplog, "ssast_sb.inference") == [
        f"Clip {path} is 180.0 s, the model's input is 5.12 s: classified as the mean of 36 "
        "windows' probabilities, weighted by their frames of audio (said once per classifier)"
    ]
    expected, num_windows = window_by_window(classifier, wav)
    assert num_windows == 36
    assert out_prob.shape == (1, 3)
    torch.testing.assert_close(out_prob[0], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_prob.exp().sum(), torch.tensor(1.0))
    assert index.item() == expected.argmax().item() and score.item() == out_prob.max().item()
    assert labels[0] in ("Dog bark", "Rain", "Rooster")
    # Not the first 5.12 s alone, which is what the frontend's cut gave before.
    first_window = classifier.classify_batch(wav[:WINDOW_SPAN].unsqueeze(0))[0][0]
    assert (out_prob[0] - first_window).abs().max() > 1e-4

    caplog.clear()
    other, _ = concatenated_copy(esc10[40:43], tmp_path / "fifteen seconds.wav")
    with caplog.at_level(logging.WARNING, logger="ssast_sb.inference"):
        classifier.classify_file(other)
    assert warnings_of(caplog, "ssast_sb.inference") == []  # said once per classifier


def test_classify_batch_warns_once_that_it_cuts_long_rows(esc10, folder, tmp_path, caplog):
    _, wav = concatenated_copy(esc10[:3], tmp_path / "three clips.wav")
    classifier = load(folder, tmp_path)
    batch = torch.zeros(2, wav.numel())
    batch[0, :16000], batch[1] = wav[:16000], wav
    lens = torch.tensor([16000 / wav.numel(), 1.0])
    with caplog.at_level(logging.WARNING, logger="ssast_sb.inference"):
        cut = classifier.classify_batch(batch, lens)[0]
        classifier.encode_batch(batch, lens)
    seconds = wav.numel() / 16000
    assert warnings_of(caplog, "ssast_sb.inference") == [
        f"classify_batch: row 1 is {seconds:.2f} s, the model's input is 5.12 s: only its first "
        "5.12 s are used (classify_file and classify_waveform classify by windows over the "
        "whole clip; said once per classifier)"
    ]
    # The cut row is classified from its first window only, as SpeechBrain does.
    first_window = classifier.classify_batch(wav[:WINDOW_SPAN].unsqueeze(0))[0][0]
    torch.testing.assert_close(cut[1], first_window, atol=1e-6, rtol=1e-5)


def test_classify_file_warns_once_about_a_mostly_padded_clip(esc10, fsdd, folder, tmp_path, caplog):
    clips = tmp_path / "clips"
    clips.mkdir()
    short = [row for row in fsdd if float(row["duration"]) < 0.5][:2]
    paths = []
    for i, row in enumerate([esc10[0], *short]):
        paths.append(clips / f"copy {i}{row['file'].suffix}")
        paths[-1].write_bytes(row["file"].read_bytes())
    classifier = load(folder, tmp_path)
    with caplog.at_level(logging.WARNING, logger="ssast_sb.inference"):
        results = [classifier.classify_file(path) for path in paths]
    wav = load_audio(paths[1])
    frames = 1 + (wav.numel() - 400) // 160
    padding = 100 * (1 - frames / TARGET_FRAMES)
    assert warnings_of(caplog, "ssast_sb.inference") == [
        f"Clip {paths[1]} is {wav.numel() / 16000:.2f} s, the model's input is 5.12 s: "
        f"{padding:.0f}% of the model's input is padding (said once per classifier, for clips "
        "padded by more than 50%)"
    ]
    assert padding > 90
    # A clip that fits is one window: classify_file is then classify_batch of it.
    for path, result in zip(paths, results):
        alone = classifier.classify_batch(load_audio(path).unsqueeze(0))[0]
        torch.testing.assert_close(result[0], alone, atol=1e-6, rtol=1e-6)


def test_multi_label_windows_average_the_sigmoids(esc10, multi_label_folder, tmp_path):
    path, wav = concatenated_copy(esc10[100:103], tmp_path / "three events.wav")
    classifier = load(multi_label_folder, tmp_path)
    out_prob = classifier.classify_file(path)[0][0]
    expected, num_windows = window_by_window(classifier, wav)
    assert num_windows == 3
    torch.testing.assert_close(out_prob, expected, atol=1e-5, rtol=1e-5)
    # Per-class sigmoids of the single windows, not a softmax over the classes.
    window = wav[:WINDOW_SPAN].unsqueeze(0)
    logits = classifier.mods.classifier.model(
        classifier.mods.compute_features(window, torch.ones(1))
    )[0]
    torch.testing.assert_close(classifier.classify_batch(window)[0][0].exp(), logits.sigmoid())
    assert not math.isclose(out_prob.exp().sum().item(), 1.0, abs_tol=1e-3)


# --- B. Missing, empty and undecodable files raise AudioError naming them, or are skipped ------


def corrupted_copies(row, folder):
    """A missing file, an empty copy, a copy cut to its first 30 bytes, a non-audio file."""
    folder.mkdir(parents=True, exist_ok=True)
    data = row["file"].read_bytes()
    missing = folder / "missing.flac"
    empty = folder / "empty.flac"
    empty.write_bytes(b"")
    header_only = folder / "header_only.flac"
    header_only.write_bytes(data[:30])
    text = folder / "text.ogg"
    text.write_bytes(b"not audio " * 20)
    return {"missing": missing, "empty": empty, "header_only": header_only, "text": text}


@pytest.mark.parametrize("kind", ["missing", "empty", "header_only", "text"])
def test_classify_file_raises_audio_error_naming_the_file(fsdd, folder, tmp_path, kind):
    path = corrupted_copies(fsdd[0], tmp_path / "bad")[kind]
    classifier = load(folder, tmp_path)
    with pytest.raises(AudioError, match=re.escape(str(path))):
        classifier.classify_file(path)


def write_copies(rows, folder):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for row in rows:
        paths.append(folder / row["file"].name)
        paths[-1].write_bytes(row["file"].read_bytes())
    return paths


def test_embed_stops_on_bad_audio_or_skips_it(fsdd, folder, tmp_path, capsys, caplog):
    clips = tmp_path / "clips"
    good = write_copies(fsdd[:3], clips)
    bad = corrupted_copies(fsdd[0], clips)
    argv = ["--model", str(folder), "--input", str(clips), "--output", str(tmp_path / "e.pt")]
    with pytest.raises(AudioError, match=re.escape(str(bad["empty"]))):
        embed_main(argv)
    assert not (tmp_path / "e.pt").exists()

    with caplog.at_level(logging.WARNING):
        result = embed_main([*argv, "--on-bad-audio", "skip"])
    ids, embeddings = load_embeddings(tmp_path / "e.pt")
    assert sorted(ids) == sorted(path.stem for path in good) and embeddings.shape == (3, 16)
    assert result["ids"] == ids
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed == (
        f"3 embeddings of size 16 (0 clips windowed, 3 files with unusable audio left out) -> "
        f"{tmp_path / 'e.pt'}"
    )
    logged = "\n".join(caplog.messages)
    for kind in ("empty", "header_only", "text"):
        assert str(bad[kind]) in logged


def test_embed_skips_files_of_a_manifest_that_fail_to_decode(
    fsdd, folder, tmp_path, capsys, caplog
):
    clips = tmp_path / "clips"
    good = write_copies(fsdd[:2], clips)
    wav = load_audio(good[0]).numpy().copy()
    wav[100:110] = np.nan
    nan_copy = clips / "nan copy.wav"
    sf.write(nan_copy, wav, 16000, subtype="FLOAT")
    manifest = tmp_path / "list.csv"
    lines = ["ID,duration,wav"] + [
        f"{utt_id},0.5,{path}"
        for utt_id, path in [("a", good[0]), ("nan", nan_copy), ("gone", clips / "x.wav")]
    ]
    lines.append(f"b,0.5,{good[1]}")
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")  # with a byte-order mark
    output = tmp_path / "e.npy"
    argv = ["--model", str(folder), "--input", str(manifest), "--output", str(output)]
    with pytest.raises(AudioError, match=re.escape(str(clips / "x.wav"))):
        embed_main(argv)
    with caplog.at_level(logging.WARNING):
        embed_main([*argv, "--on-bad-audio", "skip"])
    ids, _ = load_embeddings(output)
    assert ids == ["a", "b"]  # the manifest's IDs, though the file starts with a BOM
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert "2 files with unusable audio left out" in printed
    logged = "\n".join(caplog.messages)
    assert str(nan_copy) in logged and str(clips / "x.wav") in logged

    # A file whose header reads but whose samples do not: left out while embedding.
    classifier = load(folder, tmp_path)
    with pytest.raises(AudioError, match=re.escape(str(nan_copy))):
        embed_files(classifier, [good[0], nan_copy], progress=False)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ssast_sb.embed"):
        result = embed_files(classifier, [good[0], nan_copy], progress=False, on_bad_audio="skip")
    assert result["ids"] == [str(good[0])] and result["embeddings"].shape == (1, 16)
    assert [utt_id for utt_id, _ in result["left_out"]] == [str(nan_copy)]
    (message,) = warnings_of(caplog, "ssast_sb.embed")
    assert (
        message.startswith("Left out 1 of 2 files with unusable audio (on_bad_audio=skip): ")
        and str(nan_copy) in message
    )


def test_embed_reads_a_manifest_with_a_byte_order_mark(fsdd, folder, tmp_path):
    good = write_copies(fsdd[:3], tmp_path / "clips")
    manifest = tmp_path / "bom.csv"
    rows = "".join(f"clip{i},{0.1 * (i + 1)},{path}\n" for i, path in enumerate(good))
    manifest.write_text("ID,duration,wav\n" + rows, encoding="utf-8-sig")
    assert manifest.read_bytes().startswith(b"\xef\xbb\xbf")
    result = embed_main(
        ["--model", str(folder), "--input", str(manifest), "--output", str(tmp_path / "e.pt")]
    )
    assert result["ids"] == ["clip0", "clip1", "clip2"]


# --- C. Verification: paths with spaces, layers, a scores file, normalised minDCF --------------


def speaker_layout(fsdd, root, per_speaker=4, speakers=3, spaces=True):
    """Copies of FSDD clips under ``root/<speaker>/<clip>``, with spaces in the names."""
    by_speaker = {}
    for row in fsdd:
        by_speaker.setdefault(row["speaker"], [])
        if len(by_speaker[row["speaker"]]) < per_speaker:
            by_speaker[row["speaker"]].append(row)
    relative = []
    for speaker in sorted(by_speaker)[:speakers]:
        for i, row in enumerate(by_speaker[speaker]):
            name = f"speaker {speaker}/clip {i}.flac" if spaces else f"{speaker}/clip_{i}.flac"
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(row["file"].read_bytes())
            relative.append((speaker, name))
    return relative


def trial_lines(relative, separator):
    return [
        separator.join([str(int(a[0] == b[0])), a[1], b[1]])
        for i, a in enumerate(relative)
        for b in relative[i + 1 :]
    ]


def test_verify_reads_tabs_writes_scores_and_uses_the_layer(fsdd, folder, tmp_path, capsys):
    spaced, plain = tmp_path / "spaced", tmp_path / "plain"
    with_spaces = speaker_layout(fsdd, spaced)
    without = speaker_layout(fsdd, plain, spaces=False)
    (tmp_path / "tabs.txt").write_text("\n".join(trial_lines(with_spaces, "\t")) + "\n")
    (tmp_path / "voxceleb.txt").write_text("\n".join(trial_lines(without, " ")) + "\n")
    assert read_trials(tmp_path / "tabs.txt")[0][1] == with_spaces[0][1]

    scores_path = tmp_path / "out" / "scores.txt"
    argv = ["--model", str(folder), "--layer", "0", "--pooling", "cls"]
    tabbed = verify_main(
        [*argv, "--trials", str(tmp_path / "tabs.txt"), "--data", str(spaced)]
        + ["--scores", str(scores_path)]
    )
    spaced_out = verify_main(
        [*argv, "--trials", str(tmp_path / "voxceleb.txt"), "--data", str(plain)]
    )
    assert tabbed["num_trials"] == 66 and int(tabbed["labels"].sum()) == 3 * 6
    torch.testing.assert_close(tabbed["scores"], spaced_out["scores"])

    lines = scores_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 66
    fields = [line.split("\t") for line in lines]
    assert [(int(f[0]), f[1], f[2]) for f in fields] == read_trials(tmp_path / "tabs.txt")
    written = torch.tensor([float(f[3]) for f in fields])
    torch.testing.assert_close(written, tabbed["scores"], atol=1e-6, rtol=0)

    # The scores are cosines of embed's block-0 class-token embeddings of the same files.
    manifest = tmp_path / "spaced.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["ID", "duration", "wav"])
        writer.writerows([name, 1.0, spaced / name] for _, name in with_spaces)
    embed_main(
        ["--model", str(folder), "--input", str(manifest), "--output", str(tmp_path / "b0.pt")]
        + ["--layer", "0", "--pooling", "cls"]
    )
    ids, embeddings = load_embeddings(tmp_path / "b0.pt")
    for (_, enrol, test), score in zip(tabbed["trials"], tabbed["scores"]):
        pair = embeddings[ids.index(enrol)], embeddings[ids.index(test)]
        cosine = torch.nn.functional.cosine_similarity(*pair, dim=0)
        torch.testing.assert_close(score, cosine, atol=1e-6, rtol=1e-5)
    default_layer = verify(load(folder, tmp_path), tabbed["trials"], spaced, progress=False)
    assert not torch.allclose(default_layer["scores"], tabbed["scores"])


def test_verify_reports_the_normalised_min_dcf(fsdd, folder, tmp_path, capsys):
    relative = speaker_layout(fsdd, tmp_path / "data", spaces=False)
    trials = tmp_path / "trials.txt"
    trials.write_text("\n".join(trial_lines(relative, " ")) + "\n", encoding="utf-8-sig")
    argv = ["--model", str(folder), "--trials", str(trials), "--data", str(tmp_path / "data")]
    result = verify_main(argv)
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    labels = result["labels"].bool()
    raw, _ = minDCF(result["scores"][labels], result["scores"][~labels], 1.0, 1.0, 0.01)
    assert result["minDCF_raw"] == pytest.approx(raw)
    assert result["minDCF"] == pytest.approx(raw / 0.01) and 0.0 <= result["minDCF"] <= 1.0
    assert printed == (
        f"66 trials (no score normalisation): EER {100 * result['EER']:.2f}%, "
        f"minDCF(p_target=0.01, c_miss=1, c_fa=1, normalised) {result['minDCF']:.4f}"
    )

    other = verify_main([*argv, "--p-target", "0.5", "--c-miss", "3", "--c-fa", "2"])
    raw, _ = minDCF(other["scores"][labels], other["scores"][~labels], 3.0, 2.0, 0.5)
    assert other["minDCF"] == pytest.approx(raw / min(3 * 0.5, 2 * 0.5))
    assert "minDCF(p_target=0.5, c_miss=3, c_fa=2, normalised)" in capsys.readouterr().out


def test_verify_drops_the_trials_of_unusable_files(fsdd, folder, tmp_path, capsys, caplog):
    data = tmp_path / "data"
    relative = speaker_layout(fsdd, data, spaces=False)
    broken = data / relative[0][1]
    broken.write_bytes(broken.read_bytes()[:30])  # a copy cut inside its header
    (data / relative[5][1]).unlink()
    trials = tmp_path / "trials.txt"
    trials.write_text("\n".join(trial_lines(relative, " ")) + "\n")
    argv = ["--model", str(folder), "--trials", str(trials), "--data", str(data)]
    with pytest.raises(AudioError, match=re.escape(str(broken))):
        verify_main(argv)

    with caplog.at_level(logging.WARNING):
        result = verify_main([*argv, "--on-bad-audio", "skip"])
    # 12 files, 66 trials; those of 2 files: 11 + 11 - 1.
    assert result["num_trials"] == 45 and result["num_dropped_trials"] == 21
    assert result["left_out"] == sorted([relative[0][1], relative[5][1]])
    assert len(result["scores"]) == 45
    logged = "\n".join(caplog.messages)
    assert str(broken) in logged and str(data / relative[5][1]) in logged
    assert "Dropped 21 of 66 trials that involve a file left out" in logged
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed.startswith("45 trials (no score normalisation): EER ")
    assert printed.endswith("; 21 trials dropped (2 files with unusable audio left out)")
