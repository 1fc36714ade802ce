"""Where Listen-v0's clips come from: the data stage's manifest, or synthetic utterances.

Both give whole-clip, per-utterance z-scored log-mels, exactly what the tokenizer was
trained on. `ManifestClips` reads the data stage's feature cache lazily (one .npz per
episode), so a large corpus never has to fit in memory. `SyntheticClips` needs no run
directory at all: clip i is synthesised from the grammar in a fresh voice, seeded by
(seed, split, i), the first time it is used, and kept for the life of the process.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Protocol

import numpy as np

from audiodream.config.schema import FeaturesConfig
from audiodream.data.feature_cache import FeatureCache
from audiodream.data.manifest import read_manifest
from audiodream.data.stage import DataPaths
from audiodream.data.synthetic.grammar import SyllableGrammar
from audiodream.data.synthetic.synth import FormantSynth, sample_voice
from audiodream.features.logmel import LogMelExtractor
from envs.voices import split_seed

_SHARED_SYNTHETIC: dict[str, dict[int, np.ndarray]] = {}


class ClipSource(Protocol):
    def __len__(self) -> int: ...

    def mel(self, index: int) -> np.ndarray:
        """(n_mels, frames) float32 z-scored log-mel of clip `index`."""
        ...


class ManifestClips:
    """Clips of one split of the data stage's manifest, at least `min_frames` long."""

    def __init__(self, run_dir: Path | str, features: FeaturesConfig, split: str, min_frames: int) -> None:
        paths = DataPaths.of(Path(run_dir))
        all_rows = read_manifest(paths.manifest, split)
        self.rows = [row for row in all_rows if row.frames >= min_frames]
        if not self.rows:
            raise ValueError(
                f"{paths.manifest}: split {split!r} has no clip of at least {min_frames} frames "
                f"({len(all_rows)} clips in the split); use another env.split or shorter env.chunk_frames"
            )
        self.cache = FeatureCache(paths.feature_root, features)
        self.source = str(paths.manifest)

    def __len__(self) -> int:
        return len(self.rows)

    def mel(self, index: int) -> np.ndarray:
        row = self.rows[index]
        path = self.cache.file_for(row.cache_key)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: cached features of {row.path} not found; the data stage must be run with the same "
                f"`features` settings as the env"
            )
        return self.cache.load(row.cache_key).mel


class SyntheticClips:
    """`n_clips` grammar utterances of `min_syllables`-`max_syllables` syllables, one voice each."""

    def __init__(
        self,
        features: FeaturesConfig,
        chunk_frames: int,
        split: str,
        n_clips: int,
        min_syllables: int,
        max_syllables: int,
        seed: int,
    ) -> None:
        if n_clips < 1 or not 2 <= min_syllables <= max_syllables:
            raise ValueError(
                f"Listen-v0 synthetic clips: need clips >= 1 and 2 <= min_syllables <= max_syllables, "
                f"got clips={n_clips}, min_syllables={min_syllables}, max_syllables={max_syllables}"
            )
        self.n_clips = int(n_clips)
        self.lengths = (int(min_syllables), int(max_syllables))
        self.seed = (int(seed), split_seed(split))
        self.features = features
        self.synth = FormantSynth(features.sample_rate, chunk_frames * features.hop_length)
        self.grammar = SyllableGrammar()
        key = json.dumps([dataclasses.asdict(features), chunk_frames, self.lengths, self.seed], sort_keys=True)
        self._cache = _SHARED_SYNTHETIC.setdefault(key, {})
        self._extractor: LogMelExtractor | None = None
        self.source = f"synthetic (seed {seed}, split {split})"

    def __len__(self) -> int:
        return self.n_clips

    def mel(self, index: int) -> np.ndarray:
        if index not in self._cache:
            self._cache[index] = self._synthesise(index)
        return self._cache[index]

    def _synthesise(self, index: int) -> np.ndarray:
        rng = np.random.default_rng([*self.seed, index])
        voice = sample_voice(rng)
        syllables = self.grammar.sample_utterance(rng, int(rng.integers(self.lengths[0], self.lengths[1] + 1)))
        wave = self.synth.utterance(syllables, voice, rng)
        if self._extractor is None:
            self._extractor = LogMelExtractor(self.features)
        return self._extractor.normalized(wave).mel
