"""Model sizes and loss settings of the world model, resolved from `DreamerConfig`.

Size keys in the `dreamer` config section may be null, meaning "take the value of
the preset": one config file then serves a 2-core laptop (`default`) and a GPU
(`large`), while an explicit key still wins over the preset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from audiodream.config.schema import GRU_CELL_NAMES, DreamerConfig

# Model keys added after checkpoints existed -> the value those checkpoints' models had (their
# specs lack the key). Mostly the key's default, but the GRU of old runs was nn.GRUCell. The
# resume fingerprint counts these keys only away from these values (dreamer/checkpoint.py).
LATER_SPEC_KEYS: dict[str, Any] = {"prior_components": 1, "gru": "torch"}

SIZE_KEYS: tuple[str, ...] = ("token_embed", "embed", "deter", "stoch", "classes", "hidden", "decoder_slot_dim")

PRESETS: dict[str, dict[str, int]] = {
    # Trains usefully in minutes on 2 CPU cores: the decoder's (B*T*K, d) x (d, V)
    # output product dominates the cost, hence the small per-slot width.
    "default": {"token_embed": 32, "embed": 256, "deter": 256, "stoch": 32, "classes": 32, "hidden": 256, "decoder_slot_dim": 32},
    # DreamerV2-Atari-like widths for a GPU learner.
    "large": {"token_embed": 64, "embed": 1024, "deter": 1024, "stoch": 32, "classes": 32, "hidden": 1024, "decoder_slot_dim": 256},
}


@dataclass(frozen=True)
class WorldModelSpec:
    """Everything needed to rebuild a world model: data geometry, sizes, loss settings.

    Stored (as plain types) in checkpoints so a checkpoint alone rebuilds the model.
    """

    tokens_per_step: int
    vocab_size: int
    n_actions: int
    token_embed: int
    embed: int
    deter: int
    stoch: int
    classes: int
    hidden: int
    decoder_slot_dim: int
    kl_balance: float = 0.8
    kl_scale: float = 1.0
    free_nats: float = 1.0
    unimix: float = 0.01
    reward_scale: float = 1.0
    cont_scale: float = 1.0
    predictive_scale: float = 1.0
    prior_sample_prob: float = 0.0  # scheduled sampling of the GRU's latent input in training (rssm.py)
    prior_components: int = 1  # > 1: the prior is a mixture of that many factorised components (prior.py)
    code_dim: int = 0  # > 0: token encoder and decoders tied to the tokenizer's (V, code_dim) codebook (networks.py)
    gru: str = "layernorm"  # the GRU cell: layernorm (DreamerV2's) | torch (nn.GRUCell) (networks.GRU_CELLS)

    def __post_init__(self) -> None:
        for name in ("tokens_per_step", "vocab_size", "n_actions", *SIZE_KEYS):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"dreamer.{name}: must be a positive integer, got {value!r}")
        if not 0.0 <= self.kl_balance <= 1.0:
            raise ValueError(f"dreamer.kl_balance: must lie in [0, 1], got {self.kl_balance}")
        if not 0.0 <= self.unimix < 1.0:
            raise ValueError(f"dreamer.unimix: must lie in [0, 1), got {self.unimix}")
        if self.free_nats < 0.0:
            raise ValueError(f"dreamer.free_nats: must be >= 0, got {self.free_nats}")
        if not isinstance(self.code_dim, int) or self.code_dim < 0:
            raise ValueError(f"world model spec: code_dim must be an integer >= 0, got {self.code_dim!r}")
        if not 0.0 <= self.prior_sample_prob < 1.0:
            raise ValueError(f"dreamer.prior_sample_prob: must lie in [0, 1), got {self.prior_sample_prob}")
        if not isinstance(self.prior_components, int) or self.prior_components < 1:
            raise ValueError(f"dreamer.prior_components: must be an integer >= 1, got {self.prior_components!r}")
        if self.gru not in GRU_CELL_NAMES:
            raise ValueError(f"dreamer.gru: unknown GRU cell {self.gru!r}; choose one of {', '.join(GRU_CELL_NAMES)}")
        if self.predictive_scale < 0.0:
            raise ValueError(f"dreamer.predictive_scale: must be >= 0, got {self.predictive_scale}")

    @property
    def stoch_dim(self) -> int:
        return self.stoch * self.classes

    @property
    def feature_dim(self) -> int:
        """Width of the features concat(h, z) the heads and the actor-critic read."""
        return self.deter + self.stoch_dim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "WorldModelSpec":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"world model spec: unknown keys {unknown}")
        return cls(**{**LATER_SPEC_KEYS, **dict(data)})


def resolve_sizes(cfg: DreamerConfig) -> dict[str, int]:
    """Sizes of `cfg.preset`, with every non-null size key of `cfg` taking precedence."""
    if cfg.preset not in PRESETS:
        raise ValueError(f"dreamer.preset: unknown preset {cfg.preset!r}; choose one of {sorted(PRESETS)}")
    sizes = dict(PRESETS[cfg.preset])
    for key in SIZE_KEYS:
        value = getattr(cfg, key, None)
        if value is not None:
            sizes[key] = int(value)
    return sizes


def spec_from_config(cfg: DreamerConfig, tokens_per_step: int, vocab_size: int, n_actions: int, code_dim: int = 0) -> WorldModelSpec:
    """`code_dim`: the tokenizer's code width when the model is to be codebook-tied, else 0."""
    return WorldModelSpec(
        tokens_per_step=int(tokens_per_step),
        vocab_size=int(vocab_size),
        n_actions=int(n_actions),
        **resolve_sizes(cfg),
        kl_balance=float(cfg.kl_balance),
        kl_scale=float(cfg.kl_scale),
        free_nats=float(cfg.free_nats),
        unimix=float(cfg.unimix),
        reward_scale=float(cfg.reward_scale),
        cont_scale=float(cfg.cont_scale),
        predictive_scale=float(cfg.predictive_scale),
        prior_sample_prob=float(cfg.prior_sample_prob),
        prior_components=int(cfg.prior_components),
        code_dim=int(code_dim),
        gru=str(cfg.gru),
    )
