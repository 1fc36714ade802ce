"""Corpus scanners: turn a corpus on disk into ClipRecords, without decoding any audio.

Decoding (and so finding unreadable files) happens later, in parallel, in the feature
cache; scanners only check what the corpus layout itself promises.
"""

from __future__ import annotations

import csv
from pathlib import Path

from audiodream.data.records import ClipRecord, CorpusError
from audiodream.features.audio_io import AUDIO_EXTENSIONS


def _require_dir(root: Path, what: str) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise CorpusError(f"{what} path {root} does not exist")
    if not root.is_dir():
        raise CorpusError(f"{what} path {root} is not a directory")
    return root


def scan_folder(root: Path) -> list[ClipRecord]:
    """Any tree of audio files; the speaker is the file's parent directory name."""
    root = _require_dir(root, "data.path (folder)")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    return [ClipRecord(path=p, speaker=p.parent.name if p.parent != root else root.name) for p in files]


def scan_commonvoice(root: Path) -> list[ClipRecord]:
    """A Common Voice release directory: validated.tsv + clips/; speaker = client_id."""
    root = _require_dir(root, "data.path (commonvoice)")
    tsv = root / "validated.tsv"
    if not tsv.is_file():
        raise CorpusError(f"{tsv} not found: a Common Voice release has validated.tsv next to clips/")
    with tsv.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"client_id", "path"} - set(reader.fieldnames or [])
        if missing:
            raise CorpusError(f"{tsv} is malformed: header lacks column(s) {sorted(missing)} (found {reader.fieldnames})")
        records = []
        for line_no, row in enumerate(reader, start=2):
            if not row.get("path") or not row.get("client_id"):
                raise CorpusError(f"{tsv} is malformed: line {line_no} has an empty path or client_id")
            records.append(
                ClipRecord(
                    path=root / "clips" / row["path"],
                    speaker=row["client_id"],
                    extra={"text": row.get("sentence") or ""},
                )
            )
    return records


def scan_librispeech(root: Path) -> list[ClipRecord]:
    """LibriSpeech layout: <speaker>/<chapter>/*.flac with <speaker>-<chapter>.trans.txt."""
    root = _require_dir(root, "data.path (librispeech)")
    records = []
    for flac in sorted(root.glob("*/*/*.flac")):
        chapter_dir = flac.parent
        speaker = chapter_dir.parent.name
        transcripts = _read_librispeech_transcripts(chapter_dir / f"{speaker}-{chapter_dir.name}.trans.txt")
        records.append(ClipRecord(path=flac, speaker=speaker, extra={"text": transcripts.get(flac.stem, "")}))
    if not records:
        raise CorpusError(f"{root}: no <speaker>/<chapter>/*.flac files found (is this a LibriSpeech subset directory?)")
    return records


def _read_librispeech_transcripts(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        utt_id, _, text = line.partition(" ")
        if utt_id:
            out[utt_id] = text
    return out
