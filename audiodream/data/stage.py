"""Stage `data`: corpus -> decoded, cached features -> speaker-disjoint manifest.

Writes run.dir/data/manifest.csv, run.dir/data/skipped.csv and the feature cache under
run.dir/data/features/. Bad files are skipped and listed, never fatal; a corpus with no
usable clip, or fewer than 3 speakers, is an error naming the path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from audiodream.config.schema import Config
from audiodream.data import sources
from audiodream.data.feature_cache import FeatureCache
from audiodream.data.manifest import ManifestRow, write_manifest, write_skipped
from audiodream.data.records import ClipRecord, CorpusError
from audiodream.data.split import assign_splits
from audiodream.features.logmel import NormalizedMel

log = logging.getLogger(__name__)


@dataclass
class DataPaths:
    """Where the data stage puts things inside run.dir; later stages read them from here."""

    root: Path

    @classmethod
    def of(cls, run_dir: Path) -> "DataPaths":
        return cls(Path(run_dir) / "data")

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.csv"

    @property
    def skipped(self) -> Path:
        return self.root / "skipped.csv"

    @property
    def feature_root(self) -> Path:
        return self.root / "features"

    @property
    def synthetic(self) -> Path:
        return self.root / "synthetic"


def samples_per_step(cfg: Config) -> int:
    """Audio samples in one env step (one synthetic syllable)."""
    return cfg.env.chunk_frames * cfg.features.hop_length


def scan_corpus(cfg: Config, paths: DataPaths) -> list[ClipRecord]:
    source = cfg.data.source
    if source == "synthetic":
        return _synthetic_records(cfg, paths)
    scanner = {"folder": sources.scan_folder, "commonvoice": sources.scan_commonvoice, "librispeech": sources.scan_librispeech}[source]
    return scanner(Path(cfg.data.path))


def _synthetic_records(cfg: Config, paths: DataPaths) -> list[ClipRecord]:
    from audiodream.data.synthetic.corpus import build_synthetic_corpus

    utterances = build_synthetic_corpus(
        paths.synthetic, cfg.data.synthetic, cfg.features.sample_rate, samples_per_step(cfg), progress=cfg.run.progress
    )
    return [
        ClipRecord(path=u.path, speaker=u.speaker, extra={"syllables": " ".join(map(str, u.syllables))}) for u in utterances
    ]


def run_data_stage(cfg: Config, run_dir: Path) -> list[ManifestRow]:
    paths = DataPaths.of(run_dir)
    records = scan_corpus(cfg, paths)
    if cfg.data.max_clips is not None:
        records = records[: cfg.data.max_clips]
    if not records:
        where = cfg.data.path or paths.synthetic
        raise CorpusError(f"{where}: no audio files found (looked for .wav/.flac/.ogg/.mp3)")
    cache = FeatureCache(paths.feature_root, cfg.features)
    clips = cache.compute([r.path for r in records], cfg.data.num_workers, progress=cfg.run.progress)
    skipped: list[tuple[str, str]] = []
    kept: list[tuple[ClipRecord, object]] = []
    for record, clip in zip(records, clips):
        if clip.error:
            skipped.append((str(record.path), clip.error))
        elif clip.duration_s < cfg.data.min_duration_s:
            skipped.append((str(record.path), f"shorter than data.min_duration_s ({clip.duration_s:.2f} s < {cfg.data.min_duration_s} s)"))
        else:
            kept.append((record, clip))
    write_skipped(paths.skipped, skipped)
    if skipped:
        log.warning("skipped %d of %d clips; reasons in %s", len(skipped), len(records), paths.skipped)
    if not kept:
        where = cfg.data.path or paths.synthetic
        raise CorpusError(f"{where}: none of the {len(records)} clips is usable (see {paths.skipped})")
    split_of = assign_splits(r.speaker for r, _ in kept)
    rows = [
        ManifestRow(
            path=str(record.path),
            speaker=record.speaker,
            duration_s=clip.duration_s,
            split=split_of[record.speaker],
            frames=clip.frames,
            cache_key=clip.key,
            extra=record.extra,
        )
        for record, clip in kept
    ]
    write_manifest(paths.manifest, rows)
    return rows


def load_split_features(cfg: Config, run_dir: Path, split: str) -> list[tuple[ManifestRow, NormalizedMel]]:
    """The manifest rows of one split with their cached normalised log-mels."""
    from audiodream.data.manifest import read_manifest

    paths = DataPaths.of(run_dir)
    cache = FeatureCache(paths.feature_root, cfg.features)
    rows = read_manifest(paths.manifest, split)
    return [(row, cache.load(row.cache_key)) for row in rows]


def data_stage(cfg: Config, run_dir: Path, tracker) -> None:
    """Stage entry point (see audiodream.pipeline.stages)."""
    rows = run_data_stage(cfg, run_dir)
    paths = DataPaths.of(run_dir)
    counts = {split: sum(r.split == split for r in rows) for split in ("train", "val", "test")}
    hours = sum(r.duration_s for r in rows) / 3600
    log.info("data: %d clips (%.2f h) train/val/test = %s; manifest %s", len(rows), hours, counts, paths.manifest)
    tracker.log_metrics({f"data.clips_{k}": v for k, v in counts.items()} | {"data.hours": hours}, step=0)
    tracker.log_artifacts([paths.manifest, paths.skipped], "data")
