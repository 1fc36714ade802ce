"""manifest.csv (one row per usable clip) and skipped.csv (path, reason) of the data stage."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST_COLUMNS: tuple[str, ...] = ("path", "speaker", "duration_s", "split", "frames", "cache_key", "extra")


@dataclass
class ManifestRow:
    path: str
    speaker: str
    duration_s: float
    split: str
    frames: int
    cache_key: str
    extra: dict[str, str] = field(default_factory=dict)


def _encode_extra(extra: dict[str, str]) -> str:
    return ";".join(f"{k}={v}" for k, v in sorted(extra.items()) if v)


def _decode_extra(text: str) -> dict[str, str]:
    out = {}
    for item in filter(None, text.split(";")):
        key, _, value = item.partition("=")
        out[key] = value
    return out


def write_manifest(path: Path, rows: list[ManifestRow]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_COLUMNS)
        for r in rows:
            writer.writerow([r.path, r.speaker, f"{r.duration_s:.4f}", r.split, r.frames, r.cache_key, _encode_extra(r.extra)])
    tmp.replace(path)


def read_manifest(path: Path, split: str | None = None) -> list[ManifestRow]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the data stage first (run.stages=[data,...])")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [
            ManifestRow(
                path=row["path"],
                speaker=row["speaker"],
                duration_s=float(row["duration_s"]),
                split=row["split"],
                frames=int(row["frames"]),
                cache_key=row["cache_key"],
                extra=_decode_extra(row.get("extra", "")),
            )
            for row in csv.DictReader(handle)
        ]
    return [r for r in rows if split is None or r.split == split]


def write_skipped(path: Path, skipped: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("path", "reason"))
        writer.writerows(skipped)
