"""One prepared device check: every recipe, conformance, step and inference speed, SDPA kernel.

    python benchmarks/device_check.py --device cuda:0 --output DIR
    python benchmarks/device_check.py --device cpu --output DIR   # reduced: tiny models

Writes ``DIR/report.md`` and ``DIR/report.json`` and exits 1 when a recipe or
the conformance check failed. The sections:

1. **recipes**: every ``hparams/*.yaml`` runs its ``recipes/<task>/train.py`` in
   SpeechBrain's debug mode (2 batches, 2 epochs) on a generated copy of its
   dataset's official layout (``fixture_layouts.py``), with ``--precision bf16``,
   and one fine-tuning recipe again with ``fp16``. On a CPU (the reduced version)
   every model is SSAST-tiny on short inputs, the runs are fp32 and the second
   run is bf16 (SpeechBrain refuses fp16 on a CPU).
2. **conformance**: ``ssast_sb.conformance`` on the reference dumps (default
   ``../shared/reference``), on the device, fp32 with TF32 off, same tolerances.
3. **pretraining step**: ``bench_pretrain_step.StepRunner`` for base patch, 1024
   frames, batch 24 (the paper's), modes faithful / single_pass / mae, fp32 and
   bf16: step time, clips/s, peak device memory, achieved TFLOP/s and the
   fraction of the device's bf16 peak (nominal dense rate where the device is
   known, else the bf16 matmul rate measured here).
4. **sdpa**: which scaled-dot-product-attention kernel ran for the encoder's
   shapes (flash, memory-efficient, cuDNN or math), read from the profiler.
5. **inference**: classifier clips/s at the AudioSet configuration (base patch,
   stride 10, 1024 frames, 1214 tokens, 527 classes), batch 1 and 32, fp32 and
   bf16, on features (the fbank frontend is not timed).

Authors
 * ssast-sb contributors
"""

import os
import sys
from pathlib import Path

# Before SpeechBrain is imported anywhere: its import would turn TF32 on.
os.environ.setdefault("SB_DISABLE_QUIRKS", "allow_tf32")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import torch  # noqa: E402

if __package__ in (None, ""):  # run as a script: the repository root makes `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    MODES,
    StepRunner,
    autocast_context,
    matmul_peak_gflops,
    sync,
)
from benchmarks.fixture_layouts import build_fixture  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference"

#: Nominal dense bf16 tensor-core peaks (TFLOP/s, without sparsity) from the vendors' sheets.
BF16_PEAK_TFLOPS = {
    "H200": 989.4,
    "H100 SXM": 989.4,
    "H100 80GB HBM3": 989.4,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10G": 70.0,
}

#: YAML -> (recipe folder, fixture, data options). ``{root}`` is the fixture folder; the
#: fixtures hold fewer classes than the official releases (``--num_classes``).
ESC50 = ["--data_folder", "{root}", "--download", "False", "--num_classes", "2"]
SPEECH_COMMANDS = ["--data_folder", "{root}", "--download", "False", "--num_classes", "4"]
AUDIOSET = ["--data_folder", "{root}", "--num_classes", "3"]
RECIPES = {
    "esc50.yaml": ("esc50", "esc50", ESC50),
    "esc50_frame.yaml": ("esc50", "esc50", ESC50),
    "speech_commands_v2.yaml": ("speech_commands", "speech_commands_v2", SPEECH_COMMANDS),
    "speech_commands_v1_ks.yaml": ("speech_commands", "speech_commands_v1", SPEECH_COMMANDS),
    "iemocap.yaml": ("iemocap", "iemocap", ["--data_folder", "{root}"]),
    "voxceleb.yaml": ("voxceleb", "voxceleb", ["--data_folder", "{root}", "--num_classes", "3"]),
    "audioset.yaml": ("audioset", "audioset", AUDIOSET),
    "audioset_full.yaml": ("audioset", "audioset", AUDIOSET),
    "custom.yaml": ("custom", "class_folders", ["--data", "{root}"]),
    # The FSDD clips shipped in data/: one seed, 2 labeled clips per digit.
    "quickstart.yaml": ("quickstart", None, "--seeds [0] --shots 2 --valid_per_class 1".split()),
}
PRETRAINING = ["--audioset_folder", "{root}/audioset", "--librispeech_folder", "{root}"]
for _name in ("pretrain_patch", "pretrain_frame", "pretrain_patch_tiny", "pretrain_frame_tiny"):
    RECIPES[f"{_name}.yaml"] = ("pretrain", "pretraining", PRETRAINING)
RECIPES["pretrain_small.yaml"] = (
    "pretrain",
    "pretraining",
    ["--extra_sources", "[{root}/own/train]", "--valid_source", "{root}/own/valid"],
)

RECIPES["librispeech.yaml"] = ("librispeech", "pretraining", PRETRAINING)

#: Extra options of some YAMLs in a 2-epoch run.
EXTRA = {
    # The original averages epochs 6-25; a 2-epoch run averages both.
    "audioset.yaml": ["--weight_averaging", "[1, 2]"],
    "esc50.yaml": ["--folds", "[1]"],
    "esc50_frame.yaml": ["--folds", "[2]"],
    "iemocap.yaml": ["--folds", "[1]"],
}
#: The fine-tuning recipe also run in fp16 (mixup, SpecAugment and noise: every augmentation draw).
FP16_RECIPE = "speech_commands_v2.yaml"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--output", required=True, help="folder of report.md and report.json")
    parser.add_argument(
        "--sections",
        default="recipes,conformance,step,sdpa,inference",
        help="comma-separated subset of the sections to run",
    )
    parser.add_argument("--reference", default=str(DEFAULT_REFERENCE), help="conformance dumps")
    parser.add_argument(
        "--jobs", type=int, default=None, help="recipes run at once (default 4 on GPU, 1 on CPU)"
    )
    parser.add_argument("--timeout", type=int, default=600, help="seconds per recipe run")
    parser.add_argument(
        "--recipes", default=None, help="comma-separated YAML names to run (default: all)"
    )
    return parser.parse_args(argv)


def is_cuda(device):
    return str(device).startswith("cuda")


# ---------------------------------------------------------------- environment


def environment(device):
    """What ran the check."""
    info = {
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
    }
    if is_cuda(device):
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda,
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    return info


def nominal_bf16_peak(device):
    """Vendor's dense bf16 peak of the device in TFLOP/s, or None if it is not in the table."""
    if not is_cuda(device):
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in BF16_PEAK_TFLOPS.items():
        if all(word in name for word in key.split()):
            return value
    return None


# ---------------------------------------------------------------- 1. recipes


def recipe_command(yaml, device, precision, root, output):
    """The command line of one recipe run in debug mode."""
    recipe, _, data_options = RECIPES[yaml]
    command = [sys.executable, str(ROOT / "recipes" / recipe / "train.py")]
    command += [str(ROOT / "hparams" / yaml), "--output_folder", str(output)]
    command += [option.format(root=root) for option in data_options]
    command += "--debug --debug_batches 2 --debug_epochs 2 --number_of_epochs 2".split()
    command += ["--noprogressbar", "--device", str(device), "--precision", precision]
    command += ["--batch_size", "2", "--num_workers", "0"]
    command += EXTRA.get(yaml, [])
    pretraining = recipe in ("pretrain", "librispeech", "quickstart")
    if not pretraining:
        command += ["--pretrained_path", "null"]
    if not is_cuda(device):
        # The reduced version: SSAST-tiny on short inputs.
        command += ["--model_size", "tiny"]
        if recipe in ("pretrain", "librispeech", "quickstart"):
            command += "--target_frames 64 --num_masked 16 --valid_num_masked 16".split()
        else:
            command += ["--target_frames", "128"]
    return command


def recipe_runs(device, chosen=None):
    """``(yaml, precision)`` of every run: all YAMLs in bf16, one fine-tuning YAML in fp16.

    Arguments
    ---------
    device : str
        ``cpu`` or ``cuda:N``.
    chosen : list of str, optional
        Only these YAMLs.

    Returns
    -------
    list of tuple
    """
    yamls = sorted(path.name for path in (ROOT / "hparams").glob("*.yaml"))
    unknown = [yaml for yaml in yamls + list(chosen or []) if yaml not in RECIPES]
    if unknown:
        raise SystemExit(f"device_check: no recipe entry for {unknown}; add them to RECIPES")
    if is_cuda(device):
        runs = [(yaml, "bf16") for yaml in yamls] + [(FP16_RECIPE, "fp16")]
    else:
        # The reduced version: fp32 everywhere (bf16 is slow on CPUs without AMX, and
        # SpeechBrain refuses fp16 on a CPU), and the one second run in bf16.
        runs = [(yaml, "fp32") for yaml in yamls] + [(FP16_RECIPE, "bf16")]
    return [run for run in runs if not chosen or run[0] in chosen]


def run_recipe(yaml, precision, device, workdir, timeout):
    """Runs one recipe; returns its entry of the report."""
    name = f"{Path(yaml).stem}-{precision}"
    _, fixture, _ = RECIPES[yaml]
    root = workdir / "data" / (fixture or "none")
    output = workdir / "runs" / name
    command = recipe_command(yaml, device, precision, root, output)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if not is_cuda(device):
        env["OMP_NUM_THREADS"] = "1"
    start = time.time()
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout
        )
        passed, tail = result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    except subprocess.TimeoutExpired as expired:
        passed, tail = False, f"timed out after {timeout} s\n{str(expired.stdout or '')[-2000:]}"
    entry = {
        "yaml": yaml,
        "precision": precision,
        "passed": passed,
        "seconds": round(time.time() - start, 1),
    }
    if not passed:
        entry["error"] = last_error_line(tail)
        entry["log_tail"] = tail
    (workdir / "runs").mkdir(parents=True, exist_ok=True)
    (workdir / "runs" / f"{name}.log").write_text(tail, encoding="utf-8")
    print(f"recipe {name}: {'pass' if passed else 'FAIL'} ({entry['seconds']} s)", flush=True)
    return entry


def last_error_line(text):
    """The last line that looks like an error, else the last line."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line or "Exception" in line:
            return line.strip()[:500]
    return lines[-1][:500] if lines else ""


def check_recipes(args, workdir):
    """Section 1: every recipe YAML in debug mode on generated layouts."""
    for fixture in sorted({entry[1] for entry in RECIPES.values() if entry[1]}):
        build_fixture(fixture, workdir / "data" / fixture)
    runs = recipe_runs(args.device, args.recipes.split(",") if args.recipes else None)
    jobs = args.jobs or (4 if is_cuda(args.device) else 2)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        entries = list(
            pool.map(
                lambda run: run_recipe(*run, args.device, workdir, args.timeout),
                runs,
            )
        )
    return {"runs": entries, "passed": all(entry["passed"] for entry in entries)}


# ---------------------------------------------------------------- 2. conformance


def check_conformance(args):
    """Section 2: the conformance dumps replayed on the device, fp32, TF32 off."""
    from ssast_sb.conformance import run as run_conformance

    dumps = sorted(Path(args.reference).glob("*_seed*.pt"))
    dumps = [path for path in dumps if not path.name.startswith("features_")]
    if not dumps:
        return {"skipped": f"no reference dumps in {args.reference}", "passed": True}
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    results = []
    for path in dumps:
        report = run_conformance(str(path), device=args.device, print_lines=False)
        results.append(
            {
                "dump": path.name,
                "passed": report.passed,
                "checks": len(report.lines),
                "failures": report.failures,
            }
        )
        print(f"conformance {path.name}: {'PASS' if report.passed else 'FAIL'}", flush=True)
    return {"dumps": results, "passed": all(result["passed"] for result in results)}


# ---------------------------------------------------------------- 3. pretraining step


def step_settings(device):
    """Model and batch of the step benchmark: the paper's on a GPU, tiny on a CPU."""
    if is_cuda(device):
        return dict(size="base", target_frames=1024, batch=24, warmup=3, reps=10)
    return dict(size="tiny", target_frames=64, batch=2, warmup=1, reps=2)


def check_step(args):
    """Section 3: step time, clips/s, memory and TFLOP/s per mode and precision."""
    settings = step_settings(args.device)
    peak_tflops = nominal_bf16_peak(args.device)
    measured_bf16 = (
        matmul_peak_gflops(768, 24 * 514, torch.bfloat16, args.device) / 1e3
        if is_cuda(args.device)
        else None
    )
    rows = []
    for precision in ("fp32", "bf16"):
        for mode in MODES:
            options = argparse.Namespace(
                size=settings["size"],
                shape="patch",
                target_frames=settings["target_frames"],
                batch=settings["batch"],
                device=args.device,
                precision=precision,
                num_masked=None,
                decoder_dim=None,
                decoder_depth=2,
            )
            runner = StepRunner(options, mode)
            for _ in range(settings["warmup"]):
                runner.step()
            times = sorted(runner.step() for _ in range(settings["reps"]))
            median = times[len(times) // 2]
            memory = runner.memory.report()
            achieved = runner.flops / median / 1e12
            reference = peak_tflops or measured_bf16
            rows.append(
                {
                    "mode": mode,
                    "precision": precision,
                    "step_s": round(median, 4),
                    "clips_per_s": round(settings["batch"] / median, 2),
                    # On a CPU the in-process peak RSS cannot tell the runs apart: not reported.
                    "peak_memory_mb": memory["step_peak_mb"] if is_cuda(args.device) else None,
                    "tflops": round(achieved, 4),
                    "fraction_of_bf16_peak": round(achieved / reference, 3) if reference else None,
                }
            )
            print(f"step {mode} {precision}: {median:.4f} s, {achieved:.2f} TFLOP/s", flush=True)
            del runner
            if is_cuda(args.device):
                torch.cuda.empty_cache()
    return {
        **settings,
        "shape": "patch",
        "nominal_bf16_peak_tflops": peak_tflops,
        "measured_bf16_matmul_tflops": round(measured_bf16, 1) if measured_bf16 else None,
        "rows": rows,
    }


# ---------------------------------------------------------------- 4. SDPA kernel

#: Profiler op name -> kernel family.
SDPA_KERNELS = {
    "_scaled_dot_product_flash_attention_for_cpu": "flash (CPU)",
    "_scaled_dot_product_flash_attention": "flash",
    "_scaled_dot_product_efficient_attention": "memory-efficient",
    "_scaled_dot_product_cudnn_attention": "cuDNN",
    "_scaled_dot_product_attention_math": "math",
}


def sdpa_kernels(events):
    """Kernel families named by profiler events (longest op names first, so CPU flash wins).

    Example
    -------
    >>> sdpa_kernels(["aten::linear", "aten::_scaled_dot_product_flash_attention_for_cpu"])
    ['flash (CPU)']
    """
    found = []
    for event in events:
        for op in sorted(SDPA_KERNELS, key=len, reverse=True):
            if event.endswith(op):
                if SDPA_KERNELS[op] not in found:
                    found.append(SDPA_KERNELS[op])
                break
    return found


def check_sdpa(args):
    """Section 4: the attention kernel of the encoder's shapes, per precision."""
    from ssast_sb.encoder import EncoderConfig, SSASTEncoder

    size, tdim = ("base", 1024) if is_cuda(args.device) else ("tiny", 128)
    config = EncoderConfig.from_names(size, "patch", fstride=10, tstride=10, input_tdim=tdim)
    encoder = SSASTEncoder(config).to(args.device).eval()
    features = torch.randn(2, tdim, 128, device=args.device)
    activities = [torch.profiler.ProfilerActivity.CPU]
    result = {
        "size": size,
        "tokens": config.num_patches + 2,
        "head_dim": config.embed_dim // config.num_heads,
    }
    for precision in ("fp32", "bf16"):
        with torch.inference_mode(), autocast_context(precision, args.device):
            encoder(features)
            with torch.profiler.profile(activities=activities) as profile:
                encoder(features)
                sync(args.device)
        names = [event.key for event in profile.key_averages()]
        result[precision] = sdpa_kernels(names) or ["none found"]
        print(f"sdpa {precision}: {result[precision]}", flush=True)
    return result


# ---------------------------------------------------------------- 5. inference


def check_inference(args):
    """Section 5: classifier clips/s at the AudioSet configuration."""
    from ssast_sb.encoder import EncoderConfig, SSASTEncoder
    from ssast_sb.models import SSASTClassifier

    if is_cuda(args.device):
        size, tdim, batches, reps = "base", 1024, (1, 32), 10
    else:
        size, tdim, batches, reps = "tiny", 128, (1, 2), 2
    config = EncoderConfig.from_names(size, "patch", fstride=10, tstride=10, input_tdim=tdim)
    model = SSASTClassifier(SSASTEncoder(config), num_classes=527).to(args.device).eval()
    rows = []
    for precision in ("fp32", "bf16"):
        for batch in batches:
            features = torch.randn(batch, tdim, 128, device=args.device)
            times = []
            with torch.inference_mode(), autocast_context(precision, args.device):
                for rep in range(reps + 2):
                    sync(args.device)
                    start = time.perf_counter()
                    model(features)
                    sync(args.device)
                    if rep >= 2:
                        times.append(time.perf_counter() - start)
            median = sorted(times)[len(times) // 2]
            rows.append(
                {
                    "precision": precision,
                    "batch": batch,
                    "batch_s": round(median, 5),
                    "clips_per_s": round(batch / median, 1),
                }
            )
            print(f"inference {precision} batch {batch}: {batch / median:.1f} clips/s", flush=True)
    return {"size": size, "frames": tdim, "tokens": config.num_patches + 2, "rows": rows}


# ---------------------------------------------------------------- report


def format_report(report):
    """``report.md`` from the report dict."""
    env = report["environment"]
    lines = ["# Device check", "", f"Command: `{report['command']}`", ""]
    lines += [f"- {key}: {value}" for key, value in env.items()]
    lines += [f"- total minutes: {report['minutes']}", ""]
    for name in ("recipes", "conformance", "step", "sdpa", "inference"):
        if "error" in report.get(name, {}):
            lines += [f"## {name}: FAILED", "", f"    {report[name]['error']}", ""]
            report = {key: value for key, value in report.items() if key != name}
    recipes = report.get("recipes")
    if recipes:
        lines += ["## Recipes in debug mode (2 batches, 2 epochs)", ""]
        lines += ["| YAML | precision | result | seconds | error |", "|---|---|---|---|---|"]
        for run in recipes["runs"]:
            result = "pass" if run["passed"] else "FAIL"
            error = run.get("error", "").replace("|", "\\|")
            lines.append(
                f"| {run['yaml']} | {run['precision']} | {result} | {run['seconds']} | {error} |"
            )
        lines.append("")
    conformance = report.get("conformance")
    if conformance:
        lines += ["## Conformance on the device (fp32, TF32 off)", ""]
        if "skipped" in conformance:
            lines += [f"Skipped: {conformance['skipped']}", ""]
        else:
            lines += ["| dump | result | checks | failures |", "|---|---|---|---|"]
            for dump in conformance["dumps"]:
                result = "PASS" if dump["passed"] else "FAIL"
                failures = ", ".join(dump["failures"]) or "-"
                lines.append(f"| {dump['dump']} | {result} | {dump['checks']} | {failures} |")
            lines.append("")
    step = report.get("step")
    if step:
        peak = step["nominal_bf16_peak_tflops"] or step["measured_bf16_matmul_tflops"]
        lines += [
            f"## Pretraining step: {step['size']} {step['shape']}, {step['target_frames']} frames, "
            f"batch {step['batch']} (median of {step['reps']})",
            "",
            (
                f"bf16 peak used for the fraction: {peak} TFLOP/s "
                f"({'nominal' if step['nominal_bf16_peak_tflops'] else 'measured matmul rate'})."
                if peak
                else "No bf16 peak on a CPU: the fraction column is empty, memory is not measured."
            ),
            "",
            "| mode | precision | step s | clips/s | peak memory MB | TFLOP/s | of bf16 peak |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in step["rows"]:
            lines.append(
                f"| {row['mode']} | {row['precision']} | {row['step_s']} | {row['clips_per_s']} | "
                f"{row['peak_memory_mb']} | {row['tflops']} | {row['fraction_of_bf16_peak']} |"
            )
        lines.append("")
    sdpa = report.get("sdpa")
    if sdpa:
        lines += [
            f"## Attention kernel ({sdpa['size']}, {sdpa['tokens']} tokens)",
            "",
            f"- fp32: {', '.join(sdpa['fp32'])}",
            f"- bf16: {', '.join(sdpa['bf16'])}",
            "",
        ]
    inference = report.get("inference")
    if inference:
        lines += [
            f"## Inference: {inference['size']} patch, stride 10, {inference['frames']} frames, "
            f"{inference['tokens']} tokens, 527 classes",
            "",
            "| precision | batch | seconds per batch | clips/s |",
            "|---|---|---|---|",
        ]
        for row in inference["rows"]:
            lines.append(
                f"| {row['precision']} | {row['batch']} | {row['batch_s']} | {row['clips_per_s']} |"
            )
        lines.append("")
    lines.append(f"Overall: {'PASS' if report['passed'] else 'FAIL'}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    start = time.time()
    arguments = sys.argv[1:] if argv is None else list(argv)
    report = {
        "command": "python benchmarks/device_check.py " + " ".join(arguments),
        "environment": environment(args.device),
    }
    checks = {
        "recipes": lambda: check_recipes(args, output / "work"),
        "conformance": lambda: check_conformance(args),
        "step": lambda: check_step(args),
        "sdpa": lambda: check_sdpa(args),
        "inference": lambda: check_inference(args),
    }
    unknown = [name for name in sections if name not in checks]
    if unknown:
        raise SystemExit(f"device_check: unknown sections {unknown}; choose from {list(checks)}")
    for name in sections:
        try:
            report[name] = checks[name]()
        except Exception as error:  # a broken section is reported, the others still run
            report[name] = {"passed": False, "error": f"{type(error).__name__}: {error}"}
            print(f"{name}: FAILED with {report[name]['error']}", flush=True)
    report["minutes"] = round((time.time() - start) / 60, 2)
    report["passed"] = all(report[name].get("passed", True) for name in sections)
    (output / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (output / "report.md").write_text(format_report(report), encoding="utf-8")
    print(f"device check: {'PASS' if report['passed'] else 'FAIL'} in {report['minutes']} min")
    print(f"report: {output / 'report.md'}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
