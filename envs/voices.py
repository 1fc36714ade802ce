"""A bank of synthetic voices: every syllable of every voice as a raw log-mel chunk.

Why a bank: the formant synthesiser needs about 3-4 ms per syllable, so synthesising
each answer at step time would cap an env at ~250 steps/s, far below the >= 1000
tokenised steps/s a worker needs. Instead each voice is synthesised once per process
(lazily, the first time an episode uses it): `takes` utterances, each a random
permutation of all syllables, so every syllable exists `takes` times with natural
coarticulation, framed exactly like the corpus (whole-utterance log-mel, N // hop frames)
and cut into one chunk per syllable. An episode then only indexes and z-scores arrays.

A voice's chunks depend only on (seed, voice index), never on which env or episode asked
first, so seeded episodes are reproducible and envs in one process share the bank.
"""

from __future__ import annotations

import dataclasses
import json
import zlib

import numpy as np
import torch

from audiodream.config.schema import FeaturesConfig
from audiodream.data.synthetic.grammar import SYLLABLES
from audiodream.data.synthetic.synth import FormantSynth, sample_voice
from audiodream.features.logmel import LogMelExtractor

N_SYLLABLES = len(SYLLABLES)
_SHARED_BANKS: dict[str, "VoiceBank"] = {}


def split_seed(split: str) -> int:
    """A stable seed per corpus split, so val/test episodes use voices train never had."""
    return zlib.crc32(split.encode("utf-8"))


class VoiceBank:
    """Raw (not z-scored) log-mel chunks, ``(takes, n_syllables, n_mels, chunk_frames)`` per voice."""

    def __init__(self, features: FeaturesConfig, chunk_frames: int, n_voices: int, takes: int, seed: int) -> None:
        if n_voices < 1 or takes < 1:
            raise ValueError(f"a voice bank needs voices >= 1 and takes >= 1, got voices={n_voices}, takes={takes}")
        self.features = features
        self.chunk_frames = int(chunk_frames)
        self.n_voices = int(n_voices)
        self.takes = int(takes)
        self.seed = int(seed)
        self.synth = FormantSynth(features.sample_rate, self.chunk_frames * features.hop_length)
        self.extractor = LogMelExtractor(features)
        self._voices: dict[int, np.ndarray] = {}

    @classmethod
    def shared(cls, features: FeaturesConfig, chunk_frames: int, n_voices: int, takes: int, seed: int) -> "VoiceBank":
        """The process-wide bank for these settings (envs of a vector env share one)."""
        key = json.dumps([dataclasses.asdict(features), chunk_frames, n_voices, takes, seed], sort_keys=True)
        if key not in _SHARED_BANKS:
            _SHARED_BANKS[key] = cls(features, chunk_frames, n_voices, takes, seed)
        return _SHARED_BANKS[key]

    def voice(self, index: int) -> np.ndarray:
        if not 0 <= index < self.n_voices:
            raise IndexError(f"voice {index} is outside the bank's {self.n_voices} voices")
        if index not in self._voices:
            self._voices[index] = self._synthesise(index)
        return self._voices[index]

    def chunks(self, voice: int, syllables: list[int], takes: np.ndarray) -> np.ndarray:
        """``(len(syllables), n_mels, chunk_frames)`` raw log-mel of the syllables in one voice."""
        return self.voice(voice)[np.asarray(takes), np.asarray(syllables)]

    def silence(self) -> np.ndarray:
        """Raw log-mel of digital silence: the floor value in every bin."""
        return np.full((self.features.n_mels, self.chunk_frames), np.log(self.features.log_floor), dtype=np.float32)

    def _synthesise(self, index: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, index])
        voice = sample_voice(rng)
        orders = [rng.permutation(N_SYLLABLES) for _ in range(self.takes)]
        waves = np.stack([self.synth.utterance(order.tolist(), voice, rng) for order in orders])
        mel = self.extractor.log_mel(torch.from_numpy(waves)).cpu().numpy()  # (takes, n_mels, 24 * F)
        n_mels, frames = mel.shape[1], self.chunk_frames
        per_chunk = mel.reshape(self.takes, n_mels, N_SYLLABLES, frames).transpose(0, 2, 1, 3)
        out = np.empty_like(per_chunk)
        for take, order in enumerate(orders):
            out[take, order] = per_chunk[take]
        return np.ascontiguousarray(out, dtype=np.float32)
