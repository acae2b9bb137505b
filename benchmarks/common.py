"""Helpers shared by the benchmark scripts: models, FLOP counts, timing, memory.

Authors
 * ssast-sb contributors
"""

import contextlib
import os
import resource
import time

import torch

from ssast_sb.encoder import EncoderConfig, SSASTEncoder
from ssast_sb.mae import MAEPretrainModel
from ssast_sb.models import SSASTPretrainModel

MODES = ("faithful", "single_pass", "mae")


def add_model_arguments(parser, size="tiny"):
    """The model options every benchmark takes: ``--size``, ``--shape`` and ``--target-frames``."""
    parser.add_argument("--size", default=size, choices=["tiny", "small", "base"])
    parser.add_argument("--shape", default="patch", choices=["patch", "frame"])
    parser.add_argument(
        "--target-frames",
        "--tdim",
        dest="target_frames",
        type=int,
        default=1024,
        help="input frames (--tdim is the former name)",
    )


def valid_mode(mode):
    """Whether ``mode`` is one of :data:`MODES`, optionally with a ``+compile`` suffix."""
    base, _, suffix = mode.partition("+")
    return base in MODES and suffix in ("", "compile")


def default_num_masked(config):
    """400 of 512 patches (the paper's setting), scaled to the grid."""
    return max(1, round(400 * config.num_patches / 512))


def encoder_flops(tokens, width, depth, mlp_ratio=4.0):
    """Forward FLOPs of ``depth`` transformer blocks over ``tokens`` tokens (2 per MAC)."""
    per_token_macs = (4 + 2 * mlp_ratio) * width * width + 2 * tokens * width  # linears, attention
    return 2 * depth * tokens * per_token_macs


def step_flops(config, batch, mode="faithful", num_masked=None, decoder_dim=None, decoder_depth=2):
    """Approximate FLOPs of one step, forward + backward (3x the forward matmul FLOPs).

    ``faithful`` counts two encoder passes over ``N + 2`` tokens, ``single_pass``
    one, ``mae`` one over the ``2 + N - M`` visible tokens plus the decoder
    over all ``N + 2`` positions. Each counts the two prediction heads on the
    M masked patches.
    """
    num_masked = num_masked or default_num_masked(config)
    patches, width = config.num_patches, config.embed_dim
    patch_dim = config.fshape * config.tshape
    embed = 2 * patches * width * patch_dim

    def heads(head_width):
        return 2 * 2 * num_masked * (head_width * head_width + head_width * patch_dim)

    full = encoder_flops(patches + 2, width, config.depth, config.mlp_ratio)
    if mode == "faithful":
        forward = 2 * (embed + full) + heads(width)
    elif mode == "single_pass":
        forward = embed + full + heads(width)
    elif mode == "mae":
        visible = patches + 2 - num_masked
        decoder_dim = decoder_dim or width
        forward = (
            embed
            + encoder_flops(visible, width, config.depth, config.mlp_ratio)
            + 2 * visible * width * decoder_dim
            + encoder_flops(patches + 2, decoder_dim, decoder_depth)
            + heads(decoder_dim)
        )
    else:
        raise ValueError(f"Unknown mode {mode!r}; choose from {MODES}")
    return 3 * forward * batch


def matmul_peak_gflops(width, rows, dtype, device, reps=5):
    """Measured rate of a dense ViT-shaped matmul ``(rows, D) @ (D, 4D)``."""
    a = torch.randn(rows, width, device=device, dtype=dtype)
    b = torch.randn(width, 4 * width, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * rows * width * 4 * width / best / 1e9


def sync(device):
    """Waits for queued GPU work, so that wall-clock times cover it."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def autocast_context(precision, device):
    """``torch.autocast`` to bfloat16 for ``bf16``, nothing for ``fp32``."""
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def peak_rss_mb():
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb():
    """Resident memory of this process now (the peak so far where /proc is absent)."""
    try:
        with open("/proc/self/statm") as stream:
            pages = int(stream.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


class MemoryWatch:
    """Peak memory a workload adds on top of what was resident when it was created.

    On CUDA it reads the allocator's peak; on CPU the process's peak RSS
    (``ru_maxrss``), which only tells one workload apart if it runs alone in
    its process.
    """

    def __init__(self, device):
        self.cuda = str(device).startswith("cuda")
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)
            self.baseline_mb = torch.cuda.memory_allocated(device) / 2**20
        else:
            self.baseline_mb = current_rss_mb()
        self.device = device

    def report(self):
        """``peak_rss_mb``, and ``step_peak_mb``: the peak above the baseline."""
        if self.cuda:
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
            return {"peak_rss_mb": round(peak_rss_mb(), 1), "step_peak_mb": round(peak, 1)}
        peak = peak_rss_mb()
        return {"peak_rss_mb": round(peak, 1), "step_peak_mb": round(peak - self.baseline_mb, 1)}


def build_model(mode, config, num_masked, decoder_dim=None, decoder_depth=2):
    """The pretraining model of a mode."""
    encoder = SSASTEncoder(config)
    if mode == "mae":
        return MAEPretrainModel(
            encoder, num_masked=num_masked, decoder_dim=decoder_dim, decoder_depth=decoder_depth
        )
    return SSASTPretrainModel(encoder, num_masked=num_masked, single_pass=mode == "single_pass")


class StepRunner:
    """One model and its inputs; :meth:`step` times one forward + backward."""

    def __init__(self, args, mode):
        torch.manual_seed(0)
        mode, _, suffix = mode.partition("+")
        self.device = args.device
        self.batch = args.batch
        self.config = EncoderConfig.from_names(args.size, args.shape, input_tdim=args.target_frames)
        self.num_masked = args.num_masked or default_num_masked(self.config)
        self.model = build_model(
            mode, self.config, self.num_masked, args.decoder_dim, args.decoder_depth
        ).to(args.device)
        # torch.compile (inductor) is an option of SpeechBrain's Brain (--compile) too.
        self.forward = torch.compile(self.model) if suffix == "compile" else self.model
        self.spectrogram = torch.randn(args.batch, args.target_frames, 128, device=args.device)
        self.generator = torch.Generator(device=args.device).manual_seed(0)
        self.precision = args.precision
        self.flops = step_flops(
            self.config, args.batch, mode, self.num_masked, args.decoder_dim, args.decoder_depth
        )
        self.memory = MemoryWatch(args.device)

    def step(self):
        """Seconds for drawing masks, forward and backward."""
        sync(self.device)
        start = time.perf_counter()
        masks = self.model.draw_masks(self.batch, self.generator, self.device)
        with autocast_context(self.precision, self.device):
            loss = self.forward(self.spectrogram, *masks)["loss"]
        loss.backward()
        self.model.zero_grad(set_to_none=True)
        sync(self.device)
        return time.perf_counter() - start


#: Fine-tuning strides of the original recipes (docs/fidelity.md b.2) when none is given.
DEFAULT_STRIDES = {"patch": (10, 10), "frame": (128, 1)}


def finetune_config(args):
    """The encoder config of the fine-tuning grid."""
    return EncoderConfig.from_names(
        args.size,
        args.shape,
        input_tdim=args.target_frames,
        fstride=args.fstride,
        tstride=args.tstride,
    )


def classifier_forward_flops(config, batch, num_classes):
    """Forward FLOPs of the classifier: patch embedding, blocks, head."""
    embed = 2 * config.num_patches * config.embed_dim * config.fshape * config.tshape
    blocks = encoder_flops(config.num_patches + 2, config.embed_dim, config.depth, config.mlp_ratio)
    head = 2 * config.embed_dim * num_classes
    return (embed + blocks + head) * batch
