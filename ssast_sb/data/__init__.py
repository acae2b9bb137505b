"""Data preparation: audio loading and SpeechBrain CSV manifests per dataset."""

from .audio import AudioError, AudioInfo, audio_info, load_audio
from .audioset import prepare_audioset
from .generic import mix_manifests, prepare_generic
from .librispeech import prepare_librispeech
from .manifest import read_manifest, validate_audio_rows, write_manifest_atomic

__all__ = [
    "AudioError",
    "AudioInfo",
    "audio_info",
    "load_audio",
    "mix_manifests",
    "prepare_audioset",
    "prepare_generic",
    "prepare_librispeech",
    "read_manifest",
    "validate_audio_rows",
    "write_manifest_atomic",
]
