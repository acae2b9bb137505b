"""Checks ssast_sb against tensors dumped from the original SSAST code.

Usage::

    python -m ssast_sb.conformance DUMP.pt [DUMP.pt ...] [--device cpu]

A dump (format: ``shared/reference/README.md``) holds an original pretraining
state dict, an input batch, the masks drawn, the outputs of both MSPM passes,
the gradients of the joint loss and several fine-tuning configurations. This
tool rebuilds our models from the dump alone (any size, patch or frame),
replays the masks and prints one line per quantity with its largest absolute
difference, then ``conformance: PASS`` or ``conformance: FAIL`` (exit 0 only
on PASS). Forward quantities must agree within 1e-5; gradients within 1e-4
relative to the largest gradient value of their tensor.

Authors
 * ssast-sb contributors
"""

import argparse
import sys

import torch

from ssast_sb.checkpoints import (
    classifier_from_original_finetuned,
    classifier_from_original_pretrained,
    export_original,
    original_name,
    pretrain_model_from_original,
)
from ssast_sb.compat import load_dump
from ssast_sb.errors import report_user_errors

#: Largest absolute difference allowed on forward quantities.
FORWARD_ATOL = 1e-5
#: Largest difference allowed on gradients, relative to the tensor's largest value.
GRAD_RTOL = 1e-4
#: Gradients below this are numerically zero (e.g. ``cpredlayer.2.bias``, docs/fidelity.md c.2).
GRAD_ATOL = 1e-7


class Report:
    """Collects one line per checked quantity.

    Example
    -------
    >>> report = Report(print_lines=False)
    >>> report.forward("x", torch.ones(2), torch.ones(2))
    >>> report.passed
    True
    """

    def __init__(self, print_lines=True):
        self.print_lines = print_lines
        self.failures = []
        self.lines = []

    def _add(self, name, diff, limit, detail="", metric="max_abs_diff"):
        ok = diff <= limit
        line = f"{name:<48} {metric}={diff:.3e} limit={limit:.1e} {'ok' if ok else 'FAIL'}"
        line += f" {detail}" if detail else ""
        self.lines.append(line)
        if self.print_lines:
            print(line, flush=True)
        if not ok:
            self.failures.append(name)

    def forward(self, name, ours, reference, atol=FORWARD_ATOL):
        """Compares a forward quantity."""
        ours, reference = torch.as_tensor(ours).detach().cpu(), torch.as_tensor(reference)
        if ours.shape != reference.shape:
            self._add(
                name, float("inf"), atol, f"shape {tuple(ours.shape)} != {tuple(reference.shape)}"
            )
            return
        diff = (ours.double() - reference.double()).abs().max().item() if ours.numel() else 0.0
        self._add(name, diff, atol)

    def gradient(self, name, ours, reference):
        """Compares a gradient, relative to the reference's largest value."""
        if ours is None:
            self._add(name, float("inf"), GRAD_ATOL, "no gradient")
            return
        ours = ours.detach().cpu().double()
        reference = torch.as_tensor(reference).double()
        diff = (ours - reference).abs().max().item()
        limit = GRAD_RTOL * reference.abs().max().item() + GRAD_ATOL
        self._add(name, diff, limit)

    def gradient_norms(self, grads, reference_norms):
        """Compares every parameter's gradient norm, relative to the reference norm."""
        worst, worst_key = 0.0, ""
        for key, reference in reference_norms.items():
            key, reference = key.removeprefix("module."), float(reference)
            grad = grads.get(key)
            ours = grad.norm().item() if grad is not None else float("inf")
            rel = abs(ours - reference) / max(reference, GRAD_ATOL / GRAD_RTOL)
            if not rel <= worst:
                worst, worst_key = rel, key
        self._add(
            f"grad_norms (all {len(reference_norms)} parameters)",
            worst,
            GRAD_RTOL,
            f"worst {worst_key}",
            metric="max_rel_diff",
        )

    def exact(self, name, equal):
        """Records a check that must hold exactly."""
        self._add(name, 0.0 if equal else float("inf"), 0.0)

    @property
    def passed(self):
        """True when no check failed."""
        return not self.failures


def _config(dump):
    meta = dump["meta"]
    return meta.get("cfg", {}).get("model_size"), meta.get("cluster")


def check_pretraining(dump, report, device="cpu"):
    """Patches, both passes, the joint loss, gradients and the checkpoint round trip."""
    model_size, cluster = _config(dump)
    masking = None if cluster is None else ("cluster" if cluster else "random")
    original = dump["pretrain_state_dict"]
    model, leftovers = pretrain_model_from_original(
        original, model_size=model_size, num_masked=dump["mpc_mask_index"].shape[1], masking=masking
    )
    model.to(device)
    exported = export_original(model, leftovers)
    same = list(exported) == list(original) and all(
        torch.equal(exported[k].cpu(), original[k]) and exported[k].dtype == original[k].dtype
        for k in original
    )
    report.exact("checkpoint original -> ours -> original", same)

    spectrogram = dump["input"].to(device)
    mpc_mask = dump["mpc_mask_index"].to(device)
    mpg_mask = dump["mpg_mask_index"].to(device)
    report.forward("patches", model.targets(spectrogram), dump["patches"])
    with torch.no_grad():
        mpc = model.mpc(spectrogram, mpc_mask)
        mpg = model.mpg(spectrogram, mpg_mask)
    for name in ("hidden", "pred", "nce", "acc"):
        report.forward(f"mpc.{name}", mpc[name], dump["mpc"][name])
    for name in ("hidden", "pred", "mse"):
        report.forward(f"mpg.{name}", mpg[name], dump["mpg"][name])

    model.zero_grad()
    joint = model(spectrogram, mpc_mask, mpg_mask, return_details=True)
    report.forward("joint.loss (one 2B-batch encoder call)", joint["loss"], dump["joint"]["loss"])
    report.forward("joint.mpc.hidden", joint["mpc"]["hidden"], dump["mpc"]["hidden"])
    report.forward("joint.mpg.hidden", joint["mpg"]["hidden"], dump["mpg"]["hidden"])
    joint["loss"].backward()
    grads = {original_name(name): param.grad for name, param in model.named_parameters()}
    for key, reference in dump["grads"].items():
        report.gradient(
            f"grad {key.removeprefix('module.')}", grads[key.removeprefix("module.")], reference
        )
    report.gradient_norms(grads, dump["grad_norms"])
    return model


def check_finetuning(dump, report, device="cpu"):
    """Adapted position embeddings and ``ft_avgtok`` / ``ft_cls`` of every configuration."""
    model_size, _ = _config(dump)
    pretrain = dump["pretrain_state_dict"]
    for name, entry in dump["ft"].items():
        cfg = entry["cfg"]
        state = {k: entry["state_dict_delta"].get(k, pretrain.get(k)) for k in entry["ft_keys"]}
        adapted = classifier_from_original_pretrained(
            pretrain,
            cfg["label_dim"],
            cfg["input_tdim"],
            cfg["fstride"],
            cfg["tstride"],
            model_size=model_size,
        )
        report.forward(
            f"ft[{name}].pos_embed (adapted)",
            adapted.encoder.pos_embed,
            state["module.v.pos_embed"],
        )
        loaded, _ = classifier_from_original_finetuned(
            state, cfg["input_tdim"], cfg["fstride"], cfg["tstride"], model_size=model_size
        )
        loaded.to(device).eval()
        spectrogram = entry["input"].to(device)
        with torch.no_grad():
            for pooling, key in (("mean", "ft_avgtok"), ("cls", "ft_cls")):
                loaded.pooling = pooling
                report.forward(f"ft[{name}].{key}", loaded(spectrogram), entry[key])


def run(path, device="cpu", print_lines=True):
    """Runs every check of one dump.

    Arguments
    ---------
    path : str
        The dump.
    device : str
        Where to run the models.
    print_lines : bool
        Print each line as it is checked.

    Returns
    -------
    Report
    """
    dump = load_dump(path)
    report = Report(print_lines)
    if print_lines:
        meta = dump["meta"]
        print(f"# {path}: {meta.get('config')} cfg={meta.get('cfg')} batch={meta.get('batch')}")
    check_pretraining(dump, report, device)
    check_finetuning(dump, report, device)
    return report


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dumps", nargs="+", help="reference dumps from the original code")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    # Exact fp32 matmuls on GPUs (speechbrain enables TF32 when imported).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    failures = []
    for path in args.dumps:
        failures += [f"{path}: {name}" for name in run(path, args.device).failures]
    for failure in failures:
        print(f"failed: {failure}")
    print(f"conformance: {'FAIL' if failures else 'PASS'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(report_user_errors(main)())
