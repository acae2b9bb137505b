"""Smoke tests of the benchmark scripts: they run at tiny sizes and end with a JSON line.

These check the scripts and their output format, not timings, so they are marked
``slow`` (run in CI, skipped by ``-m "not slow"``).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ssast_sb.encoder import EncoderConfig

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
TINY = ["--size", "tiny", "--tdim", "64", "--batch", "1", "--threads", "1"]
COMMON_KEYS = {"median_s", "min_s", "peak_rss_mb", "gflops_per_s", "size", "batch", "threads"}


def _run(script, *arguments):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *arguments],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    return lines, json.loads(lines[-1])


def _check_timing(entry):
    assert entry["min_s"] <= entry["median_s"]
    assert entry["min_s"] > 0 and entry["gflops_per_s"] > 0


@pytest.mark.parametrize("mode", ["faithful", "single_pass", "mae"])
def test_pretrain_step_modes(mode):
    lines, result = _run(
        "bench_pretrain_step.py", *TINY, "--reps", "2", "--warmup", "0", "--mode", mode
    )
    assert COMMON_KEYS | {"mode", "precision", "matmul_peak_gflops_per_s"} <= set(result)
    assert result["mode"] == mode and result["num_masked"] == 25  # 400/512 of 32 patches
    _check_timing(result)
    assert sum(line.startswith("rep ") for line in lines) == 2
    assert any("GFLOP/s" in line and "matmul" in line for line in lines)


def test_pretrain_step_bf16():
    _, result = _run(
        "bench_pretrain_step.py", *TINY, "--reps", "1", "--warmup", "0", "--precision", "bf16"
    )
    assert result["precision"] == "bf16"
    _check_timing(result)


def test_pretrain_step_compare_interleaves_modes_in_one_run():
    lines, result = _run(
        "bench_pretrain_step.py", *TINY, "--reps", "2", "--warmup", "1", "--compare"
    )
    modes = ["faithful", "single_pass", "mae"]
    assert result["reference_mode"] == "faithful" and result["interleaved"]
    assert set(result["results"]) == set(result["speedup"]) == set(modes)
    assert set(result["step_memory_ratio"]) == set(result["peak_rss_ratio"]) == set(modes)
    assert result["speedup"]["faithful"] == 1.0
    for mode in modes:
        entry = result["results"][mode]
        assert {"median_s", "min_s", "peak_rss_mb", "step_peak_mb", "gflops_per_s"} <= set(entry)
        _check_timing(entry)
    assert result["median_s"] == result["results"]["faithful"]["median_s"]
    reps = [line for line in lines if line.startswith("rep ")]
    assert len(reps) == 2 and all(all(mode in line for mode in modes) for line in reps)


def test_step_flops_rank_the_modes():
    from benchmarks.common import step_flops

    config = EncoderConfig.from_names("base", "patch")
    faithful, single, mae = (
        step_flops(config, 2, mode) for mode in ("faithful", "single_pass", "mae")
    )
    assert faithful == pytest.approx(2 * single, rel=0.01)
    assert mae < 0.5 * single


def test_finetune_step():
    lines, result = _run(
        "bench_finetune_step.py", *TINY, "--reps", "2", "--warmup", "0", "--classes", "5"
    )
    assert COMMON_KEYS | {"fstride", "tstride", "precision", "tokens"} <= set(result)
    assert (result["fstride"], result["tstride"]) == (10, 10)
    assert result["tokens"] == 2 + 12 * 5  # (128-16)//10+1 by (64-16)//10+1
    _check_timing(result)
    assert sum(line.startswith("rep ") for line in lines) == 2


def test_inference_backends_against_hugging_face_in_one_run():
    pytest.importorskip("transformers", reason="the export extra is not installed")
    pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    lines, result = _run(
        "bench_inference.py", "--size", "tiny", "--configs", "speech", "audioset", "--batch", "1",
        "2", "--reps", "1", "--warmup", "0",
    )  # fmt: skip
    backends = {"torch", "torch-bf16", "onnx", "onnx-int8", "hf"}
    assert result["headline"] == "audioset/batch_2"
    assert set(result["clips_per_s"]) == set(result["ratio_vs_hf"]) == backends
    assert result["ratio_vs_hf"]["hf"] == 1.0
    assert set(result["runs"]) == {f"{c}/batch_{b}" for c in ("speech", "audioset") for b in (1, 2)}
    for entry in result["runs"].values():
        for backend in backends:
            seconds = entry["median_s"][backend]
            assert entry["clips_per_s"][backend] == pytest.approx(
                entry["batch"] / seconds, rel=0.01
            )
            assert entry["rtf"][backend] == pytest.approx(
                seconds / (entry["batch"] * entry["clip_s"]), rel=0.01
            )
    assert "frame model" in result["runs"]["speech/batch_1"]["notes"]["hf"]
    assert sum(" clips/s, RTF " in line for line in lines) == 4 * len(backends)


def test_matmul_rates_per_precision():
    lines, result = _run("bench_matmul.py", "--width", "64", "--rows", "128", "--threads", "1")
    assert set(result["gflops_per_s"]) == {"fp32", "bf16", "fp16"}
    assert all(rate > 0 for rate in result["gflops_per_s"].values())
    assert "avx512_bf16" in result and any(line.startswith("bf16:") for line in lines)


@pytest.mark.slow
def test_pretrain_step_compiled_mode_in_a_comparison():
    lines, result = _run(
        "bench_pretrain_step.py", *TINY, "--reps", "1", "--warmup", "1", "--compare",
        "--modes", "faithful,faithful+compile",
    )  # fmt: skip
    assert set(result["speedup"]) == {"faithful", "faithful+compile"}
    assert any(line.startswith("faithful / faithful+compile") for line in lines)


def test_profile_splits_the_step_into_matmuls_and_the_rest():
    lines, result = _run(
        "profile_step.py", "--size", "tiny", "--tdim", "64", "--batch", "1", "--threads", "1"
    )
    assert 0.0 < result["matmul_share"] < 1.0 and result["self_s"] > 0
    assert lines[0].startswith("step self time")


def test_precision_deviation_measures_losses_gradients_and_embeddings(shared_dir):
    audio = str(shared_dir / "data" / "audio_events_esc10")
    lines, result = _run(
        "precision_deviation.py", *TINY, "--audio", audio, "--precision", "bf16", "fp16"
    )
    fp32, bf16 = result["results"]["fp32"], result["results"]["bf16"]
    assert lines[0].startswith("fp32: loss") and lines[1].startswith("bf16: loss")
    # Real clips and a fixed mask: both precisions see the same step, so the
    # deviations are small but not zero (bf16 keeps 8 bits of mantissa).
    assert 0.0 < bf16["loss_rel_dev"] < 0.05
    assert abs(bf16["loss"] - fp32["loss"]) == pytest.approx(bf16["loss_rel_dev"] * fp32["loss"])
    assert 0.0 < bf16["grad_rel_err"] < 0.5 and bf16["grad_cosine"] > 0.9
    assert 0.0 < bf16["embedding_rel_err"] < 0.1
    fp16 = result["results"]["fp16"]
    assert fp16["embedding_rel_err"] < bf16["embedding_rel_err"]  # 10 vs 7 mantissa bits


def test_padding_mask_against_unmasked_and_sorted_batches(shared_dir):
    lines, result = _run(
        "bench_padding_mask.py", "--size", "tiny", "--target-frames", "200", "--batch-size", "4",
        "--batches", "2", "--reps", "1", "--threads", "1",
    )  # fmt: skip
    assert set(result["ms_per_clip"]) == {"unmasked", "masked", "sorted"}
    assert result["masked_vs_unmasked"] == pytest.approx(
        result["ms_per_clip"]["masked"] / result["ms_per_clip"]["unmasked"], rel=0.02
    )
    assert sum(line.startswith("|") for line in lines) == 5  # header, rule, three rows
