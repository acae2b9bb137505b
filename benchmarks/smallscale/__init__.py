"""The small-scale protocol of ``benchmarks/ssl_gain.py``: budgeted pretraining, a clip
cache and few-shot fine-tuning and probing."""
