"""Pictures and sound of a tokenizer: spectrograms before/after, code-usage histogram, wavs.

Three wavs per clip, so a listener can tell tokenizer artefacts from vocoder artefacts:
the original audio, Griffin-Lim of the original log-mel, Griffin-Lim of the reconstruction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from audiodream.config.schema import FeaturesConfig  # noqa: E402
from audiodream.features import AudioReadError, MelInverter, load_audio, write_wav  # noqa: E402
from audiodream.tokenizer.metrics import Reconstruction, usage_metrics  # noqa: E402


def plot_reconstructions(recons: Sequence[Reconstruction], titles: Sequence[str], path: Path, frames_per_second: float) -> Path:
    rows = len(recons)
    fig, axes = plt.subplots(rows, 2, figsize=(12, 2.4 * rows), squeeze=False, constrained_layout=True)
    for row, (rec, title) in enumerate(zip(recons, titles)):
        low, high = float(rec.target.min()), float(rec.target.max())
        seconds = rec.target.shape[1] / frames_per_second
        for col, (mel, what) in enumerate(((rec.target, "original"), (rec.reconstruction, "reconstruction"))):
            ax = axes[row, col]
            image = ax.imshow(mel, origin="lower", aspect="auto", vmin=low, vmax=high, cmap="magma", extent=(0, seconds, 0, mel.shape[0]))
            ax.set_title(f"{title}: {what}", fontsize=9)
            ax.set_ylabel("mel bin")
        fig.colorbar(image, ax=axes[row, :], shrink=0.9, label="z-scored log-mel")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_code_usage(counts: np.ndarray, path: Path, split: str = "val") -> Path:
    usage = usage_metrics(counts)
    fig, (by_id, ranked) = plt.subplots(2, 1, figsize=(11, 6), constrained_layout=True)
    by_id.bar(np.arange(counts.size), counts, width=1.0, color="tab:blue")
    by_id.set_xlim(-0.5, counts.size - 0.5)
    by_id.set_xlabel("code id")
    by_id.set_ylabel("occurrences")
    by_id.set_title(
        f"code usage on {split}: {usage['codes_used']}/{counts.size} codes used, "
        f"perplexity {usage['perplexity']:.0f}, {int(counts.sum())} tokens"
    )
    ranked.semilogy(np.arange(1, counts.size + 1), np.sort(counts)[::-1] + 1e-1, color="tab:blue", label="codes by rank")
    ranked.axhline(counts.sum() / counts.size, color="tab:red", linestyle="--", label="uniform use")
    ranked.set_xlabel("rank")
    ranked.set_ylabel("occurrences")
    ranked.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_sample_wavs(
    recon: Reconstruction, mean: float, std: float, source: str | None, features: FeaturesConfig, out_dir: Path, name: str
) -> list[Path]:
    """original.wav (source audio, when readable), mel_griffinlim.wav, reconstruction_griffinlim.wav."""
    inverter = MelInverter(features)
    written = []
    if source is not None:
        try:
            audio = load_audio(source, features.sample_rate)
            written.append(write_wav(out_dir / f"{name}_original.wav", audio, features.sample_rate))
        except AudioReadError:
            pass  # corpus moved since the data stage: the Griffin-Lim pair is still worth writing
    written.append(write_wav(out_dir / f"{name}_mel_griffinlim.wav", inverter.waveform(recon.target, mean, std), features.sample_rate))
    written.append(
        write_wav(out_dir / f"{name}_reconstruction_griffinlim.wav", inverter.waveform(recon.reconstruction, mean, std), features.sample_rate)
    )
    return written
