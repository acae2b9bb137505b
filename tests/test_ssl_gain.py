"""The small-scale protocol (benchmarks/ssl_gain.py) and its building blocks."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.smallscale import budget_pretrain
from benchmarks.smallscale.budget_pretrain import pretrain_for_minutes
from benchmarks.smallscale.clip_bank import ClipBank
from benchmarks.smallscale.fewshot import (
    _fit_logistic,
    accuracy,
    finetune_classifier,
    k_shot_indices,
    layer_embeddings,
    linear_probe,
)
from ssast_sb.encoder import EncoderConfig, SSASTEncoder, pool_tokens
from ssast_sb.frontend import SSASTFbank
from ssast_sb.models import SSASTClassifier, SSASTPretrainModel
from ssast_sb.schedules import layerwise_param_groups

ROOT = Path(__file__).resolve().parents[1]


def _small_frame_encoder(tdim=32, depth=2):
    config = EncoderConfig.from_names("tiny", "frame", input_tdim=tdim, depth=depth)
    return SSASTEncoder(config)


def test_k_shot_draws_k_per_class_and_differs_by_seed():
    labels = torch.arange(60) % 6
    first, second = k_shot_indices(labels, 3, seed=0), k_shot_indices(labels, 3, seed=1)
    assert torch.bincount(labels[first]).tolist() == [3] * 6
    assert not torch.equal(first, second)
    assert len(k_shot_indices(labels, None)) == 60


def test_layer_decay_covers_every_parameter_once():
    classifier = SSASTClassifier(_small_frame_encoder(), 4)
    groups = layerwise_param_groups(classifier, 1e-3, 0.5, 10.0)
    ids = [id(p) for group in groups for p in group["params"]]
    assert len(ids) == len(set(ids)) == len(list(classifier.parameters()))
    rates = [group["lr"] for group in groups]
    assert max(rates) == pytest.approx(1e-2) and min(rates) == pytest.approx(1e-3 * 0.5**3)


def test_budgeted_pretraining_stops_on_the_clock_and_records_the_curve():
    torch.manual_seed(0)
    bank = ClipBank([torch.randn(int(n), 128) for n in torch.randint(10, 60, (24,))], SSASTFbank())
    model = SSASTPretrainModel(_small_frame_encoder(), num_masked=8, padding_aware=True)
    curve = pretrain_for_minutes(
        model, bank, 0.05, 32, batch_size=8, valid=(bank, list(range(8))), eval_every_minutes=0.02,
        log=lambda line: None,
    )  # fmt: skip
    assert curve[0]["minutes"] == 0 and curve[-1]["step"] > 0
    assert curve[-1]["minutes"] >= 0.05  # it ran to its budget (no upper wall-clock bound)
    assert all({"acc", "mse", "train_loss"} <= set(point) for point in curve)


def test_a_budget_of_steps_runs_exactly_that_many_with_the_schedule_over_them():
    torch.manual_seed(0)
    bank = ClipBank([torch.randn(int(n), 128) for n in torch.randint(10, 60, (24,))], SSASTFbank())
    model = SSASTPretrainModel(_small_frame_encoder(depth=1), num_masked=8, padding_aware=True)
    rates = []
    set_lr = budget_pretrain.set_lr

    def recording_set_lr(optimizer, lr, *args):
        rates.append(lr)
        return set_lr(optimizer, lr, *args)

    budget_pretrain.set_lr = recording_set_lr
    try:
        curve = pretrain_for_minutes(
            model, bank, 1e-6, 32, batch_size=8, warmup_steps=1, log=lambda line: None,
            max_steps=7,
        )  # fmt: skip
    finally:
        budget_pretrain.set_lr = set_lr
    # 7 steps (three epochs of 3 batches, the last cut), whatever the clock says; the cosine
    # schedule runs over the steps, so the last rate is close to zero.
    assert curve[-1]["step"] == 7 and len(rates) == 7
    assert rates[0] == pytest.approx(5e-4) and rates[-1] < 0.1 * rates[0]


def test_probe_embeddings_pool_the_real_audio_patches_of_each_clip():
    torch.manual_seed(0)
    encoder = _small_frame_encoder(tdim=32)  # 2-frame patches: 16 columns
    features, num_frames = torch.randn(3, 32, 128), torch.tensor([7, 32, 12])
    real = layer_embeddings(encoder, features, num_frames=num_frames)
    everything = layer_embeddings(encoder, features)
    final, _ = encoder(features, return_layers=True)
    # Clip 0 has 7 real frames: patches starting at frames 0, 2, 4, 6.
    torch.testing.assert_close(real[-1, 0], pool_tokens(final[:1, :6], "mean")[0])
    torch.testing.assert_close(real[-1, 1], everything[-1, 1])  # no padding: the same
    assert not torch.allclose(real[:, 2], everything[:, 2])


def test_classifier_pools_only_real_audio_patches_when_given_frames():
    torch.manual_seed(0)
    classifier = SSASTClassifier(_small_frame_encoder(tdim=32, depth=1), 3).eval()
    features, num_frames = torch.randn(2, 32, 128), torch.tensor([9, 32])
    tokens = classifier.encoder(features)
    expected = torch.stack([tokens[0, 2:7].mean(0), tokens[1, 2:].mean(0)])  # 5 real columns
    torch.testing.assert_close(classifier.embed(features, num_frames), expected)
    torch.testing.assert_close(classifier(features, num_frames)[1], classifier(features)[1])
    assert not torch.allclose(classifier(features, num_frames)[0], classifier(features)[0])


def test_linear_probe_does_not_depend_on_the_global_random_state():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 3
    embeddings = torch.randn(2, 60, 16, generator=generator) + labels.view(1, -1, 1) * 1.0
    split = (embeddings[:, :30], labels[:30]), (embeddings[:, 30:], labels[30:])
    results, logits = [], []
    for seed in (1, 2):
        torch.manual_seed(seed)
        results.append(linear_probe(split[0], split[1], split[1]))
        torch.manual_seed(seed)
        # Two L-BFGS iterations are far from the optimum: the start shows.
        logits.append(_fit_logistic(embeddings[0], labels, 3, 1e-3, steps=2)(embeddings[0]))
    assert results[0] == results[1] and torch.equal(logits[0], logits[1])
    assert results[0]["test_acc"] > 0.5  # chance: 1/3


def test_fewshot_finetuning_fits_separable_clips():
    torch.manual_seed(0)
    labels = torch.arange(24) % 3
    features = torch.randn(24, 32, 128) * 0.1 + labels.view(-1, 1, 1).float()
    classifier = SSASTClassifier(_small_frame_encoder(depth=1), 3)
    losses = finetune_classifier(classifier, features, labels, steps=30, batch_size=8, lr=1e-3)
    assert losses[-1] < 0.5 * losses[0]
    assert accuracy(classifier, features, labels) > 0.9


def test_fewshot_finetuning_on_real_audio_patches_fits_padded_clips():
    torch.manual_seed(0)
    labels = torch.arange(24) % 3
    num_frames = torch.randint(8, 33, (24,))
    features = torch.randn(24, 32, 128) * 0.1 + labels.view(-1, 1, 1).float()
    features[torch.arange(32).view(1, -1) >= num_frames.view(-1, 1)] = 0.0  # padding
    classifier = SSASTClassifier(_small_frame_encoder(depth=1), 3)
    losses = finetune_classifier(
        classifier, features, labels, steps=30, batch_size=8, lr=1e-3, num_frames=num_frames
    )
    assert losses[-1] < 0.5 * losses[0]
    assert accuracy(classifier, features, labels, num_frames=num_frames) > 0.9


@pytest.mark.slow
def test_ssl_gain_benchmark_runs_end_to_end(shared_dir, tmp_path):
    output = tmp_path / "out"
    script = [sys.executable, str(ROOT / "benchmarks" / "ssl_gain.py")]
    script += ["--data", str(shared_dir / "data")]
    command = script + [
        "--output", str(output), "--minutes", "0.15", "--eval-every", "0.05", "--snapshots",
        "--tasks", "fsdd_speakers", "--shots", "5", "--seeds", "0", "--ft-steps", "8",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| fsdd_speakers | 5 |" in result.stdout
    table = (output / "results.md").read_text()
    assert "probe pretrained" in table and "Command: `python benchmarks/ssl_gain.py" in table
    with open(output / "curve.csv", newline="") as handle:
        curve = list(csv.DictReader(handle))
    assert len(curve) >= 3 and float(curve[-1]["minutes"]) >= 0.15
    assert (output / "curve.png").stat().st_size > 0
    saved = json.loads((output / "results.json").read_text())
    assert len(saved["results"][0]["scratch"]) == 1
    # The pretrained encoder is saved and can be reused without pretraining again.
    snapshots = sorted((output / "snapshots").glob("encoder_step*min.pt"))
    assert len(snapshots) == len(curve)
    reuse = script + ["--pretrained", str(snapshots[1]), "--output", str(tmp_path / "reuse")]
    reuse += ["--tasks", "fsdd_speakers", "--shots", "5", "--seeds", "0", "--ft-steps", "4"]
    reuse += ["--ft-pooling", "real"]
    again = subprocess.run(reuse, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "pool:" not in again.stdout
    # Probes alone, pooling every patch as the original: no fine-tuning columns.
    probes = reuse[:-4] + ["--no-finetune", "--probe-pooling", "all"]
    probes[probes.index("--output") + 1] = str(tmp_path / "probes")
    alone = subprocess.run(probes, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert alone.returncode == 0, alone.stderr[-3000:]
    row = next(line for line in alone.stdout.splitlines() if line.startswith("| fsdd_speakers"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2:6] == ["—"] * 4 and float(cells[7].split(" ± ")[0]) > 1 / 6


# ---------------------------------------------------------------- labeled tasks of your own

#: The built-in tasks as ssl_gain.py hard-coded them: folder, label column, input frames.
BUILTIN_BEFORE = {
    "fsdd_digits": ("kws_sid_fsdd", "label", 128),
    "fsdd_speakers": ("kws_sid_fsdd", "speaker", 128),
    "emodb": ("emotion_emodb", "label", 200),
    "esc10": ("audio_events_esc10", "label", 512),
}
#: A tiny pretraining and fine-tuning: the test checks the plumbing, not the accuracy.
TINY_RUN = ["--seeds", "0", "--ft-steps", "2", "--ft-batch", "4", "--threads", "1"]


def _fsdd_rows(shared_dir):
    folder = shared_dir / "data" / "kws_sid_fsdd"
    with open(folder / "manifest.csv", newline="") as handle:
        return [dict(row, path=str(folder / row["path"])) for row in csv.DictReader(handle)]


def _digit_clips(shared_dir, digits, per_speaker):
    """FSDD rows of ``digits``, ``per_speaker`` clips of each speaker for each digit."""
    chosen, taken = [], {}
    for row in _fsdd_rows(shared_dir):
        key = (row["label"], row["speaker"])
        if row["label"] in digits and taken.get(key, 0) < per_speaker:
            taken[key] = taken.get(key, 0) + 1
            chosen.append(row)
    return chosen


def _saved_results(output):
    saved = json.loads((output / "results.json").read_text())
    for row in saved["results"]:
        for key in ("scratch", "pretrained", "probe_random", "probe_pretrained"):
            assert len(row[key]) == 1 and 0.0 <= row[key][0] <= 1.0, (key, row)
    return saved


def test_builtin_task_names_resolve_to_the_same_rows_as_before(shared_dir):
    from benchmarks.smallscale.tasks import BUILTIN_TASKS, builtin_task

    assert BUILTIN_TASKS == BUILTIN_BEFORE
    for name, (folder, column, frames) in BUILTIN_BEFORE.items():
        with open(shared_dir / "data" / folder / "manifest.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        task = builtin_task(shared_dir / "data", name)
        assert task.frames == frames and task.classes == sorted({row[column] for row in rows})
        for split in ("train", "valid", "test"):
            chosen = [row for row in rows if row["split"] == split]
            chosen = chosen or [row for row in rows if row["split"] == "valid"]  # ESC-10: no test
            paths, labels = task.clips[split]
            assert paths == [str(shared_dir / "data" / folder / row["path"]) for row in chosen]
            assert labels == [row[column] for row in chosen]
    from benchmarks.ssl_gain import parse_args

    defaults = parse_args([])
    assert defaults.tasks == ["fsdd_digits", "fsdd_speakers", "emodb"]
    # The 60-minute protocol; padding-aware runs pool real audio, the original pools every patch.
    assert (defaults.minutes, defaults.padding_aware, defaults.ft_pooling) == (60.0, True, "real")
    assert parse_args(["--no-padding-aware"]).ft_pooling == "all"
    assert parse_args(["--ft-pooling", "all"]).ft_pooling == "all"


def test_ssl_gain_on_class_folders_pretrained_on_them(shared_dir, tmp_path, one_thread, capsys):
    from benchmarks.ssl_gain import main

    folders = tmp_path / "digits"
    for row in _digit_clips(shared_dir, {"1", "4", "7"}, per_speaker=2)[::3]:  # 12 per class
        (folders / f"digit_{row['label']}").mkdir(parents=True, exist_ok=True)
        shutil.copy(row["path"], folders / f"digit_{row['label']}" / Path(row["path"]).name)
    output = tmp_path / "out"
    main(
        ["--task", f"digits={folders}", "--pool", str(folders), "--output", str(output),
         "--minutes", "0.02", "--eval-every", "0.01", "--batch", "4", "--shots", "2", "all"]
        + TINY_RUN
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "pool: 12 clips" in printed
    assert "task digits:" in printed and "no split column: seeded stratified split" in printed
    saved = _saved_results(output)
    rows = [(row["task"], row["k"]) for row in saved["results"]]
    assert rows == [("digits", 2), ("digits", "all")]
    task = saved["tasks"]["digits"]
    assert task["classes"] == ["digit_1", "digit_4", "digit_7"]
    assert task["clips"] == {"train": 6, "valid": 3, "test": 3}
    assert task["frames"] % 16 == 0 and "95% of the training clips" in task["notes"][1]


def test_ssl_gain_on_a_csv_list_without_a_split_column(shared_dir, tmp_path, one_thread):
    from benchmarks.ssl_gain import main

    (tmp_path / "clips").mkdir()
    with open(tmp_path / "list.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "digit", "who"])
        for row in _digit_clips(shared_dir, {"0", "5"}, per_speaker=1):  # 6 speakers
            shutil.copy(row["path"], tmp_path / "clips")
            writer.writerow([f"clips/{Path(row['path']).name}", row["label"], row["speaker"]])
    encoder = SSASTEncoder(EncoderConfig.from_names("tiny", "frame", input_tdim=64))
    torch.save({"config": vars(encoder.config), "state": encoder.state_dict()}, tmp_path / "e.pt")
    output = tmp_path / "out"
    main(
        ["--task", f"spoken={tmp_path / 'list.csv'}", "--columns",
         "spoken={path: file, label: digit, speaker: who}", "--task-frames", "spoken=64",
         "--pretrained", str(tmp_path / "e.pt"), "--output", str(output), "--shots", "1"]
        + TINY_RUN
    )  # fmt: skip
    saved = _saved_results(output)
    assert [(row["task"], row["k"]) for row in saved["results"]] == [("spoken", 1)]
    task = saved["tasks"]["spoken"]
    # Speaker-disjoint: one speaker in valid, one in test, four in train.
    assert task["clips"] == {"train": 8, "valid": 2, "test": 2} and task["frames"] == 64
    assert task["notes"][0].startswith("no split column: seeded speaker-disjoint split")


def test_a_split_column_without_test_gets_a_drawn_test_split(shared_dir, tmp_path):
    from benchmarks.smallscale.tasks import custom_task

    listing = tmp_path / "list.csv"
    with open(listing, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        for index, row in enumerate(_digit_clips(shared_dir, {"2", "3"}, per_speaker=2)):
            writer.writerow([row["path"], row["label"], "valid" if index % 6 == 0 else "train"])
    task = custom_task("digits", listing, test_ratio=0.25)
    assert task.counts() == {"train": 16, "valid": 4, "test": 4}  # round(10 / 4) per class
    assert task.notes[0].startswith("the list's split has no test clip: seeded stratified draw")
    assert not set(task.clips["test"][0]) & set(task.clips["train"][0] + task.clips["valid"][0])


@pytest.mark.parametrize(
    "options, message",
    [
        (["--task", "x={tmp}/missing"], "--task x={tmp}/missing: Labeled audio not found"),
        (["--task", "x={tmp}/empty"], "No audio in {tmp}/empty"),
        (["--task", "x={tmp}/digits", "--shots", "20"], "k=20 needs 20 training clips per class"),
        (["--task", "x={tmp}/digits", "--columns", "y={{label: a}}"], "no --task is named 'y'"),
        (["--task", "esc10={tmp}/digits"], "'esc10' is a built-in task"),
        (["--tasks", "fsdd"], "the built-in tasks are fsdd_digits"),
        (
            ["--pool", "{tmp}/empty", "--task", "x={tmp}/digits", "--shots", "all"],
            "--pool {tmp}/empty",
        ),
    ],
)
def test_task_and_pool_errors_name_the_path_and_the_problem(
    shared_dir, tmp_path, capsys, options, message
):
    from benchmarks.ssl_gain import main

    (tmp_path / "empty" / "a_class").mkdir(parents=True)
    for row in _digit_clips(shared_dir, {"6", "8"}, per_speaker=1):
        (tmp_path / "digits" / row["label"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(row["path"], tmp_path / "digits" / row["label"])
    argv = [option.format(tmp=tmp_path) for option in options] + ["--output", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as raised:
        main(argv + ["--minutes", "0"])
    shown = str(raised.value) + capsys.readouterr().err
    assert message.format(tmp=tmp_path) in shown
