"""The training loop: random crops from the train split, validation every N updates, best checkpoint kept.

The best checkpoint is chosen by val MSE; codebook use needs no selection because the
restarts keep it high throughout (it is logged at every validation so that is visible).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from audiodream.config.schema import TokenizerConfig
from audiodream.tokenizer.chunks import RandomCropSampler
from audiodream.tokenizer.metrics import evaluate
from audiodream.tokenizer.model import Tokenizer
from audiodream.tokenizer.training import TokenizerTrainer
from audiodream.tracking import Tracker

log = logging.getLogger(__name__)

LOG_EVERY = 50  # training losses go to MLflow every this many updates


@dataclass
class FitResult:
    best_step: int
    best_val_mse: float
    steps: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per validation


def fit(
    model: Tokenizer,
    cfg: TokenizerConfig,
    train_mels: Sequence[np.ndarray],
    val_mels: Sequence[np.ndarray],
    checkpoint_path: Path,
    tracker: Tracker,
    *,
    fresh: bool,
    seed: int = 0,
    progress: bool = True,
) -> FitResult:
    """Train for cfg.steps updates; `fresh` (not from tokenizer.init) also k-means-initialises the codebook."""
    sampler = RandomCropSampler(train_mels, model.chunk_frames, seed=seed)
    trainer = TokenizerTrainer(model, cfg, cfg.steps)
    eval_every = max(1, cfg.eval_every)
    started = time.perf_counter()
    history = [_validate(model, val_mels, 0, started, tracker)]
    if fresh:
        trainer.kmeans_init(sampler)
    best_mse = float("inf")
    best_step = 0
    bar = tqdm(total=cfg.steps, desc="tokenizer", unit="step", disable=not progress)
    for step in range(1, cfg.steps + 1):
        info = trainer.step(sampler.sample(cfg.batch_size).to(model.device))
        bar.update(1)
        if step % LOG_EVERY == 0 or step == cfg.steps:
            tracker.log_metrics({f"tokenizer.train.{k}": v for k, v in info.items()}, step=step)
            bar.set_postfix(loss=f"{info['loss_reconstruction']:.3f}", codes=info["batch_codes_used"], refresh=False)
        if step % eval_every == 0 or step == cfg.steps:
            row = _validate(model, val_mels, step, started, tracker)
            history.append(row)
            if row["mse"] < best_mse:
                best_mse, best_step = row["mse"], step
                model.save(checkpoint_path, info={"step": step, "val": row})
            bar.set_postfix(val_mse=f"{row['mse']:.3f}", pearson=f"{row['pearson']:.3f}", codes=row["codes_used"])
    bar.close()
    seconds = time.perf_counter() - started
    log.info("tokenizer: %d updates in %.1f s; best val mse %.4f at update %d", cfg.steps, seconds, best_mse, best_step)
    return FitResult(best_step, best_mse, cfg.steps, seconds, history)


def _validate(model: Tokenizer, val_mels: Sequence[np.ndarray], step: int, started: float, tracker: Tracker) -> dict[str, Any]:
    metrics = evaluate(model, val_mels)
    tracker.log_metrics({f"tokenizer.val.{k}": v for k, v in metrics.items()}, step=step)
    return {"step": step, "seconds": round(time.perf_counter() - started, 2), **metrics}
