"""Token geometry: how mel frames become a fixed number of tokens per env step.

Every consumer of tokens (environments, replay, world model) needs the same fixed token
count K per env step, so the tokenizer never looks across env-step boundaries:

* One env step is a chunk of ``chunk_frames`` mel frames (default 16 = 160 ms at a
  10 ms hop), encoded on its own, with no context from neighbouring chunks.
* The encoder downsamples time by ``downsample`` (default 4): a chunk becomes
  ``latent_frames = chunk_frames / downsample`` latent frames (default 4).
* Each latent frame is split into ``groups`` channel groups (default 12) of ``code_dim``
  channels, each quantised against the one shared codebook (product quantisation), so one
  latent frame is ``groups`` tokens.
* K = tokens_per_step = latent_frames * groups (default 4 * 12 = 48), ordered latent
  frame major, group minor: token ``t * groups + g`` is group g of latent frame t.
* tokens_per_second = K * frames_per_second / chunk_frames
  (default 48 * 100 / 16 = 300 tokens, i.e. 300 * log2(1024) = 3000 bits, per second).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


class TokenGeometryError(ValueError):
    """A chunk / downsample / groups combination that cannot give a fixed K per step."""


@dataclass(frozen=True)
class TokenGeometry:
    chunk_frames: int  # mel frames per env step
    downsample: int  # mel frames per latent frame
    groups: int  # tokens per latent frame
    frames_per_second: float  # mel frames per second of audio (sample_rate / hop_length)

    def __post_init__(self) -> None:
        for name in ("chunk_frames", "downsample", "groups"):
            if getattr(self, name) < 1:
                raise TokenGeometryError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.chunk_frames % self.downsample:
            raise TokenGeometryError(
                f"env.chunk_frames ({self.chunk_frames}) must be a multiple of tokenizer.downsample ({self.downsample})"
            )

    @property
    def latent_frames(self) -> int:
        return self.chunk_frames // self.downsample

    @property
    def tokens_per_step(self) -> int:
        return self.latent_frames * self.groups

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_per_step * self.frames_per_second / self.chunk_frames

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)
