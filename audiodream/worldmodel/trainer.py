"""In-process world-model training: one call = one Adam update on one B x T batch.

No Ray here: the learner actor wraps this, and tests and benchmarks call it directly.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import torch

from audiodream.config.schema import DreamerConfig
from audiodream.worldmodel.batch import to_sequence_batch
from audiodream.worldmodel.model import WorldModel
from audiodream.worldmodel.optimizer_state import load_moments_keeping_settings
from audiodream.worldmodel.rssm import PosteriorSequence, RSSMState
from audiodream.worldmodel.sizes import WorldModelSpec
from audiodream.worldmodel.weight_average import averaged_model

CHECKPOINT_FORMAT = 1
ADAM_BETAS = (0.9, 0.999)  # torch's defaults; checkpoints written before `adam_betas` was saved trained with these


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def mixed_precision(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA (tensor cores, no loss scaling needed); float32 on CPU.
    The one precision policy of every learner-side trainer."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class WorldModelUpdate:
    """Result of one update: float metrics and the detached posterior (actor-critic starts)."""

    metrics: dict[str, float]
    posterior: PosteriorSequence


class WorldModelTrainer:
    """Adam on the world model's loss, and optionally an exponential moving average of its weights.

    Why the average (`ema_decay` or `ema_power`, config `dreamer.model_ema_decay` /
    `model_ema_power`, weight_average.py): at the high learning rate that learns fastest on a
    CPU budget, the last weights are one noisy point of a trajectory that has stopped improving
    on average; eval and generate then get an average of the recent weights instead (README
    "World model" has the measurements).
    """

    def __init__(
        self, model: WorldModel, lr: float = 1e-3, grad_clip: float = 100.0, device: str | torch.device = "cpu", adam_eps: float = 1e-5,
        ema_decay: Optional[float] = None, adam_betas: tuple[float, float] = ADAM_BETAS, ema_power: Optional[float] = None,
        ema_start: int = 0,
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.lr = float(lr)
        self.grad_clip = float(grad_clip)
        self.adam_betas = (float(adam_betas[0]), float(adam_betas[1]))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr, betas=self.adam_betas, eps=adam_eps)
        self.step = 0
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        self.ema_power = None if ema_power is None else float(ema_power)
        self.ema_start = int(ema_start)
        self.averaged = averaged_model(self.model, self.ema_decay, self.ema_power, self.ema_start)

    @classmethod
    def from_config(
        cls, cfg: DreamerConfig, tokens_per_step: int, vocab_size: int, n_actions: int, device: str | torch.device = "cpu", codebook: Optional[torch.Tensor] = None
    ) -> "WorldModelTrainer":
        """`codebook`: the tokenizer's (V, code_dim) code vectors, used when `cfg.codebook_tied`."""
        model = WorldModel.from_config(cfg, tokens_per_step, vocab_size, n_actions, codebook)
        return cls(
            model, lr=cfg.lr_model, grad_clip=cfg.grad_clip, device=device, ema_decay=cfg.model_ema_decay, adam_betas=(ADAM_BETAS[0], cfg.model_adam_beta2),
            ema_power=cfg.model_ema_power, ema_start=cfg.model_ema_start,
        )

    @property
    def spec(self) -> WorldModelSpec:
        return self.model.spec

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return mixed_precision(self.device)

    def update(self, batch: Mapping[str, Any], state: Optional[RSSMState] = None) -> WorldModelUpdate:
        """One Adam step on `batch` (see batch.SequenceBatch for the conventions)."""
        data = to_sequence_batch(batch, self.spec, self.device)
        self.model.train()
        with self.autocast():
            loss, metrics, posterior = self.model.loss(data, state)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        if self.averaged is not None:
            self.averaged.update_parameters(self.model)
        self.step += 1
        values = {name: float(value) for name, value in metrics.items()}
        values["grad_norm"] = float(grad_norm)
        detached = PosteriorSequence(posterior.h.detach(), posterior.z.detach(), posterior.post_log_probs.detach(), posterior.prior.detach())
        return WorldModelUpdate(values, detached)

    def train_step(self, batch: Mapping[str, Any]) -> dict[str, float]:
        return self.update(batch).metrics

    @torch.no_grad()
    def observe(self, batch: Mapping[str, Any], state: Optional[RSSMState] = None) -> tuple[PosteriorSequence, torch.Tensor]:
        """Posterior states of a batch (no gradients) and their features concat(h, z)."""
        data = to_sequence_batch(batch, self.spec, self.device)
        self.model.eval()
        with self.autocast():
            posterior = self.model.observe(data.tokens, data.actions, data.is_first, state)
        return posterior, posterior.features

    @property
    def evaluated_model(self) -> WorldModel:
        """The weights eval and generate use: the moving average when one is kept, else the live ones."""
        return self.model if self.averaged is None else self.averaged.module

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain types only, so torch.load(..., weights_only=True) reads it.
        `model_ema` (the averaged weights) is None without an average."""
        return {
            "format": CHECKPOINT_FORMAT,
            "spec": self.spec.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "lr": self.lr,
            "grad_clip": self.grad_clip,
            "adam_betas": list(self.adam_betas),
            "ema_decay": self.ema_decay,
            "ema_power": self.ema_power,
            "ema_start": self.ema_start,
            "model_ema": None if self.averaged is None else self.averaged.module.state_dict(),
            "ema_updates": 0 if self.averaged is None else int(self.averaged.n_averaged),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"world model checkpoint: format {state.get('format')!r}, expected {CHECKPOINT_FORMAT}")
        saved = WorldModelSpec.from_dict(state["spec"])
        if saved != self.spec:
            raise ValueError(f"world model checkpoint: spec {saved} does not match this model's {self.spec}")
        self.model.load_state_dict(state["model"])
        load_moments_keeping_settings(self.optimizer, state["optimizer"])
        self.step = int(state["step"])
        if self.averaged is not None:
            self._load_average(state)

    def _load_average(self, state: Mapping[str, Any]) -> None:
        """Resume the average; a checkpoint without one (the average was just switched on)
        starts it from the loaded weights at the next update."""
        assert self.averaged is not None
        if state.get("model_ema") is None:
            self.averaged.n_averaged.zero_()
            return
        self.averaged.module.load_state_dict(state["model_ema"])
        self.averaged.n_averaged.fill_(int(state.get("ema_updates", 1)))

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any], device: str | torch.device = "cpu") -> "WorldModelTrainer":
        """Rebuild model and optimizer from a checkpoint alone."""
        trainer = cls(
            WorldModel(WorldModelSpec.from_dict(state["spec"])), lr=float(state["lr"]), grad_clip=float(state["grad_clip"]), device=device,
            ema_decay=state.get("ema_decay"), adam_betas=tuple(state.get("adam_betas", ADAM_BETAS)), ema_power=state.get("ema_power"),
            ema_start=int(state.get("ema_start", 0)),
        )
        trainer.load_state_dict(state)
        return trainer
