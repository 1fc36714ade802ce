"""The VQ-VAE tokenizer: normalised log-mel chunks <-> fixed-size groups of discrete tokens.

Public API (used by the environments, the world model and eval):

    tok = Tokenizer.load(path, features=cfg.features, device="cpu")
    tokens = tok.encode(mel)          # (B, n_mels, F) -> LongTensor (B, F // chunk_frames, K)
    mel = tok.decode(tokens)          # (B, S, K) -> (B, n_mels, S * chunk_frames)
    tok.encode_chunks(chunks)         # (N, n_mels, chunk_frames) -> (N, K)
    tok.tokens_per_step, tok.codebook_size, tok.chunk_frames, tok.tokens_per_second

See geometry.py for how frames become tokens, quantizer.py for why the codebook stays
fully used. Checkpoints are plain dicts of tensors, numbers and strings, so they load with
`torch.load(weights_only=True)`, and they carry the feature config the tokenizer was
trained with: tokens of one feature setting mean nothing under another.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiodream.config.schema import FEATURE_RENDER_FIELDS, FeaturesConfig, TokenizerConfig
from audiodream.tokenizer.geometry import TokenGeometry
from audiodream.tokenizer.networks import ChunkDecoder, ChunkEncoder
from audiodream.tokenizer.quantizer import NormalizedVectorQuantizer

CHECKPOINT_FORMAT = "audiodream.tokenizer/1"
ROUND_TRIP_BATCH = 4096  # chunks per encode/decode call in round_trip_chunks (bounds its memory)


class TokenizerCheckpointError(RuntimeError):
    """A tokenizer checkpoint that is missing, unreadable, or made for other features."""


@dataclass(frozen=True)
class TokenizerArchitecture:
    """Everything needed to rebuild the network; stored in every checkpoint."""

    n_mels: int
    chunk_frames: int
    downsample: int
    groups: int
    code_dim: int
    codebook_size: int
    hidden: int
    blocks: int

    @classmethod
    def from_config(cls, tokenizer: TokenizerConfig, features: FeaturesConfig, chunk_frames: int) -> "TokenizerArchitecture":
        return cls(
            n_mels=features.n_mels,
            chunk_frames=chunk_frames,
            downsample=tokenizer.downsample,
            groups=tokenizer.groups,
            code_dim=tokenizer.code_dim,
            codebook_size=tokenizer.codebook_size,
            hidden=tokenizer.hidden,
            blocks=tokenizer.blocks,
        )


@dataclass
class TokenizerOutput:
    """One training forward pass over a batch of chunks."""

    reconstruction: Tensor  # (N, n_mels, chunk_frames)
    tokens: Tensor  # (N, K)
    latents: Tensor  # (N, K, code_dim) encoder outputs before quantisation
    reconstruction_loss: Tensor
    codebook_loss: Tensor
    commitment_loss: Tensor


def feature_differences(stored: dict[str, Any], given: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Feature settings that differ, leaving out the Griffin-Lim ones (FEATURE_RENDER_FIELDS):
    they change how mel is turned into sound, not the features a tokenizer was trained on."""
    keys = sorted((set(stored) | set(given)) - set(FEATURE_RENDER_FIELDS))
    return {k: (stored.get(k), given.get(k)) for k in keys if stored.get(k) != given.get(k)}


class Tokenizer(nn.Module):
    def __init__(self, arch: TokenizerArchitecture, features: FeaturesConfig):
        super().__init__()
        self.arch = arch
        self.features = features
        self.geometry = TokenGeometry(
            arch.chunk_frames, arch.downsample, arch.groups, features.sample_rate / features.hop_length
        )
        latent_channels = arch.groups * arch.code_dim
        self.encoder = ChunkEncoder(arch.n_mels, arch.hidden, latent_channels, arch.downsample, arch.blocks)
        self.quantizer = NormalizedVectorQuantizer(arch.codebook_size, arch.code_dim)
        self.decoder = ChunkDecoder(arch.n_mels, arch.hidden, latent_channels, arch.downsample, arch.blocks)

    @classmethod
    def from_config(cls, tokenizer: TokenizerConfig, features: FeaturesConfig, chunk_frames: int) -> "Tokenizer":
        return cls(TokenizerArchitecture.from_config(tokenizer, features, chunk_frames), features)

    # ------------------------------------------------------------------ properties
    @property
    def tokens_per_step(self) -> int:
        return self.geometry.tokens_per_step

    @property
    def codebook_size(self) -> int:
        return self.arch.codebook_size

    @property
    def chunk_frames(self) -> int:
        return self.arch.chunk_frames

    @property
    def n_mels(self) -> int:
        return self.arch.n_mels

    @property
    def tokens_per_second(self) -> float:
        return self.geometry.tokens_per_second

    @property
    def features_config(self) -> FeaturesConfig:
        return self.features

    @property
    def device(self) -> torch.device:
        return self.quantizer.codebook.device

    # ------------------------------------------------------------- latent layout
    def encode_latents(self, chunks: Tensor) -> Tensor:
        """(N, n_mels, chunk_frames) -> (N, K, code_dim), latent frame major, group minor."""
        n = chunks.shape[0]
        out = self.encoder(chunks)  # (N, groups * code_dim, latent_frames)
        out = out.reshape(n, self.arch.groups, self.arch.code_dim, self.geometry.latent_frames)
        return out.permute(0, 3, 1, 2).reshape(n, self.tokens_per_step, self.arch.code_dim)

    def _decode_codes(self, codes: Tensor) -> Tensor:
        """(N, K, code_dim) -> (N, n_mels, chunk_frames)."""
        n = codes.shape[0]
        grid = codes.reshape(n, self.geometry.latent_frames, self.arch.groups, self.arch.code_dim)
        grid = grid.permute(0, 2, 3, 1).reshape(n, self.arch.groups * self.arch.code_dim, self.geometry.latent_frames)
        return self.decoder(grid)

    def forward(self, chunks: Tensor) -> TokenizerOutput:
        """Training pass: reconstruction and the VQ losses (unweighted) of a batch of chunks."""
        latents = self.encode_latents(chunks)
        q = self.quantizer(latents)
        recon = self._decode_codes(q.quantized)
        return TokenizerOutput(recon, q.indices, latents, F.mse_loss(recon, chunks), q.codebook_loss, q.commitment_loss)

    # ------------------------------------------------------------------ inference
    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.train(was_training)

    def _as_tensor(self, x: Tensor | np.ndarray, dtype: torch.dtype) -> Tensor:
        return torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x, dtype=dtype, device=self.device)

    def encode_chunks(self, chunks: Tensor | np.ndarray) -> Tensor:
        """(N, n_mels, chunk_frames) normalised log-mel chunks -> (N, K) LongTensor tokens."""
        x = self._as_tensor(chunks, torch.float32)
        expected = (self.n_mels, self.chunk_frames)
        if x.dim() != 3 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"encode_chunks expects (N, {expected[0]}, {expected[1]}) chunks, got shape {tuple(x.shape)}")
        with self._inference():
            return self.quantizer.lookup(self.encode_latents(x))

    def encode(self, mel: Tensor | np.ndarray) -> Tensor:
        """(B, n_mels, F) normalised log-mels, F a multiple of chunk_frames -> (B, F // chunk_frames, K)."""
        x = self._as_tensor(mel, torch.float32)
        if x.dim() != 3 or x.shape[1] != self.n_mels:
            raise ValueError(f"encode expects a (B, {self.n_mels}, frames) log-mel batch, got shape {tuple(x.shape)}")
        batch, _, frames = x.shape
        if frames % self.chunk_frames:
            raise ValueError(
                f"encode: frames ({frames}) must be a multiple of chunk_frames ({self.chunk_frames}); "
                f"trim or pad the log-mel to {frames // self.chunk_frames * self.chunk_frames} or "
                f"{-(-frames // self.chunk_frames) * self.chunk_frames} frames"
            )
        steps = frames // self.chunk_frames
        chunks = x.reshape(batch, self.n_mels, steps, self.chunk_frames).permute(0, 2, 1, 3)
        tokens = self.encode_chunks(chunks.reshape(batch * steps, self.n_mels, self.chunk_frames))
        return tokens.reshape(batch, steps, self.tokens_per_step)

    def decode_chunks(self, tokens: Tensor | np.ndarray) -> Tensor:
        """(N, K) tokens -> (N, n_mels, chunk_frames) normalised log-mel chunks."""
        t = self._as_tensor(tokens, torch.long)
        if t.dim() != 2 or t.shape[1] != self.tokens_per_step:
            raise ValueError(f"decode_chunks expects (N, {self.tokens_per_step}) tokens, got shape {tuple(t.shape)}")
        with self._inference():
            return self._decode_codes(self.quantizer.embed(t))

    def round_trip_chunks(self, chunks: Tensor | np.ndarray, batch: int = ROUND_TRIP_BATCH) -> tuple[Tensor, Tensor]:
        """(N, n_mels, chunk_frames) chunks -> their tokens (N, K) and decodings (N, n_mels,
        chunk_frames), as CPU tensors, `batch` chunks a call: the tokenizer's own quality figures
        and the eval's reconstructed chunks both come from here."""
        tokens = [torch.zeros(0, self.tokens_per_step, dtype=torch.long)]
        decoded = [torch.zeros(0, self.n_mels, self.chunk_frames)]
        for start in range(0, len(chunks), batch):
            t = self.encode_chunks(chunks[start : start + batch])
            tokens.append(t.cpu())
            decoded.append(self.decode_chunks(t).cpu())
        return torch.cat(tokens), torch.cat(decoded)

    def decode(self, tokens: Tensor | np.ndarray) -> Tensor:
        """(B, S, K) tokens -> (B, n_mels, S * chunk_frames) normalised log-mels."""
        t = self._as_tensor(tokens, torch.long)
        if t.dim() != 3 or t.shape[2] != self.tokens_per_step:
            raise ValueError(f"decode expects (B, steps, {self.tokens_per_step}) tokens, got shape {tuple(t.shape)}")
        with self._inference():
            codes = self.quantizer.embed(t)
        return self.decode_code_vectors(codes)

    def code_vectors(self) -> Tensor:
        """(V, code_dim) the unit code vectors that token ids stand for."""
        return self.quantizer.normalized_codebook().detach()

    def decode_code_vectors(self, codes: Tensor) -> Tensor:
        """(B, S, K, code_dim) vectors in the codes' space -> (B, n_mels, S * chunk_frames).

        Token ids decode through their own code vectors (`decode`); any other point of the
        space decodes too, such as a token distribution's mean code (imagination's
        `token_draw: mean`)."""
        codes = codes.to(self.device, torch.float32)
        if codes.dim() != 4 or codes.shape[2:] != (self.tokens_per_step, self.arch.code_dim):
            raise ValueError(
                f"decode_code_vectors expects (B, steps, {self.tokens_per_step}, {self.arch.code_dim}) vectors, got shape {tuple(codes.shape)}"
            )
        batch, steps = codes.shape[:2]
        with self._inference():
            chunks = self._decode_codes(codes.reshape(batch * steps, self.tokens_per_step, self.arch.code_dim))
        chunks = chunks.reshape(batch, steps, self.n_mels, self.chunk_frames).permute(0, 2, 1, 3)
        return chunks.reshape(batch, self.n_mels, steps * self.chunk_frames)

    # ---------------------------------------------------------------- checkpoints
    def checkpoint(self, info: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "architecture": asdict(self.arch),
            "features": asdict(self.features),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
            "info": dict(info or {}),
        }

    def save(self, path: Path | str, info: dict[str, Any] | None = None) -> Path:
        """Write atomically (temp file, then rename), so a reader never sees half a checkpoint."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(self.checkpoint(info), tmp)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: Path | str, features: FeaturesConfig | None = None, device: str | torch.device = "cpu") -> "Tokenizer":
        """Rebuild a saved tokenizer; with `features`, insist it was trained on exactly those."""
        ckpt = read_checkpoint(path)
        stored = ckpt["features"]
        if features is not None:
            diff = feature_differences(stored, asdict(features))
            if diff:
                listed = ", ".join(f"features.{k}: checkpoint {a!r} vs config {b!r}" for k, (a, b) in diff.items())
                raise TokenizerCheckpointError(
                    f"{path}: tokenizer was trained with a different feature config ({listed}); "
                    "retrain the tokenizer or use the features it was trained with"
                )
        try:
            arch = TokenizerArchitecture(**ckpt["architecture"])
            model = cls(arch, FeaturesConfig(**stored))
            model.load_state_dict(ckpt["state_dict"])
        except (TypeError, RuntimeError, KeyError) as err:
            raise TokenizerCheckpointError(f"{path}: tokenizer checkpoint does not match this code's model: {err}") from err
        return model.to(device).eval()


def read_checkpoint(path: Path | str) -> dict[str, Any]:
    """The raw checkpoint dict, checked to be a tokenizer checkpoint of a known format."""
    path = Path(path)
    if not path.is_file():
        raise TokenizerCheckpointError(f"{path}: tokenizer checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors all mean "not a readable checkpoint"
        raise TokenizerCheckpointError(f"{path}: not a readable tokenizer checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise TokenizerCheckpointError(f"{path}: not a tokenizer checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})")
    missing = {"architecture", "features", "state_dict"} - set(ckpt)
    if missing:
        raise TokenizerCheckpointError(f"{path}: tokenizer checkpoint lacks {sorted(missing)}")
    known = {f.name for f in fields(FeaturesConfig)}
    unknown = set(ckpt["features"]) - known
    if unknown:
        raise TokenizerCheckpointError(f"{path}: checkpoint feature config has unknown keys {sorted(unknown)}")
    return ckpt
