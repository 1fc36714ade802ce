"""The unit every corpus scanner produces: one audio clip and who speaks in it."""

from __future__ import annotations

from audiodream.errors import UserFacingError
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ClipRecord:
    path: Path
    speaker: str
    # Source-specific annotations carried into the manifest (e.g. transcript, syllable ids).
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


class CorpusError(UserFacingError, RuntimeError):
    """A corpus that cannot be used at all (missing path, malformed index, no usable clips)."""
