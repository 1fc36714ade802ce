"""Feature cache: every clip's normalised log-mel computed once, in parallel, and kept on disk.

Layout: `<cache root>/<feature-config hash>/<clip key>.npz`. The clip key hashes the
file's absolute path, size and modification time, so an edited file is recomputed and a
different feature config never reads stale features. Workers decode a batch of files and
run one batched STFT over them (see LogMelExtractor); an unreadable clip comes back as a
reason string instead of an exception, so one bad file never stops a long run.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from audiodream.config.schema import FEATURE_RENDER_FIELDS, FeaturesConfig
from audiodream.features.audio_io import AudioReadError, load_audio
from audiodream.features.logmel import LogMelExtractor, NormalizedMel

BATCH_FILES = 16
# Below this many files, worker start-up (importing torch) costs more than it saves.
MIN_FILES_FOR_PROCESSES = 64


@dataclass
class CachedClip:
    path: str
    key: str
    duration_s: float = 0.0
    frames: int = 0
    error: str | None = None


def feature_config_hash(cfg: FeaturesConfig, with_render_fields: bool = False) -> str:
    """Names the cache folder. The Griffin-Lim settings (FEATURE_RENDER_FIELDS) change no
    features and are left out; caches made before that hashed them (`with_render_fields`)."""
    values = asdict(cfg)
    if not with_render_fields:
        for name in FEATURE_RENDER_FIELDS:
            values.pop(name)
    return hashlib.sha1(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


def clip_key(path: Path) -> str:
    stat = path.stat() if path.exists() else None
    ident = f"{path.resolve()}|{stat.st_size if stat else -1}|{stat.st_mtime_ns if stat else -1}"
    return hashlib.sha1(ident.encode()).hexdigest()[:20]


class FeatureCache:
    def __init__(self, root: Path, cfg: FeaturesConfig):
        self.cfg = cfg
        self.dir = Path(root) / feature_config_hash(cfg)
        older = Path(root) / feature_config_hash(cfg, with_render_fields=True)
        if not self.dir.is_dir() and older.is_dir():
            self.dir = older  # a run's cache from before the render fields were left out

    def file_for(self, key: str) -> Path:
        return self.dir / f"{key}.npz"

    def load(self, key: str) -> NormalizedMel:
        """The cached normalised log-mel of a clip (see ManifestRow.cache_key)."""
        with np.load(self.file_for(key)) as data:
            return NormalizedMel(data["mel"], float(data["mean"]), float(data["std"]))

    def compute(self, paths: Sequence[Path], num_workers: int = 0, progress: bool = True) -> list[CachedClip]:
        """Features for every path (cached ones are only looked up); order follows `paths`."""
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "features.json").write_text(json.dumps(asdict(self.cfg), indent=2))
        clips = [CachedClip(str(p), clip_key(Path(p))) for p in paths]
        todo = [c for c in clips if not self.file_for(c.key).is_file()]
        done = {c.key: c for c in clips if c not in todo}
        for clip in done.values():
            self._fill_from_cache(clip)
        batches = [todo[i : i + BATCH_FILES] for i in range(0, len(todo), BATCH_FILES)]
        workers = num_workers or os.cpu_count() or 1
        bar = tqdm(total=len(clips), initial=len(clips) - len(todo), desc="features", unit="clip", disable=not progress)
        results: list[CachedClip] = []
        if workers > 1 and len(todo) >= MIN_FILES_FOR_PROCESSES:
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(_compute_batch, self.dir, self.cfg, b) for b in batches]
                for future in as_completed(futures):
                    results.extend(future.result())
                    bar.update(BATCH_FILES)
        else:
            for batch in batches:
                results.extend(_compute_batch(self.dir, self.cfg, batch))
                bar.update(len(batch))
        bar.close()
        by_key = {**done, **{c.key: c for c in results}}
        return [by_key[c.key] for c in clips]

    def _fill_from_cache(self, clip: CachedClip) -> None:
        with np.load(self.file_for(clip.key)) as data:
            clip.frames = int(data["mel"].shape[1])
            clip.duration_s = int(data["samples"]) / self.cfg.sample_rate


def _compute_batch(cache_dir: Path, cfg: FeaturesConfig, clips: list[CachedClip]) -> list[CachedClip]:
    """Worker: decode a batch of files, one batched log-mel, write one .npz per clip."""
    import torch

    torch.set_num_threads(1)
    extractor = LogMelExtractor(cfg)
    waves, good = [], []
    for clip in clips:
        try:
            wave = load_audio(clip.path, cfg.sample_rate)
        except AudioReadError as err:
            clip.error = err.reason
            continue
        if extractor.frames_of(len(wave)) < 1:
            clip.error = "shorter than one frame"
            continue
        waves.append(wave)
        good.append(clip)
    for clip, wave, mel in zip(good, waves, extractor.normalized_batch(waves)):
        tmp = cache_dir / f"{clip.key}.tmp.npz"
        np.savez(tmp, mel=mel.mel.astype(np.float32), mean=mel.mean, std=mel.std, samples=len(wave))
        tmp.replace(cache_dir / f"{clip.key}.npz")
        clip.frames = mel.frames
        clip.duration_s = len(wave) / cfg.sample_rate
    return clips
