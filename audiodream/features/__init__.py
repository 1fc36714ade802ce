"""Audio features: reading any audio file, batched log-mel, z-score, and the way back to sound."""

from audiodream.features.audio_io import AUDIO_EXTENSIONS, AudioReadError, load_audio, write_wav
from audiodream.features.logmel import LogMelExtractor, NormalizedMel, denormalize, normalize
from audiodream.features.inversion import MelInverter

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioReadError",
    "load_audio",
    "write_wav",
    "LogMelExtractor",
    "NormalizedMel",
    "normalize",
    "denormalize",
    "MelInverter",
]
