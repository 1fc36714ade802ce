"""Deterministic, speaker-disjoint 80/10/10 train/val/test split.

A speaker's split comes from a hash of its id, so it never depends on which other
speakers are present or on file order, and adding clips never moves a speaker. Tiny
corpora can leave val or test empty by chance; then the speakers whose hash lies
nearest the boundary are moved in, which is still deterministic.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

from audiodream.data.records import CorpusError

SPLITS: tuple[str, ...] = ("train", "val", "test")
BOUNDARIES: tuple[float, float] = (0.8, 0.9)


def speaker_hash(speaker: str) -> float:
    digest = hashlib.sha1(speaker.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(speakers: Iterable[str]) -> dict[str, str]:
    unique = sorted(set(speakers))
    if len(unique) < 3:
        raise CorpusError(
            f"a speaker-disjoint train/val/test split needs at least 3 speakers, found {len(unique)} ({unique})"
        )
    by_hash = sorted(unique, key=speaker_hash)
    split = {}
    for speaker in by_hash:
        u = speaker_hash(speaker)
        split[speaker] = "train" if u < BOUNDARIES[0] else "val" if u < BOUNDARIES[1] else "test"
    # Tiny corpora: fill an empty split from the largest one, taking the speaker whose
    # hash lies nearest the empty split's range (highest for val/test, lowest for train).
    for wanted in ("test", "val", "train"):
        members = {name: [s for s in by_hash if split[s] == name] for name in SPLITS}
        if members[wanted]:
            continue
        donor = max(SPLITS, key=lambda name: len(members[name]))
        moved = members[donor][0] if wanted == "train" else members[donor][-1]
        split[moved] = wanted
    return split
