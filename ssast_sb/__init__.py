"""ssast-sb: SSAST (Self-Supervised Audio Spectrogram Transformer) for SpeechBrain."""

import logging

__version__ = "0.1.0"


def _drop_torchvision_notice(record):
    """SpeechBrain's train logger says at import that torchvision is absent; nothing here needs it.

    It imports when a recipe's YAML builds its ``FileTrainLogger``, after this
    package, so the notice is filtered out of every run's log.
    """
    return "torchvision is not available" not in record.getMessage()


logging.getLogger("speechbrain.utils.train_logger").addFilter(_drop_torchvision_notice)
