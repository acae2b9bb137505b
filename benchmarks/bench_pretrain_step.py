"""Times one MSPM pretraining step (forward + backward, no optimiser step).

Three ways to compute the step (``--mode``):

* ``faithful``: the original's joint step of docs/fidelity.md g: a
  discriminative and a generative pass with independent masks over all
  ``N + 2`` tokens (run as one encoder call on a doubled batch), ``nce + 10 * mse``;
* ``single_pass``: ``SSASTPretrainModel(single_pass=True)``, one mask and one
  encoder pass feed both heads (docs/fidelity.md f.10, a departure);
* ``mae``: :class:`ssast_sb.mae.MAEPretrainModel`, the encoder on the visible
  patches only and a light decoder over all positions (docs/fidelity.md f.9, a departure).

Prints one line per repetition, the achieved GFLOP/s next to the machine's
dense-matmul rate of the same precision measured in the same run, and as its
last line a JSON object with ``median_s``, ``min_s``, ``peak_rss_mb``,
``gflops_per_s`` and the arguments.

``--compare`` times several modes in one run. Each mode lives in its own child
process (so that its peak memory is its own: ``ru_maxrss`` is per process),
and the parent interleaves the repetitions: every repetition times each mode
once, in a rotating order, so that load from other jobs hits all modes alike.
The ratios it prints (median time of the reference mode / median time of each
mode; peak memory of each mode / the reference's) therefore come from one run.

Examples::

    python benchmarks/bench_pretrain_step.py --size tiny --shape patch --target-frames 1024 \
        --batch 2 --threads 2 --reps 7 --mode faithful --precision fp32
    python benchmarks/bench_pretrain_step.py --compare --size tiny --target-frames 1024 \
        --batch 2 --reps 5
    python benchmarks/bench_pretrain_step.py --compare --modes faithful,faithful+compile --size base

A ``+compile`` suffix on a mode runs the model through ``torch.compile`` (what
SpeechBrain's ``--compile`` run option does to a recipe's modules).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from ssast_sb.encoder import EncoderConfig

if __package__ in (None, ""):  # run as a script: the repository root makes `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import MODES, StepRunner, add_model_arguments, matmul_peak_gflops, valid_mode  # noqa: E402

#: Prefix of the lines a worker process sends back to the parent.
REPLY = "@@ "


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_arguments(parser, size="tiny")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--num-masked",
        type=int,
        default=None,
        help="masked patches (default: 400 of 512, scaled to the grid)",
    )
    parser.add_argument(
        "--mode",
        default="faithful",
        help=f"one of {MODES}; a '+compile' suffix runs the model through torch.compile",
    )
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--decoder-dim", type=int, default=None, help="mae: decoder width")
    parser.add_argument("--decoder-depth", type=int, default=2, help="mae: decoder blocks")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="time every mode of --modes in one run, interleaved, and print their ratios",
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="comma-separated modes for --compare; the first is the reference",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = sorted(mode for mode in {args.mode, *args.modes} if not valid_mode(mode))
    if unknown:
        parser.error(f"unknown modes {unknown}; choose from {list(MODES)}, optionally +compile")
    return args


def _reply(payload):
    print(REPLY + json.dumps(payload), flush=True)


def run_worker(args):
    """Child of ``--compare``: builds one mode and times a step per ``step`` line on stdin."""
    torch.set_num_threads(args.threads)
    runner = StepRunner(args, args.mode)
    _reply({"ready": args.mode, "flops": runner.flops, "num_masked": runner.num_masked})
    for line in sys.stdin:
        command = line.strip()
        if command == "step":
            _reply({"seconds": runner.step()})
        elif command == "done":
            _reply(runner.memory.report())
            return


class Worker:
    """The parent's handle on one ``--worker`` child process."""

    def __init__(self, args, mode):
        self.mode = mode
        command = [sys.executable, os.path.abspath(__file__), "--worker", "--mode", mode]
        for name in ("size", "shape", "target_frames", "batch", "threads", "precision", "device"):
            command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        for name in ("num_masked", "decoder_dim"):
            if getattr(args, name) is not None:
                command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        command += ["--decoder-depth", str(args.decoder_depth)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.info = self.receive()

    def receive(self):
        """The next reply, skipping anything else the child printed."""
        for line in self.process.stdout:
            if line.startswith(REPLY):
                return json.loads(line[len(REPLY) :])
        raise RuntimeError(f"worker {self.mode!r} exited with {self.process.wait()}")

    def ask(self, command):
        """Sends one command and returns its reply."""
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.receive()

    def close(self):
        """Memory report of the child, which then exits."""
        report = self.ask("done")
        self.process.stdin.close()
        self.process.wait()
        return report


def summarize(times, flops):
    """Median, min and achieved GFLOP/s of a list of step times."""
    median = statistics.median(times)
    return {
        "median_s": round(median, 4),
        "min_s": round(min(times), 4),
        "gflops_per_s": round(flops / median / 1e9, 1),
    }


def measured_peak(args, config):
    """Dense matmul rate at the benchmark's precision, measured now."""
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    rows = 2 * args.batch * (config.num_patches + 2)
    return matmul_peak_gflops(config.embed_dim, rows, dtype, args.device)


def run_single(args):
    """Times ``--mode`` in this process."""
    runner = StepRunner(args, args.mode)
    for _ in range(args.warmup):
        runner.step()
    times = []
    for rep in range(args.reps):
        times.append(runner.step())
        print(f"rep {rep}: {times[-1]:.3f} s", flush=True)
    summary = summarize(times, runner.flops)
    peak = measured_peak(args, runner.config)
    achieved = summary["gflops_per_s"]
    print(
        f"{args.mode}: achieved {achieved:.1f} GFLOP/s; measured {args.precision} matmul peak "
        f"{peak:.1f} GFLOP/s; ratio {achieved / peak:.2f}"
    )
    return {
        **vars(args),
        **summary,
        **runner.memory.report(),
        "matmul_peak_gflops_per_s": round(peak, 1),
        "num_masked": runner.num_masked,
        "torch": torch.__version__,
    }


def run_compare(args):
    """Times every mode of ``--modes`` in one run, interleaved, and their ratios."""
    modes = args.modes
    workers = {mode: Worker(args, mode) for mode in modes}
    times = {mode: [] for mode in modes}
    try:
        for rep in range(args.warmup + args.reps):
            # Rotate the order so that no mode always runs first (or right after another).
            order = modes[rep % len(modes) :] + modes[: rep % len(modes)]
            seconds = {mode: workers[mode].ask("step")["seconds"] for mode in order}
            if rep < args.warmup:
                continue
            for mode in modes:
                times[mode].append(seconds[mode])
            line = " | ".join(f"{mode} {seconds[mode]:.3f} s" for mode in modes)
            print(f"rep {rep - args.warmup}: {line}", flush=True)
        memory = {mode: workers[mode].close() for mode in modes}
    finally:
        for worker in workers.values():
            if worker.process.poll() is None:
                worker.process.kill()
    config = EncoderConfig.from_names(args.size, args.shape, input_tdim=args.target_frames)
    peak = measured_peak(args, config)
    results = {}
    for mode in modes:
        results[mode] = {**summarize(times[mode], workers[mode].info["flops"]), **memory[mode]}
        achieved = results[mode]["gflops_per_s"]
        print(
            f"{mode}: median {results[mode]['median_s']:.3f} s (min {results[mode]['min_s']:.3f}); "
            f"achieved {achieved:.1f} GFLOP/s; measured {args.precision} matmul peak "
            f"{peak:.1f} GFLOP/s; ratio {achieved / peak:.2f}; peak RSS "
            f"{results[mode]['peak_rss_mb']:.0f} MB (step +{results[mode]['step_peak_mb']:.0f} MB)"
        )
    reference = results[modes[0]]
    speedup = {mode: round(reference["median_s"] / results[mode]["median_s"], 3) for mode in modes}
    memory_ratio = {
        mode: round(results[mode]["step_peak_mb"] / max(reference["step_peak_mb"], 1e-9), 3)
        for mode in modes
    }
    rss_ratio = {
        mode: round(results[mode]["peak_rss_mb"] / reference["peak_rss_mb"], 3) for mode in modes
    }
    for mode in modes[1:]:
        print(
            f"{modes[0]} / {mode}: median time ratio {speedup[mode]:.2f}x; step memory "
            f"{mode} / {modes[0]} {memory_ratio[mode]:.2f}, peak RSS {rss_ratio[mode]:.2f}"
        )
    return {
        **vars(args),
        **{key: reference[key] for key in ("median_s", "min_s", "peak_rss_mb", "gflops_per_s")},
        "reference_mode": modes[0],
        "matmul_peak_gflops_per_s": round(peak, 1),
        "num_masked": workers[modes[0]].info["num_masked"],
        "interleaved": True,
        "results": results,
        "speedup": speedup,
        "step_memory_ratio": memory_ratio,
        "peak_rss_ratio": rss_ratio,
        "torch": torch.__version__,
    }


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return None
    torch.set_num_threads(args.threads)
    result = run_compare(args) if args.compare else run_single(args)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
