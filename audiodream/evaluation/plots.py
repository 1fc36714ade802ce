"""The pictures eval and generate write: CE by horizon, spectrograms, completion histograms."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from audiodream.data.synthetic.grammar import SYLLABLES  # noqa: E402

CurveByHorizon = Mapping[str, Optional[float]]


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_ce_by_horizon(
    model: CurveByHorizon,
    baselines: Mapping[str, CurveByHorizon],
    path: Path,
    context_steps: int,
    model_sampled: Optional[CurveByHorizon] = None,
) -> Path:
    """CE (nats/token) against horizon for the model (predictive head; and the decoder on
    prior samples when given) and each baseline; missing horizons are gaps."""
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    curves = {"world model": model}
    if model_sampled is not None:
        curves["world model, decoder on prior samples"] = model_sampled
    curves.update({f"{name} baseline": curve for name, curve in baselines.items()})
    styles = {
        "world model": dict(color="black", linewidth=2.5, marker="o"),
        "world model, decoder on prior samples": dict(color="gray", linewidth=1.5, marker="o", linestyle=":"),
    }
    for name, curve in curves.items():
        horizons = sorted(int(h) for h in curve)
        values = [curve[str(h)] for h in horizons]
        ax.plot(horizons, [np.nan if v is None else v for v in values], label=name, **styles.get(name, dict(marker=".", linestyle="--")))
    ax.set_xscale("log", base=2)
    ticks = sorted({int(h) for curve in curves.values() for h in curve})
    ax.set_xticks(ticks, [str(h) for h in ticks])
    ax.set_xlabel("prediction horizon h (env steps after the context)")
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.set_title(f"open-loop token prediction after {context_steps} observed steps")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_spectrogram_rows(
    rows: Sequence[Sequence[tuple[np.ndarray, str, Optional[int]]]],
    path: Path,
    frames_per_second: float,
) -> Path:
    """A grid of log-mels; each cell (mel (n_mels, F), title, frame of a boundary line or None)."""
    n_rows = max(len(rows), 1)
    n_cols = max((len(r) for r in rows), default=1)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(6 * n_cols, 2.4 * n_rows), squeeze=False, constrained_layout=True)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            if c >= len(row):
                ax.axis("off")
                continue
            mel, title, boundary = row[c]
            seconds = mel.shape[1] / frames_per_second
            ax.imshow(mel, origin="lower", aspect="auto", vmin=-2.5, vmax=2.5, cmap="magma", extent=(0, seconds, 0, mel.shape[0]))
            if boundary is not None:
                ax.axvline(boundary / frames_per_second, color="cyan", linewidth=1.5, linestyle="--")
            ax.set_title(title, fontsize=9)
            ax.set_ylabel("mel bin")
            ax.set_xlabel("time (s)")
    return _save(fig, path)


def plot_completion_histograms(histograms: np.ndarray, true_next: np.ndarray, contexts: Sequence[Sequence[int]], path: Path, limit: int = 6) -> Path:
    """Imagined next-syllable frequencies against the grammar's distribution, for the first prompts."""
    n = min(limit, len(histograms))
    fig, axes = plt.subplots(max(n, 1), 1, figsize=(11, 1.9 * max(n, 1)), squeeze=False, constrained_layout=True)
    ids = np.arange(true_next.shape[1]) if len(true_next) else np.arange(len(SYLLABLES))
    names = [SYLLABLES[i] if i < len(SYLLABLES) else str(i) for i in ids]
    for i in range(n):
        ax = axes[i, 0]
        ax.bar(ids - 0.2, true_next[i], width=0.4, label="grammar p(next | prompt)", color="tab:gray")
        ax.bar(ids + 0.2, histograms[i], width=0.4, label="imagined (classified)", color="tab:orange")
        ax.set_xticks(ids, names, fontsize=7)
        prompt = "-".join(SYLLABLES[s] if s < len(SYLLABLES) else str(s) for s in contexts[i])
        ax.set_title(f"prompt {prompt}", fontsize=9)
        ax.set_ylim(0, 1)
        if i == 0:
            ax.legend(fontsize=8)
    return _save(fig, path)
