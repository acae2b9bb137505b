"""Export any SSAST model to Hugging Face's AST or to ONNX.

::

    python -m ssast_sb.export results/esc50/0/fold1/inference --format hf --output hf_esc50
    python -m ssast_sb.export SSAST-Base-Patch-400.pth --format hf --output hf_ssast \\
        --fstride 10 --tstride 10 --input-tdim 1024
    python -m ssast_sb.export results/custom/inference --format onnx --output onnx_model
    python -m ssast_sb.export results/custom/inference --format onnx --quantize int8 \\
        --output onnx_int8

``MODEL`` is what ``python -m ssast_sb.embed --model`` takes: a released
``SSAST-*.pth``, a pretraining run's output (``pretrained/`` folder, its
``.pth``/``.ckpt``, a ``CKPT+*`` folder) or an inference folder written by
fine-tuning. A pretraining checkpoint is exported at its pretraining grid or at
the one ``--fstride``, ``--tstride`` and ``--input-tdim`` choose (the original
position-embedding adaptation, as fine-tuning applies), with AudioSet
statistics unless ``--mean``/``--std`` or ``--norm-preset`` say otherwise.

``--format hf`` writes a folder that ``transformers`` loads: an
``ASTForAudioClassification`` for a classifier fine-tuned with ``pooling: cls``,
an ``ASTModel`` otherwise (the folder's ``README.md`` says how to pool), with
an ``ASTFeatureExtractor`` holding the model's statistics and length. Frame
models (128x2 patches) and one-token models cannot be expressed in ``ASTConfig``:
the error says so and points to ONNX.

``--format onnx`` writes ``model.onnx`` (the classifier, or the encoder of a
pretraining checkpoint or of ``--encoder-only``), its metadata and model card,
loadable by :class:`ssast_sb.onnx_inference.ONNXAudioClassifier`.
``--quantize int8`` quantizes its linear layers dynamically.

Both need the ``export`` extra: ``pip install -e ".[export]"``.

Authors
 * ssast-sb contributors
"""

import argparse
import json

from ssast_sb.embed import add_checkpoint_grid_options

PROG = "python -m ssast_sb.export"
FORMATS = ("hf", "onnx")


def build_parser():
    """Command-line options of ``python -m ssast_sb.export``."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("model", help="pretraining checkpoint or inference folder")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--output", required=True, help="folder to write")
    parser.add_argument(
        "--quantize", choices=["int8"], default=None, help="ONNX: int8 dynamic quantization"
    )
    parser.add_argument(
        "--encoder-only",
        action="store_true",
        help="export an inference folder's encoder without its head (tokens and embedding)",
    )
    add_checkpoint_grid_options(parser)
    return parser


def main(argv=None):
    """Runs the command line; returns what the exporter wrote."""
    from ssast_sb.export.source import load_export_source

    args = build_parser().parse_args(argv)
    if args.quantize and args.format != "onnx":
        raise SystemExit("--quantize applies to --format onnx")
    source = load_export_source(
        args.model,
        fstride=args.fstride,
        tstride=args.tstride,
        input_tdim=args.input_tdim,
        mean=args.mean,
        std=args.std,
        norm_preset=args.norm_preset,
    )
    if args.encoder_only:
        source.classifier, source.labels, source.multi_label = None, [], False
    if args.format == "hf":
        from ssast_sb.export.hf import export_hf

        summary = export_hf(source, args.output)
    else:
        from ssast_sb.export.onnx import export_onnx

        summary = export_onnx(source, args.output, quantize=args.quantize)
    print(json.dumps({"format": args.format, "output": args.output, **summary}))
    return summary


if __name__ == "__main__":
    from ssast_sb.console import log_to_console

    log_to_console()
    try:
        main()
    except (ValueError, FileNotFoundError) as error:  # what cannot be exported, and why
        raise SystemExit(f"{PROG}: error: {error}") from None
