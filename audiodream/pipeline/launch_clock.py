"""The launch's own clock, for a time budget that spans stages (`dreamer.train_until_s`).

Why: a budget for the whole command ("finish within 15 minutes") is a deadline on the
launch, not a length of training; how long the stages before training take varies with
the machine and its load (the data stage of listen_synthetic took 45 s on one day and 96 s
on another), so only training, the one stage that can stop early, can absorb it.
`launch.py` runs every stage in one process, so the runner marks the start here for the
stages to read. A stage run outside the pipeline (a test, a notebook) sees no launch.
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterator, Optional

_started: Optional[float] = None  # time.perf_counter() when the running launch began


@contextlib.contextmanager
def launch_running() -> Iterator[None]:
    """Marks a launch as running for the duration of the block (the pipeline runner's stages)."""
    global _started
    previous, _started = _started, time.perf_counter()
    try:
        yield
    finally:
        _started = previous


def launch_started() -> Optional[float]:
    """time.perf_counter() at the start of the running launch; None outside one."""
    return _started
