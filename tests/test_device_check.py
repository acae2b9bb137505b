"""``benchmarks/device_check.py`` in its reduced CPU version, so the GPU check cannot rot."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "device_check.py"


@pytest.mark.slow
def test_device_check_runs_every_recipe_and_section_on_cpu(reference_dir, tmp_path):
    output = tmp_path / "check"
    command = [sys.executable, str(SCRIPT), "--device", "cpu", "--output", str(output)]
    command += ["--reference", str(reference_dir)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=1500
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    report = json.loads((output / "report.json").read_text())
    assert report["passed"] is True

    # Every recipe YAML ran (fp32 in the reduced version), and the second-precision run (bf16).
    runs = report["recipes"]["runs"]
    yamls = sorted(path.name for path in (ROOT / "hparams").glob("*.yaml"))
    assert sorted(run["yaml"] for run in runs if run["precision"] == "fp32") == yamls
    assert [run["precision"] for run in runs if run["precision"] != "fp32"] == ["bf16"]
    assert all(run["passed"] for run in runs), [run for run in runs if not run["passed"]]

    dumps = report["conformance"]["dumps"]
    assert {dump["dump"] for dump in dumps} >= {"tiny_patch_seed0.pt", "tiny_frame_seed0.pt"}
    assert all(dump["passed"] and dump["checks"] > 50 for dump in dumps)

    rows = report["step"]["rows"]
    assert {(row["mode"], row["precision"]) for row in rows} == {
        (mode, precision)
        for mode in ("faithful", "single_pass", "mae")
        for precision in ("fp32", "bf16")
    }
    assert all(row["step_s"] > 0 and row["clips_per_s"] > 0 for row in rows)
    assert report["sdpa"]["fp32"] == ["flash (CPU)"]
    assert {(row["precision"], row["batch"]) for row in report["inference"]["rows"]} == {
        ("fp32", 1),
        ("fp32", 2),
        ("bf16", 1),
        ("bf16", 2),
    }
    markdown = (output / "report.md").read_text()
    for heading in ("## Recipes", "## Conformance", "## Pretraining step", "## Attention kernel"):
        assert heading in markdown
    assert markdown.rstrip().endswith("Overall: PASS")


def test_device_check_reports_a_failing_recipe(tmp_path):
    """A recipe that fails is a FAIL line with its error, and the script exits 1."""
    from benchmarks import device_check

    entry = device_check.run_recipe("voxceleb.yaml", "bf16", "cpu", tmp_path, timeout=300)
    # No fixture was built: the data preparation must fail and name what is missing.
    assert entry["passed"] is False and entry["error"]
    report = {
        "command": "x",
        "environment": {"device": "cpu"},
        "minutes": 0.1,
        "recipes": {"runs": [entry], "passed": False},
        "passed": False,
    }
    markdown = device_check.format_report(report)
    assert "| voxceleb.yaml | bf16 | FAIL |" in markdown and "Overall: FAIL" in markdown


def test_sdpa_kernel_names():
    from benchmarks.device_check import sdpa_kernels

    events = [
        "aten::_scaled_dot_product_efficient_attention",
        "aten::_scaled_dot_product_flash_attention",
        "aten::linear",
    ]
    assert sdpa_kernels(events) == ["memory-efficient", "flash"]
    assert sdpa_kernels(["aten::_scaled_dot_product_attention_math"]) == ["math"]
