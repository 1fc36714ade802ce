from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import librosa

from audiodream.config.schema import FeaturesConfig
from audiodream.features import AudioReadError, LogMelExtractor, MelInverter, load_audio, write_wav
from audiodream.features.audio_io import write_pcm16
from tests.audio_fixtures import voiced_tone


def test_load_audio_downmixes_and_resamples(tmp_path):
    stereo = np.stack([voiced_tone(44100, 1.0), np.zeros(44100, np.float32)], axis=1)
    path = tmp_path / "s.wav"
    sf.write(path, stereo, 44100, subtype="PCM_24")
    audio = load_audio(path, 16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 16000) <= 1
    # Downmix averages channels: the peak halves against the left channel alone.
    assert np.abs(audio).max() == pytest.approx(np.abs(stereo[:, 0]).max() / 2, rel=0.1)


@pytest.mark.parametrize(
    "writer, reason",
    [
        (lambda p: p.write_bytes(b""), "unreadable"),
        (lambda p: sf.write(p, np.zeros(16000, np.float32), 16000), "silent"),
        (lambda p: sf.write(p, np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT"), "NaN"),
        (lambda p: p.write_bytes(bytes(range(256)) * 8), "unreadable"),
    ],
)
def test_bad_audio_raises_audio_read_error_with_reason(tmp_path, writer, reason):
    path = tmp_path / "bad.wav"
    writer(path)
    with pytest.raises(AudioReadError, match=reason) as err:
        load_audio(path, 16000)
    assert err.value.path == str(path)


def test_log_mel_framing_and_batch_equals_single():
    cfg = FeaturesConfig()
    extractor = LogMelExtractor(cfg)
    long, short = voiced_tone(16000, 1.0), voiced_tone(16000, 0.37, f0=200)
    batch = extractor.normalized_batch([long, short])
    assert batch[0].mel.shape == (80, 16000 // 160)
    assert batch[1].mel.shape == (80, len(short) // 160)
    single = extractor.normalized(short)
    np.testing.assert_allclose(batch[1].mel, single.mel, atol=1e-4)
    for item in batch:
        assert abs(item.mel.mean()) < 1e-4 and abs(item.mel.std() - 1) < 1e-3


def test_log_mel_matches_librosa():
    cfg = FeaturesConfig()
    wave = voiced_tone(16000, 1.0)
    ours = LogMelExtractor(cfg).log_mel(__import__("torch").from_numpy(wave)[None])[0].numpy()
    ref = librosa.feature.melspectrogram(y=wave, sr=16000, n_fft=1024, hop_length=160, n_mels=80, fmax=8000, center=True, pad_mode="constant")
    ref = np.log(ref[:, : ours.shape[1]] + cfg.log_floor)
    assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.999


def test_wavs_written_in_memory_match_libsndfile_and_scale_only_when_clipping(tmp_path):
    audio = 0.5 * voiced_tone(16000, 0.5)
    ours = write_pcm16(tmp_path / "ours.wav", audio, 16000)
    sf.write(tmp_path / "direct.wav", audio, 16000, subtype="PCM_16", format="WAV")
    assert ours.read_bytes() == (tmp_path / "direct.wav").read_bytes()
    info = sf.info(ours)
    assert (info.samplerate, info.frames, info.subtype) == (16000, len(audio), "PCM_16")
    loud, _ = sf.read(write_wav(tmp_path / "loud.wav", 4.0 * audio, 16000))
    quiet, _ = sf.read(write_wav(tmp_path / "quiet.wav", audio, 16000))
    assert np.abs(loud).max() == pytest.approx(0.99, abs=1e-3)
    assert np.abs(quiet - audio).max() < 1.0 / 2**15


def test_griffin_lim_round_trip_correlates(tmp_path):
    cfg = FeaturesConfig()
    extractor, inverter = LogMelExtractor(cfg), MelInverter(cfg)
    original = extractor.normalized(voiced_tone(16000, 1.5))
    wave = inverter.waveform(original.mel, original.mean, original.std)
    assert len(wave) == original.frames * cfg.hop_length
    path = write_wav(tmp_path / "rebuilt.wav", wave, cfg.sample_rate)
    rebuilt = extractor.normalized(load_audio(path, cfg.sample_rate))
    pearson = np.corrcoef(original.mel.ravel(), rebuilt.mel.ravel())[0, 1]
    assert pearson >= 0.9
