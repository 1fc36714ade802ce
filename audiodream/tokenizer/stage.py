"""Stage `tokenizer`: train (or, with tokenizer.steps=0, only evaluate) the VQ-VAE on the corpus.

Outputs in run.dir/tokenizer/:
    checkpoint.pt                 best (lowest val MSE) tokenizer; with steps=0 a copy of tokenizer.init
    metrics.json                  val metrics at top level, test metrics under "test" (see metrics.py)
    reconstructions.png           original vs reconstructed log-mels of a few val clips
    code_usage.png                histogram of code usage on val
    samples/*.wav                 original, Griffin-Lim of the original mel, Griffin-Lim of the reconstruction
The same params, metrics and files go to MLflow.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from audiodream.config.schema import Config
from audiodream.errors import MissingStageOutput
from audiodream.data.manifest import ManifestRow
from audiodream.data.stage import load_split_features
from audiodream.features.logmel import NormalizedMel
from audiodream.tokenizer.fit import fit
from audiodream.tokenizer.metrics import Reconstruction, code_usage, evaluate, reconstruct, summarize
from audiodream.tokenizer.model import Tokenizer, TokenizerArchitecture, TokenizerCheckpointError
from audiodream.tokenizer.samples import plot_code_usage, plot_reconstructions, write_sample_wavs
from audiodream.tracking import Tracker

log = logging.getLogger(__name__)

SAMPLE_CLIPS = 4  # val clips (one per speaker where possible) drawn and written as sound


class TokenizerPaths:
    def __init__(self, run_dir: Path):
        self.root = Path(run_dir) / "tokenizer"
        self.checkpoint = self.root / "checkpoint.pt"
        self.metrics = self.root / "metrics.json"
        self.reconstructions = self.root / "reconstructions.png"
        self.code_usage = self.root / "code_usage.png"
        self.samples = self.root / "samples"


def require_tokenizer_checkpoint(run_dir: Path, needed_by: str, stages_example: str) -> Path:
    """The run's tokenizer checkpoint, or an error saying which stage needs it and how to get it."""
    path = TokenizerPaths(Path(run_dir)).checkpoint
    if not path.is_file():
        raise MissingStageOutput(
            f"{path} not found: {needed_by} needs the tokenizer stage's checkpoint; "
            f"add tokenizer to run.stages (e.g. run.stages=[{stages_example}])"
        )
    return path


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"config key 'tokenizer.device': expected auto, cpu or cuda, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"config key 'tokenizer.device': {name} requested but no CUDA device is available")
    return torch.device(name)


def initial_model(cfg: Config, device: torch.device) -> tuple[Tokenizer, bool]:
    """The model to train or evaluate, and whether it is fresh (no tokenizer.init)."""
    tcfg = cfg.tokenizer
    if tcfg.init is None:
        if tcfg.steps <= 0:
            raise ValueError("config key 'tokenizer.steps': 0 only evaluates an existing checkpoint; set tokenizer.init=PATH")
        return Tokenizer.from_config(tcfg, cfg.features, cfg.env.chunk_frames).to(device), True
    model = Tokenizer.load(Path(tcfg.init).expanduser(), features=cfg.features, device=device)
    if model.chunk_frames != cfg.env.chunk_frames:
        raise TokenizerCheckpointError(
            f"{tcfg.init}: tokenizer was trained on chunks of {model.chunk_frames} frames, "
            f"but env.chunk_frames is {cfg.env.chunk_frames}"
        )
    wanted = TokenizerArchitecture.from_config(tcfg, cfg.features, cfg.env.chunk_frames)
    differing = {k: (v, getattr(wanted, k)) for k, v in asdict(model.arch).items() if getattr(wanted, k) != v}
    if differing:
        log.warning("tokenizer.init %s fixes the architecture; ignoring tokenizer keys %s (checkpoint vs config)", tcfg.init, differing)
    return model, False


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with `n` torch CPU threads, then restore the caller's setting (later stages share the process).

    Why 1 by default: this model's convolutions are tiny, so a second thread gains little
    when the machine is idle, and on a shared, busy machine the threads wait on each other
    at every op; measured here, 2 threads under load ran ~20x slower per update than 1.
    """
    if n < 1:
        raise ValueError(f"config key 'tokenizer.num_threads': must be >= 1, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def tokenizer_stage(cfg: Config, run_dir: Path, tracker: Tracker) -> None:
    """Stage entry point (see audiodream.pipeline.stages)."""
    with torch_threads(cfg.tokenizer.num_threads):
        run_tokenizer_stage(cfg, Path(run_dir), tracker)


def run_tokenizer_stage(cfg: Config, run_dir: Path, tracker: Tracker) -> None:
    paths = TokenizerPaths(run_dir)
    paths.root.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.tokenizer.device)
    torch.manual_seed(cfg.run.seed)
    splits = load_splits(cfg, run_dir, ("train", "val", "test") if cfg.tokenizer.steps > 0 else ("val", "test"))
    model, fresh = initial_model(cfg, device)
    tracker.log_params(
        {
            "tokenizer.tokens_per_step": model.tokens_per_step,
            "tokenizer.tokens_per_second": model.tokens_per_second,
            "tokenizer.parameters": sum(p.numel() for p in model.parameters()),
            "tokenizer.resolved_device": str(device),
        }
    )
    training = train_or_copy(cfg, model, fresh, splits, paths, tracker)
    training["device"] = str(device)
    best = Tokenizer.load(paths.checkpoint, features=cfg.features, device=device)
    val_recons = reconstruct(best, [mel.mel for _, mel in splits["val"]])
    metrics = write_metrics(best, val_recons, [mel.mel for _, mel in splits["test"]], training, paths)
    write_samples(best, splits["val"], val_recons, cfg, paths)
    tracker.log_metrics({"tokenizer.final.val": _numbers(metrics), "tokenizer.final.test": metrics["test"]}, step=cfg.tokenizer.steps)
    tracker.log_artifacts([paths.metrics, paths.reconstructions, paths.code_usage, paths.checkpoint], "tokenizer")
    tracker.log_artifacts([paths.samples], "tokenizer/samples")
    log.info(
        "tokenizer val: mse %.4f psnr %.2f dB pearson %.4f perplexity %.0f codes used %d/%d; %s tokens/s",
        metrics["mse"], metrics["psnr_db"], metrics["pearson"], metrics["perplexity"],
        metrics["codes_used"], metrics["codebook_size"], metrics["tokens_per_second"],
    )


def load_splits(cfg: Config, run_dir: Path, names: tuple[str, ...]) -> dict[str, list[tuple[ManifestRow, NormalizedMel]]]:
    splits = {split: load_split_features(cfg, run_dir, split) for split in names}
    for split, clips in splits.items():
        if not clips:
            raise ValueError(f"{run_dir / 'data' / 'manifest.csv'}: the {split} split is empty; the tokenizer needs it")
    return splits


def train_or_copy(
    cfg: Config, model: Tokenizer, fresh: bool, splits: dict[str, list[tuple[ManifestRow, NormalizedMel]]],
    paths: TokenizerPaths, tracker: Tracker,
) -> dict[str, Any]:
    """Train into paths.checkpoint, or with tokenizer.steps=0 copy tokenizer.init there; returns the record of it."""
    record: dict[str, Any] = {"steps": cfg.tokenizer.steps, "init": cfg.tokenizer.init}
    if cfg.tokenizer.steps <= 0:
        model.save(paths.checkpoint, info={"copied_from": str(cfg.tokenizer.init)})
        return record
    result = fit(
        model,
        cfg.tokenizer,
        [mel.mel for _, mel in splits["train"]],
        [mel.mel for _, mel in splits["val"]],
        paths.checkpoint,
        tracker,
        fresh=fresh,
        seed=cfg.run.seed,
        progress=cfg.run.progress,
    )
    return record | {"best_step": result.best_step, "seconds": round(result.seconds, 2), "history": result.history}


def write_metrics(
    model: Tokenizer, val_recons: list[Reconstruction], test_mels: list[np.ndarray], training: dict[str, Any], paths: TokenizerPaths
) -> dict[str, Any]:
    metrics = {
        **summarize(val_recons, model.codebook_size, model.tokens_per_second),
        "test": evaluate(model, test_mels),
        "tokens_per_step": model.tokens_per_step,
        "chunk_frames": model.chunk_frames,
        "training": training,
    }
    tmp = paths.metrics.with_suffix(".tmp")
    tmp.write_text(json.dumps(metrics, indent=2))
    tmp.replace(paths.metrics)
    return metrics


def pick_sample_clips(clips: list[tuple[ManifestRow, NormalizedMel]], n: int) -> list[tuple[ManifestRow, NormalizedMel]]:
    """First clip of each speaker, then further clips, up to n; deterministic (manifest order)."""
    firsts, rest, seen = [], [], set()
    for row, mel in clips:
        if mel.frames < 1:
            continue
        (rest if row.speaker in seen else firsts).append((row, mel))
        seen.add(row.speaker)
    return (firsts + rest)[:n]


def write_samples(
    model: Tokenizer, val: list[tuple[ManifestRow, NormalizedMel]], val_recons: list[Reconstruction], cfg: Config, paths: TokenizerPaths
) -> None:
    by_path = {row.path: rec for (row, _), rec in zip(val, val_recons)}
    chosen = [(r, m) for r, m in pick_sample_clips(val, SAMPLE_CLIPS) if m.frames >= model.chunk_frames]
    recons = [by_path[row.path] for row, _ in chosen]
    titles = [f"val{i} {Path(r.path).name} ({r.speaker})" for i, (r, _) in enumerate(chosen)]
    plot_reconstructions(recons, titles, paths.reconstructions, cfg.features.sample_rate / cfg.features.hop_length)
    counts = code_usage(np.concatenate([r.tokens.ravel() for r in val_recons]), model.codebook_size)
    plot_code_usage(counts, paths.code_usage, "val")
    for i, ((row, mel), rec) in enumerate(zip(chosen, recons)):
        write_sample_wavs(rec, mel.mean, mel.std, row.path, cfg.features, paths.samples, f"val{i}")


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
