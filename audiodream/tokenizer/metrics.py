"""Reconstruction quality and codebook use of a tokenizer over a set of utterances.

Quality is computed per utterance on its step-aligned chunks (what the environments see)
and then averaged, so long utterances do not dominate:
    mse       mean squared error on the normalised log-mel
    psnr_db   10 log10(peak^2 / mse) with peak = the target's max - min
    pearson   correlation between target and reconstruction over all bins and frames
Codebook use pools the tokens of every utterance:
    perplexity  exp(entropy of the code-usage distribution), 1 (collapse) .. codebook_size
    codes_used  codes that occur at least once; dead_codes = codebook_size - codes_used
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from audiodream.tokenizer.chunks import aligned_chunks, trim_to_chunks
from audiodream.tokenizer.model import ROUND_TRIP_BATCH, Tokenizer

QUALITY_KEYS: tuple[str, ...] = ("mse", "psnr_db", "pearson")
USAGE_KEYS: tuple[str, ...] = ("perplexity", "codes_used", "dead_codes", "codebook_size")
METRIC_KEYS: tuple[str, ...] = QUALITY_KEYS + USAGE_KEYS + ("tokens_per_second",)


@dataclass
class Reconstruction:
    """One utterance: its step-aligned target, the tokenizer's reconstruction, and the tokens."""

    target: np.ndarray  # (n_mels, S * chunk_frames)
    reconstruction: np.ndarray  # same shape
    tokens: np.ndarray  # (S, K)


def reconstruct(model: Tokenizer, mels: Sequence[np.ndarray], batch_chunks: int = ROUND_TRIP_BATCH) -> list[Reconstruction]:
    """Encode and decode every utterance chunk by chunk, batching chunks across utterances.

    One Reconstruction per input, in order; an utterance shorter than a chunk gets an empty one.
    """
    chunk = model.chunk_frames
    pieces = [aligned_chunks(m, chunk) for m in mels]
    counts = [p.shape[0] for p in pieces]
    all_chunks = np.concatenate(pieces, axis=0) if sum(counts) else np.zeros((0, model.n_mels, chunk), np.float32)
    tokens, recon = model.round_trip_chunks(all_chunks, batch_chunks)
    all_tokens, all_recon = tokens.numpy(), recon.numpy()
    out, offset = [], 0
    for mel, n in zip(mels, counts):
        r = all_recon[offset : offset + n]  # (n, n_mels, chunk)
        out.append(
            Reconstruction(
                target=trim_to_chunks(mel, chunk),
                reconstruction=r.transpose(1, 0, 2).reshape(mel.shape[0], n * chunk),
                tokens=all_tokens[offset : offset + n],
            )
        )
        offset += n
    return out


def utterance_quality(target: np.ndarray, recon: np.ndarray) -> dict[str, float]:
    t = target.astype(np.float64).ravel()
    r = recon.astype(np.float64).ravel()
    mse = float(np.mean((t - r) ** 2))
    peak = float(t.max() - t.min())
    psnr = 10.0 * math.log10(peak**2 / max(mse, 1e-12)) if peak > 0 else float("nan")
    tc, rc = t - t.mean(), r - r.mean()
    denom = math.sqrt(float(np.sum(tc**2)) * float(np.sum(rc**2)))
    pearson = float(np.sum(tc * rc)) / denom if denom > 0 else float("nan")
    return {"mse": mse, "psnr_db": psnr, "pearson": pearson}


def code_usage(tokens: np.ndarray, codebook_size: int) -> np.ndarray:
    """Occurrences of every code id in `tokens` (any shape)."""
    return np.bincount(np.asarray(tokens, dtype=np.int64).ravel(), minlength=codebook_size)


def usage_metrics(counts: np.ndarray) -> dict[str, float]:
    total = counts.sum()
    p = counts[counts > 0] / max(total, 1)
    entropy = float(-(p * np.log(p)).sum()) if total else 0.0
    used = int((counts > 0).sum())
    return {
        "perplexity": math.exp(entropy),
        "codes_used": used,
        "dead_codes": int(counts.size - used),
        "codebook_size": int(counts.size),
    }


def summarize(recons: Sequence[Reconstruction], codebook_size: int, tokens_per_second: float) -> dict[str, float]:
    """Every METRIC_KEYS entry (plus how many utterances and tokens) of a set of reconstructions."""
    usable = [r for r in recons if r.target.shape[1] > 0]
    if not usable:
        raise ValueError(f"none of the {len(recons)} utterances has a full chunk to evaluate on")
    per_utt = [utterance_quality(r.target, r.reconstruction) for r in usable]
    quality = {k: float(np.nanmean([q[k] for q in per_utt])) for k in QUALITY_KEYS}
    counts = code_usage(np.concatenate([r.tokens.ravel() for r in usable]), codebook_size)
    return {
        **quality,
        **usage_metrics(counts),
        "tokens_per_second": float(tokens_per_second),
        "utterances": len(usable),
        "tokens": int(counts.sum()),
    }


def evaluate(model: Tokenizer, mels: Sequence[np.ndarray]) -> dict[str, float]:
    return summarize(reconstruct(model, mels), model.codebook_size, model.tokens_per_second)
