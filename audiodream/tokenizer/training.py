"""One optimisation step of the tokenizer, plus the codebook's k-means start and code restarts.

Loss = MSE(reconstruction) + codebook loss + commitment * commitment loss (see
quantizer.py). Adam with a cosine learning-rate decay to `LR_FLOOR` of the peak: the
budget is a fixed, small number of steps, and the decay buys most of the last bit of
reconstruction quality without a second hyper-parameter to tune.
"""

from __future__ import annotations

import math

import torch

from audiodream.config.schema import TokenizerConfig
from audiodream.tokenizer.chunks import RandomCropSampler
from audiodream.tokenizer.model import Tokenizer

LR_FLOOR = 0.05  # final learning rate as a fraction of tokenizer.lr
WARMUP_STEPS = 50  # linear warm-up, so the first large gradients do not scatter the k-means codebook
KMEANS_LATENTS_PER_CODE = 16  # k-means init sees this many encoder latents per code


class TokenizerTrainer:
    def __init__(self, model: Tokenizer, cfg: TokenizerConfig, total_steps: int):
        self.model = model
        self.cfg = cfg
        self.total_steps = max(total_steps, 1)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.steps_done = 0

    def _lr_factor(self, step: int) -> float:
        warm = min(1.0, (step + 1) / WARMUP_STEPS)
        progress = min(1.0, step / self.total_steps)
        return warm * (LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * progress)))

    @torch.no_grad()
    def kmeans_init(self, sampler: RandomCropSampler) -> None:
        """Start every code on a cluster of (initial) encoder outputs instead of a random direction."""
        device = self.model.device
        needed = self.model.codebook_size * KMEANS_LATENTS_PER_CODE
        chunks = -(-needed // self.model.tokens_per_step)
        latents = self.model.encode_latents(sampler.sample(chunks).to(device))
        self.model.quantizer.kmeans_init(latents)

    def step(self, batch: torch.Tensor) -> dict[str, float]:
        self.model.train()
        out = self.model(batch)
        loss = out.reconstruction_loss + out.codebook_loss + self.cfg.commitment * out.commitment_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.steps_done += 1
        restarted = self.model.quantizer.restart_dead_codes(out.latents, self.cfg.dead_code_after)
        self._forget_optimizer_state(restarted)
        return {
            "loss": float(loss.detach()),
            "loss_reconstruction": float(out.reconstruction_loss.detach()),
            "loss_codebook": float(out.codebook_loss.detach()),
            "loss_commitment": float(out.commitment_loss.detach()),
            "batch_codes_used": int(torch.unique(out.tokens).numel()),
            "codes_restarted": int(restarted.numel()),
            "lr": float(self.scheduler.get_last_lr()[0]),
        }

    def _forget_optimizer_state(self, codes: torch.Tensor) -> None:
        """A restarted code should not carry the Adam momentum of its old, unused position."""
        if codes.numel() == 0:
            return
        state = self.optimizer.state.get(self.model.quantizer.codebook, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key][codes] = 0.0
