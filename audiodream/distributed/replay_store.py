"""Append-only chunk files under run.dir/replay/, so a restarted run resumes with its data.

Every chunk the buffer accepts is written as one `.npz` file (already packed, so on
disk a step costs what it costs in memory), through a temporary name and an atomic
rename: a run killed mid-write leaves no half file behind. Files whose every step has
been overwritten in the in-memory ring are deleted, so the folder holds about
`capacity` steps. `meta.json` records what the tokens mean (token geometry and a
fingerprint of the config that produced them); data from another tokenizer or env is
not loaded into a run it would corrupt.
"""

from __future__ import annotations

from audiodream.errors import UserFacingError
import json
import logging
import os
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Iterator, Mapping

import numpy as np

log = logging.getLogger(__name__)

STORE_FORMAT = 1
META_FILE = "meta.json"
CHUNK_PATTERN = re.compile(r"^chunk-(\d{9})\.npz$")


class ReplayStoreMismatch(UserFacingError, RuntimeError):
    """The replay folder holds data made under a different config or token geometry."""


@dataclass(frozen=True)
class StoredChunk:
    index: int
    steps: int
    path: Path


def mismatch_reason(directory: Path | str, meta: Mapping[str, Any]) -> str | None:
    """Why the replay data in `directory` cannot serve a run with `meta`, or None if it can (or there is none)."""
    path = Path(directory) / META_FILE
    if not path.is_file():
        return None
    expected = {"format": STORE_FORMAT, **dict(meta)}
    found = json.loads(path.read_text())
    if found == expected:
        return None
    diff = sorted(k for k in set(found) | set(expected) if found.get(k) != expected.get(k))
    return (
        f"{directory}: replay data was made with different settings: "
        + ", ".join(f"{k}={found.get(k)!r} on disk vs {expected.get(k)!r} now" for k in diff)
    )


def adopt_fingerprint(directory: Path | str, accepted: Collection[str], current: str) -> bool:
    """Rewrite `meta.json`'s fingerprint to `current` when it is another of the `accepted` ones
    (the same config's, hashed as an older version did), so the data loads as this run's.
    True if it did."""
    path = Path(directory) / META_FILE
    if not path.is_file():
        return False
    meta = json.loads(path.read_text())
    if meta.get("fingerprint") == current or meta.get("fingerprint") not in accepted:
        return False
    _write_meta(path, {**meta, "fingerprint": current})
    return True


def _write_meta(path: Path, meta: Mapping[str, Any]) -> None:
    """Through a temporary name and a rename, as the chunks are: a kill never leaves half a meta.json."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
    os.replace(tmp, path)


class ChunkStore:
    def __init__(self, directory: Path | str, meta: Mapping[str, Any]) -> None:
        self.directory = Path(directory)
        self.meta = {"format": STORE_FORMAT, **dict(meta)}
        self.directory.mkdir(parents=True, exist_ok=True)
        self._check_or_write_meta()
        self._files: deque[StoredChunk] = deque(self._scan())
        self._next_index = self._files[-1].index + 1 if self._files else 0

    def _check_or_write_meta(self) -> None:
        path = self.directory / META_FILE
        reason = mismatch_reason(self.directory, self.meta)
        if reason:
            raise ReplayStoreMismatch(reason)
        if not path.is_file():
            _write_meta(path, self.meta)

    def _scan(self) -> list[StoredChunk]:
        found = []
        for path in self.directory.iterdir():
            match = CHUNK_PATTERN.match(path.name)
            if match:
                with np.load(path) as data:
                    steps = int(len(data["actions"]))
                found.append(StoredChunk(int(match.group(1)), steps, path))
            elif path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)  # a write cut short by a kill
        return sorted(found, key=lambda c: c.index)

    @property
    def stored_steps(self) -> int:
        return sum(c.steps for c in self._files)

    def append(self, arrays: Mapping[str, np.ndarray], total_added: int) -> None:
        """Write one chunk; `total_added` (steps ever added, this chunk included) resumes the env-step count."""
        path = self.directory / f"chunk-{self._next_index:09d}.npz"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as handle:
            np.savez(handle, total_added=np.int64(total_added), **arrays)
        os.replace(tmp, path)
        self._files.append(StoredChunk(self._next_index, int(len(arrays["actions"])), path))
        self._next_index += 1

    def prune(self, capacity: int) -> None:
        """Delete the oldest files while the rest still hold at least `capacity` steps."""
        total = self.stored_steps
        while self._files and total - self._files[0].steps >= capacity:
            oldest = self._files.popleft()
            total -= oldest.steps
            oldest.path.unlink(missing_ok=True)

    def load(self) -> Iterator[tuple[dict[str, np.ndarray], int]]:
        """(arrays, total_added) of every stored chunk, oldest first."""
        for chunk in list(self._files):
            with np.load(chunk.path) as data:
                arrays = {key: data[key] for key in data.files if key != "total_added"}
                yield arrays, int(data["total_added"])
