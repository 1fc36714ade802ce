"""Open-loop token prediction: the world model against count baselines, by horizon.

Protocol (shared by the model and every baseline, so the numbers compare): for each
held-out episode of at least C + h steps, observe steps 0..C-1 and predict step
C + h - 1 (horizon 1 = the next step). CE is in nats per token, averaged over all
predicted tokens; a horizon that no episode is long enough for is reported as None.

World model: the context is observed with the posterior, then the prior is rolled
forward h steps with the episode's real actions (pydreamer convention: actions[t]
leads to step t). `n_samples` independent rollouts per episode (each with its own
posterior and prior samples) are averaged **in probability space**:
p(token) = mean_s p_s(token), i.e. a Monte-Carlo estimate of the model's predictive
mixture, and CE = -log of that. Two token distributions are scored at each rolled-out
state, both in the same pass:
- `ce_by_horizon`: the predictive head p(tokens | h) at the rolled-out h (the latent
  z of the predicted step marginalised by the head itself; earlier latents sampled);
- `ce_by_horizon_sampled`: the reconstruction decoder p(tokens | h, z) with z drawn
  from the prior. Given z the decoder is sharp, so with a few samples this mixture
  overstates the CE, the more the longer the horizon (more latent uncertainty).

Baselines, fitted on training episodes (`ce_baselines`):
- unigram: per-slot token frequencies with add-one (Laplace) smoothing.
- bigram: per slot, a first-order Markov chain over consecutive steps,
  p(x_{k,t} | x_{k,t-1}), its counts smoothed toward the slot's unigram with a
  Dirichlet prior of strength beta (picked from a grid by CE on a held-out fifth of
  the training episodes, then refitted on all); horizon h applies the per-slot
  transition matrix h times to the last observed token (exact propagation of the
  distribution, using the sparse counts).
- repeat: repeat step C-1; mass 1 - eps on the repeated token, eps spread uniformly
  over the other V - 1 tokens. eps is fitted per horizon as the lag-h mismatch rate
  on the training episodes, which is the closed-form CE-minimising value.
A stronger reference outside `ce_baselines`, `ce_lag_bigram`: per slot,
p(x_{k,t+h} | x_{k,t}) counted directly at lag h (a skip-gram, same smoothing), which
captures "copy the token two steps back" patterns that no first-order chain can.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import scipy.sparse
import torch

from audiodream.worldmodel.model import WorldModel

DEFAULT_HORIZONS: tuple[int, ...] = (1, 2, 4, 8, 16)
BETA_GRID: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


def episode_arrays(episode: Mapping[str, Any], name: str = "episode") -> tuple[np.ndarray, np.ndarray]:
    """(tokens (T, K) int64, actions (T,) int64) of one episode mapping."""
    for key in ("tokens", "actions"):
        if key not in episode:
            raise KeyError(f"{name}: missing key {key!r}; got keys {sorted(episode)}")
    tokens = np.asarray(episode["tokens"].cpu() if isinstance(episode["tokens"], torch.Tensor) else episode["tokens"]).astype(np.int64)
    actions = np.asarray(episode["actions"].cpu() if isinstance(episode["actions"], torch.Tensor) else episode["actions"]).astype(np.int64)
    if tokens.ndim != 2:
        raise ValueError(f"{name}['tokens']: expected shape (T, K), got {tokens.shape}")
    if actions.shape != tokens.shape[:1]:
        raise ValueError(f"{name}['actions']: expected shape ({tokens.shape[0]},), got {actions.shape}")
    return tokens, actions


def _check_horizons(horizons: Sequence[int], context: int) -> list[int]:
    if context < 1:
        raise ValueError(f"context steps: must be >= 1, got {context}")
    if not horizons or any(int(h) < 1 for h in horizons):
        raise ValueError(f"horizons: must be positive integers, got {list(horizons)}")
    return sorted({int(h) for h in horizons})


def _finish(sums: dict[int, float], counts: dict[int, int]) -> dict[str, Optional[float]]:
    return {str(h): (sums[h] / counts[h] if counts[h] else None) for h in sorted(sums)}


HEADS: tuple[str, ...] = ("predictive", "sampled")  # see the module docstring


# ---------------------------------------------------------------- world model


@torch.no_grad()
def open_loop_ce(
    model: WorldModel,
    episodes: Sequence[Mapping[str, Any]],
    context: int = 8,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    n_samples: int = 32,
    seed: int = 0,
    batch_episodes: int = 16,
) -> tuple[dict[str, dict[str, Optional[float]]], dict[str, int]]:
    """({head: CE in nats/token by horizon} for each of HEADS, predicted steps by horizon);
    see the module docstring."""
    horizons = _check_horizons(horizons, context)
    device = model.device
    generator = torch.Generator(device=device).manual_seed(seed)
    arrays = [episode_arrays(ep, f"episodes[{i}]") for i, ep in enumerate(episodes)]
    eligible = [(tok, act) for tok, act in arrays if len(tok) >= context + 1]
    sums = {head: {h: 0.0 for h in horizons} for head in HEADS}
    counts = {h: 0 for h in horizons}
    steps_by_h = {h: 0 for h in horizons}
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(eligible), batch_episodes):
            chunk = eligible[start : start + batch_episodes]
            _open_loop_chunk(model, chunk, context, horizons, n_samples, generator, sums, counts, steps_by_h)
    finally:
        model.train(was_training)
    return {head: _finish(sums[head], counts) for head in HEADS}, {str(h): steps_by_h[h] for h in horizons}


def _open_loop_chunk(
    model: WorldModel,
    chunk: list[tuple[np.ndarray, np.ndarray]],
    context: int,
    horizons: list[int],
    n_samples: int,
    generator: torch.Generator,
    sums: dict[str, dict[int, float]],
    counts: dict[int, int],
    steps_by_h: dict[int, int],
) -> None:
    device = model.device
    lengths = np.array([len(tok) for tok, _ in chunk])
    rollout = int(min(max(horizons), lengths.max() - context))
    padded = context + rollout
    tokens = np.zeros((len(chunk), padded, chunk[0][0].shape[1]), dtype=np.int64)
    actions = np.zeros((len(chunk), padded), dtype=np.int64)
    for i, (tok, act) in enumerate(chunk):
        used = min(len(tok), padded)
        tokens[i, :used], actions[i, :used] = tok[:used], act[:used]
    tokens_t = torch.from_numpy(tokens).to(device).repeat_interleave(n_samples, dim=0)
    actions_t = torch.from_numpy(actions).to(device).repeat_interleave(n_samples, dim=0)
    is_first = torch.zeros(tokens_t.shape[:2], dtype=torch.bool, device=device)
    is_first[:, 0] = True
    posterior = model.observe(tokens_t[:, :context], actions_t[:, :context], is_first[:, :context], generator=generator)
    trajectory = model.imagine(posterior.last_state, actions_t[:, context:], rollout, generator)
    for h in horizons:
        if h > rollout:
            continue
        target = tokens_t[:, context + h - 1]
        valid = torch.from_numpy(lengths >= context + h).to(device)
        log_ps = {
            "predictive": model.predictive_log_prob(trajectory.h[:, h], target),  # (N*S, K)
            "sampled": model.token_log_prob(trajectory.features[:, h], target),
        }
        for head, log_p in log_ps.items():
            mixture = torch.logsumexp(log_p.view(len(chunk), n_samples, -1), dim=1) - math.log(n_samples)  # (N, K)
            sums[head][h] += float(-mixture[valid].sum())
        counts[h] += int(valid.sum()) * target.shape[1]
        steps_by_h[h] += int(valid.sum())


# ------------------------------------------------------------------ baselines


@dataclass
class LagTable:
    """Per-slot counts of (token at t, token at t + lag) pairs, for lookups by key."""

    pair_keys: np.ndarray  # sorted unique (k*V + a)*V + b
    pair_counts: np.ndarray
    context_counts: np.ndarray  # (K*V,) counts of k*V + a
    mismatch_rate: float
    beta: float = 1.0


@dataclass
class TokenBaselines:
    vocab_size: int
    unigram_log_probs: np.ndarray  # (K, V)
    lags: dict[int, LagTable]  # lag 1 (the bigram chain) and every evaluated horizon


def _unigram_log_probs(token_arrays: Sequence[np.ndarray], vocab_size: int) -> np.ndarray:
    slots = token_arrays[0].shape[1]
    counts = np.ones((slots, vocab_size))
    for tokens in token_arrays:
        for k in range(slots):
            counts[k] += np.bincount(tokens[:, k], minlength=vocab_size)
    return np.log(counts / counts.sum(axis=1, keepdims=True))


def _lag_pairs(token_arrays: Sequence[np.ndarray], lag: int) -> tuple[np.ndarray, np.ndarray]:
    """(tokens at t, tokens at t + lag), each (N, K), over all steps of all episodes."""
    sources, targets = [], []
    for tokens in token_arrays:
        if len(tokens) > lag:
            sources.append(tokens[:-lag])
            targets.append(tokens[lag:])
    if not sources:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(sources), np.concatenate(targets)


def _fit_lag_table(token_arrays: Sequence[np.ndarray], lag: int, vocab_size: int) -> LagTable:
    src, tgt = _lag_pairs(token_arrays, lag)
    slots = token_arrays[0].shape[1]
    if len(src) == 0:
        return LagTable(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(slots * vocab_size), mismatch_rate=0.5)
    slot_ids = np.arange(slots)[None, :]
    context_ids = (slot_ids * vocab_size + src).ravel()
    keys = context_ids * vocab_size + tgt.ravel()
    pair_keys, pair_counts = np.unique(keys, return_counts=True)
    context_counts = np.bincount(context_ids, minlength=slots * vocab_size).astype(np.float64)
    return LagTable(pair_keys, pair_counts, context_counts, mismatch_rate=float(np.mean(src != tgt)))


@dataclass
class LagLookup:
    """The counts a smoothed lag table needs for (N, K) (src, tgt) pairs, looked up once:
    the lookup (a search over every pair key) is what costs, not the smoothing, so
    `_choose_beta` scores every beta of its grid on one lookup."""

    pair_counts: np.ndarray  # (N, K) count of (src, tgt) at that slot
    context_counts: np.ndarray  # (N, K) count of src at that slot
    prior: np.ndarray  # (N, K) unigram p(tgt) at that slot

    def log_probs(self, beta: float) -> np.ndarray:
        """log p(tgt | src) with `beta` pseudo-counts of the unigram prior."""
        return np.log((self.pair_counts + beta * self.prior) / (self.context_counts + beta))


def _lag_lookup(table: LagTable, unigram_log_probs: np.ndarray, src: np.ndarray, tgt: np.ndarray) -> LagLookup:
    vocab_size = unigram_log_probs.shape[1]
    slot_ids = np.broadcast_to(np.arange(src.shape[1])[None, :], src.shape)
    context_ids = slot_ids * vocab_size + src
    keys = context_ids * vocab_size + tgt
    where = np.searchsorted(table.pair_keys, keys)
    where_clipped = np.minimum(where, max(len(table.pair_keys) - 1, 0))
    found = (where < len(table.pair_keys)) & (table.pair_keys[where_clipped] == keys) if len(table.pair_keys) else np.zeros(keys.shape, bool)
    pair_counts = np.where(found, table.pair_counts[where_clipped] if len(table.pair_counts) else 0, 0)
    return LagLookup(pair_counts, table.context_counts[context_ids], np.exp(unigram_log_probs[slot_ids, tgt]))


def _lag_log_probs(table: LagTable, unigram_log_probs: np.ndarray, src: np.ndarray, tgt: np.ndarray, beta: float) -> np.ndarray:
    """log p(tgt | src) for (N, K) arrays under the smoothed lag table."""
    return _lag_lookup(table, unigram_log_probs, src, tgt).log_probs(beta)


def _choose_beta(token_arrays: Sequence[np.ndarray], lag: int, vocab_size: int) -> float:
    held_out = token_arrays[::5] if len(token_arrays) >= 5 else []
    fit = [t for i, t in enumerate(token_arrays) if i % 5 != 0] if held_out else []
    src, tgt = _lag_pairs(held_out, lag) if held_out else (np.zeros(0), np.zeros(0))
    if not fit or len(src) == 0:
        return 1.0
    table = _fit_lag_table(fit, lag, vocab_size)
    unigram = _unigram_log_probs(fit, vocab_size)
    lookup = _lag_lookup(table, unigram, src, tgt)
    scores = [-lookup.log_probs(beta).mean() for beta in BETA_GRID]
    return BETA_GRID[int(np.argmin(scores))]


def fit_baselines(train_episodes: Sequence[Mapping[str, Any]], vocab_size: int, horizons: Sequence[int] = DEFAULT_HORIZONS) -> TokenBaselines:
    """Unigram, bigram-chain, repeat (and lag-h skip-gram) baselines fitted on training episodes."""
    token_arrays = [episode_arrays(ep, f"train_episodes[{i}]")[0] for i, ep in enumerate(train_episodes)]
    if not token_arrays:
        raise ValueError("train_episodes: need at least one episode to fit the baselines")
    if any(int(t.max(initial=0)) >= vocab_size or int(t.min(initial=0)) < 0 for t in token_arrays):
        raise ValueError(f"train_episodes: token ids must lie in [0, {vocab_size})")
    lags = {}
    for h in sorted({1, *(int(h) for h in horizons)}):
        table = _fit_lag_table(token_arrays, h, vocab_size)
        table.beta = _choose_beta(token_arrays, h, vocab_size)
        lags[h] = table
    return TokenBaselines(vocab_size, _unigram_log_probs(token_arrays, vocab_size), lags)


def _chain_log_probs(baselines: TokenBaselines, src: np.ndarray, tgt: np.ndarray, steps: int) -> np.ndarray:
    """log p(tgt | src) (N, K) after `steps` applications of each slot's smoothed lag-1 matrix.

    M[a, b] = (count(a -> b) + beta * u(b)) / (count(a) + beta), so one step of a row
    distribution P is (P / (n + beta)) @ counts + (P @ (beta / (n + beta))) u: the dense
    V x V matrix is never built.
    """
    table = baselines.lags[1]
    vocab = baselines.vocab_size
    beta = table.beta
    result = np.zeros(src.shape)
    pair_slot = table.pair_keys // (vocab * vocab)
    for k in range(src.shape[1]):
        in_slot = pair_slot == k
        keys = table.pair_keys[in_slot] % (vocab * vocab)
        counts_t = scipy.sparse.csr_matrix((table.pair_counts[in_slot].astype(np.float64), (keys % vocab, keys // vocab)), shape=(vocab, vocab))
        context_counts = table.context_counts[k * vocab : (k + 1) * vocab]
        unigram = np.exp(baselines.unigram_log_probs[k])
        probs = np.zeros((src.shape[0], vocab))
        probs[np.arange(src.shape[0]), src[:, k]] = 1.0
        for _ in range(steps):
            scaled = probs / (context_counts + beta)
            probs = np.asarray((counts_t @ scaled.T).T) + (scaled @ np.full(vocab, beta))[:, None] * unigram[None, :]
        result[:, k] = np.log(probs[np.arange(src.shape[0]), tgt[:, k]])
    return result


def baseline_ce(
    baselines: TokenBaselines,
    episodes: Sequence[Mapping[str, Any]],
    context: int = 8,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
) -> dict[str, dict[str, Optional[float]]]:
    """CE (nats/token) by horizon of unigram, bigram, repeat and lag_bigram, on the windows
    `open_loop_ce` uses."""
    horizons = _check_horizons(horizons, context)
    missing = [h for h in horizons if h not in baselines.lags]
    if missing:
        raise ValueError(f"horizons {missing}: the baselines were not fitted for them")
    vocab = baselines.vocab_size
    token_arrays = [episode_arrays(ep, f"episodes[{i}]")[0] for i, ep in enumerate(episodes)]
    result: dict[str, dict[str, Optional[float]]] = {"unigram": {}, "bigram": {}, "repeat": {}, "lag_bigram": {}}
    for h in horizons:
        pairs = [(t[context - 1], t[context + h - 1]) for t in token_arrays if len(t) >= context + h]
        if not pairs:
            for name in result:
                result[name][str(h)] = None
            continue
        src = np.stack([p[0] for p in pairs])
        tgt = np.stack([p[1] for p in pairs])
        slot_ids = np.broadcast_to(np.arange(tgt.shape[1])[None, :], tgt.shape)
        result["unigram"][str(h)] = float(-baselines.unigram_log_probs[slot_ids, tgt].mean())
        result["bigram"][str(h)] = float(-_chain_log_probs(baselines, src, tgt, h).mean())
        table = baselines.lags[h]
        result["lag_bigram"][str(h)] = float(-_lag_log_probs(table, baselines.unigram_log_probs, src, tgt, table.beta).mean())
        eps = float(np.clip(table.mismatch_rate, 1e-6, 1.0 - 1e-6))
        repeat_log_p = np.where(src == tgt, np.log1p(-eps), np.log(eps / (vocab - 1)))
        result["repeat"][str(h)] = float(-repeat_log_p.mean())
    return result


def evaluate_world_model(
    model: WorldModel,
    train_episodes: Sequence[Mapping[str, Any]],
    test_episodes: Sequence[Mapping[str, Any]],
    context: int = 8,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    n_samples: int = 32,
    seed: int = 0,
) -> dict[str, Any]:
    """{"ce_by_horizon": {"1": ..}, "ce_by_horizon_sampled": {"1": ..},
    "ce_baselines": {"unigram": {..}, "bigram": {..}, "repeat": {..}},
    "ce_lag_bigram": {"1": ..}, "steps_by_horizon": {"1": ..}, "context_steps": C, "n_samples": S};
    horizon keys are strings."""
    ce, steps = open_loop_ce(model, test_episodes, context, horizons, n_samples, seed)
    baselines = baseline_ce(fit_baselines(train_episodes, model.spec.vocab_size, horizons), test_episodes, context, horizons)
    lag_bigram = baselines.pop("lag_bigram")
    return {
        "ce_by_horizon": ce["predictive"],
        "ce_by_horizon_sampled": ce["sampled"],
        "ce_baselines": baselines,
        "ce_lag_bigram": lag_bigram,
        "steps_by_horizon": steps,
        "context_steps": int(context),
        "n_samples": int(n_samples),
    }
