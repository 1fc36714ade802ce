"""Log-mel throughput: the project's batched torch path against per-file librosa.

Both start from decoded audio of the synthetic corpus (decoding is the same for both
and not what is measured) and end at a per-utterance z-scored log-mel. librosa is
warmed up first: its first call pays one-time costs (numba compilation, filterbank).

    python bench/features.py --out bench/out/features.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import librosa
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiodream.config.schema import FeaturesConfig, SyntheticCorpusConfig  # noqa: E402
from audiodream.data.synthetic.grammar import SyllableGrammar  # noqa: E402
from audiodream.data.synthetic.synth import FormantSynth, sample_voice  # noqa: E402
from audiodream.features.logmel import LogMelExtractor  # noqa: E402


def synthetic_waves(n_clips: int, seed: int = 0) -> list[np.ndarray]:
    corpus = SyntheticCorpusConfig()
    rng = np.random.default_rng(seed)
    grammar, synth = SyllableGrammar(), FormantSynth()
    waves = []
    for _ in range(n_clips):
        n = int(rng.integers(corpus.min_syllables, corpus.max_syllables + 1))
        waves.append(synth.utterance(grammar.sample_utterance(rng, n), sample_voice(rng), rng))
    return waves


def project_path(waves: list[np.ndarray], cfg: FeaturesConfig, batch: int) -> float:
    extractor = LogMelExtractor(cfg)
    extractor.normalized_batch(waves[:batch])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(waves), batch):
        extractor.normalized_batch(waves[i : i + batch])
    return time.perf_counter() - start


def librosa_baseline(waves: list[np.ndarray], cfg: FeaturesConfig) -> float:
    def one(wave: np.ndarray) -> np.ndarray:
        mel = librosa.feature.melspectrogram(
            y=wave, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels, fmin=cfg.f_min, fmax=cfg.f_max
        )
        log_mel = np.log(mel + cfg.log_floor)
        return (log_mel - log_mel.mean()) / log_mel.std()

    for wave in waves[:3]:
        one(wave)  # warm-up
    start = time.perf_counter()
    for wave in waves:
        one(wave)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    cfg = FeaturesConfig()
    waves = synthetic_waves(args.clips)
    audio_s = sum(len(w) for w in waves) / cfg.sample_rate
    ours = project_path(waves, cfg, args.batch)
    base = librosa_baseline(waves, cfg)
    result = {
        "audio_seconds": round(audio_s, 2),
        "clips": len(waves),
        "batch": args.batch,
        "realtime_factor": round(audio_s / ours, 1),
        "baseline_realtime_factor": round(audio_s / base, 1),
        "speedup_vs_baseline": round(base / ours, 2),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
