"""ssast-sb: SSAST (Self-Supervised Audio Spectrogram Transformer) for SpeechBrain."""

__version__ = "0.1.0"
