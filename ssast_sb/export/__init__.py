"""Export of SSAST models to Hugging Face's Audio Spectrogram Transformer and to ONNX.

``python -m ssast_sb.export MODEL --format hf|onnx --output DIR`` (see
:mod:`ssast_sb.export.__main__`). :mod:`ssast_sb.export.source` loads any SSAST
model, :mod:`ssast_sb.export.hf` writes ``ASTModel`` /
``ASTForAudioClassification`` folders, :mod:`ssast_sb.export.onnx` ONNX graphs
(optionally int8), :mod:`ssast_sb.export.card` their model cards.
``transformers``, ``onnx`` and ``onnxruntime`` come with the ``export`` extra
and are imported only when used.

Authors
 * ssast-sb contributors
"""
