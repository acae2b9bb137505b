"""The conformance tool against the original code's dumps."""

import subprocess
import sys

import pytest
import torch

from ssast_sb import conformance
from tests.conftest import load_reference


@pytest.mark.parametrize("name", ["tiny_patch_seed0.pt", "tiny_frame_seed0.pt"])
def test_conformance_passes_on_shared_dumps(reference_dir, name):
    report = conformance.run(str(reference_dir / name), print_lines=False)
    assert report.passed, report.failures
    # Every quantity the tool promises is checked.
    text = "\n".join(report.lines)
    for quantity in (
        "patches",
        "mpc.hidden",
        "mpc.pred",
        "mpc.nce",
        "mpc.acc",
        "mpg.mse",
        "joint.loss",
        "grad_norms",
        "ft_avgtok",
        "ft_cls",
        "pos_embed",
        "checkpoint original -> ours -> original",
    ):
        assert quantity in text


def test_cli_prints_pass_and_exits_zero(reference_dir):
    result = subprocess.run(
        [sys.executable, "-m", "ssast_sb.conformance", str(reference_dir / "tiny_frame_seed0.pt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "conformance: PASS"


def test_cli_fails_on_a_perturbed_dump(reference_dir, tmp_path):
    dump = load_reference(reference_dir / "tiny_frame_seed0.pt")
    dump["mpc"]["nce"] = dump["mpc"]["nce"] + 1e-3
    dump["ft"]["sc35"]["ft_cls"] = dump["ft"]["sc35"]["ft_cls"] * 1.01
    path = tmp_path / "perturbed.pt"
    torch.save(dump, path)
    result = subprocess.run(
        [sys.executable, "-m", "ssast_sb.conformance", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "conformance: FAIL"
    assert any("mpc.nce" in line and "FAIL" in line for line in lines)
    assert any("ft[sc35].ft_cls" in line and "FAIL" in line for line in lines)
