"""Log-mel back to sound: undo the z-score, mel -> linear power spectrogram, Griffin-Lim.

Both steps are torchaudio's (InverseMelScale, GriffinLim with momentum), so the
inverse uses exactly the filterbank the forward path used.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio.functional as AF
import torchaudio.transforms as T

from audiodream.config.schema import FeaturesConfig


class MelInverter:
    def __init__(self, cfg: FeaturesConfig, device: str | torch.device = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        self.inverse_mel = T.InverseMelScale(
            n_stft=cfg.n_fft // 2 + 1,
            n_mels=cfg.n_mels,
            sample_rate=cfg.sample_rate,
            f_min=cfg.f_min,
            f_max=cfg.f_max,
            norm="slaney",
            mel_scale="slaney",
        ).to(self.device)
        self.window = torch.hann_window(cfg.win_length or cfg.n_fft, device=self.device)

    @torch.no_grad()
    def waveform(self, mel: np.ndarray | torch.Tensor, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
        """(n_mels, frames) z-scored log-mel (with its utterance mean/std) -> float32 waveform."""
        mel_t = torch.as_tensor(np.asarray(mel, dtype=np.float32), device=self.device)
        power_mel = torch.exp(mel_t * std + mean) - self.cfg.log_floor
        power = self.inverse_mel(power_mel.clamp_min(0.0))
        frames = mel_t.shape[-1]
        # Our framing drops the STFT's last centred frame (frames = samples // hop); the
        # inverse STFT wants it back, so repeat the last frame.
        power = torch.cat([power, power[..., -1:]], dim=-1)
        wave = AF.griffinlim(
            power,
            window=self.window,
            n_fft=self.cfg.n_fft,
            hop_length=self.cfg.hop_length,
            win_length=self.cfg.win_length or self.cfg.n_fft,
            power=2.0,
            n_iter=self.cfg.griffin_lim_iters,
            momentum=self.cfg.griffin_lim_momentum,
            length=frames * self.cfg.hop_length,
            rand_init=False,
        )
        return wave.cpu().numpy().astype(np.float32)
