"""Per-phase wall-clock timers, reported as metrics (pydreamer's good habit).

`with timers.phase("sample"): ...` adds the block's seconds to the phase; `drain()`
returns the totals since the last drain and starts over, so a metrics row says where
the time between two rows went.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator


class PhaseTimers:
    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        self._seconds[name] = self._seconds.get(name, 0.0) + seconds

    def drain(self) -> dict[str, float]:
        seconds, self._seconds = self._seconds, {}
        return seconds
