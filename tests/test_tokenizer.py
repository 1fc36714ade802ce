"""Tokenizer: token geometry, encode/decode API, checkpoints, training against collapse, and the stage."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodream.config import load_config
from audiodream.config.schema import FeaturesConfig, TokenizerConfig
from audiodream.tokenizer import TokenGeometry, TokenGeometryError, Tokenizer, TokenizerCheckpointError
from audiodream.tokenizer.chunks import RandomCropSampler, aligned_chunks
from audiodream.tokenizer.metrics import METRIC_KEYS, evaluate, usage_metrics
from audiodream.tokenizer.training import TokenizerTrainer

CHUNK = 16
TINY = TokenizerConfig(codebook_size=128, hidden=32, blocks=1, batch_size=32, lr=3e-3, dead_code_after=20)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny convs: one thread is faster, and two threads crawl on a busy shared machine."""
    from audiodream.tokenizer.stage import torch_threads

    with torch_threads(1):
        yield


def tiny_tokenizer(seed: int = 0, features: FeaturesConfig | None = None) -> Tokenizer:
    torch.manual_seed(seed)
    return Tokenizer.from_config(TINY, features or FeaturesConfig(), CHUNK)


@pytest.fixture(scope="module")
def speech_mels() -> list[np.ndarray]:
    """Normalised log-mels of a few utterances of the built-in formant synthesiser (4 voices)."""
    from audiodream.data.synthetic.grammar import SyllableGrammar
    from audiodream.data.synthetic.synth import FormantSynth, sample_voice
    from audiodream.features import LogMelExtractor

    rng = np.random.default_rng(0)
    synth, grammar = FormantSynth(16000, CHUNK * 160), SyllableGrammar()
    waves = []
    for _ in range(4):
        voice = sample_voice(rng)
        waves += [synth.utterance(grammar.sample_utterance(rng, 10), voice, rng) for _ in range(4)]
    return [m.mel for m in LogMelExtractor(FeaturesConfig()).normalized_batch(waves)]


@pytest.fixture(scope="module")
def trained(speech_mels: list[np.ndarray]) -> tuple[Tokenizer, dict, dict]:
    """A tiny tokenizer trained for a few hundred updates; with its metrics before and after."""
    model = tiny_tokenizer()
    before = evaluate(model, speech_mels)
    sampler = RandomCropSampler(speech_mels, CHUNK, seed=0)
    trainer = TokenizerTrainer(model, TINY, total_steps=300)
    trainer.kmeans_init(sampler)
    for _ in range(300):
        trainer.step(sampler.sample(TINY.batch_size))
    return model, before, evaluate(model, speech_mels)


def test_default_geometry_is_48_tokens_per_step_and_300_per_second():
    cfg = load_config([])
    model = Tokenizer.from_config(cfg.tokenizer, cfg.features, cfg.env.chunk_frames)
    assert model.tokens_per_step == 48
    assert model.tokens_per_second == pytest.approx(300.0)
    assert model.codebook_size == 1024
    assert model.chunk_frames == 16
    assert model.features_config == cfg.features


def test_geometry_rejects_chunks_that_do_not_divide():
    with pytest.raises(TokenGeometryError, match="multiple of tokenizer.downsample"):
        TokenGeometry(chunk_frames=18, downsample=4, groups=12, frames_per_second=100.0)


def test_encode_decode_shapes_and_types():
    model = tiny_tokenizer()
    mel = torch.randn(3, 80, 5 * CHUNK)
    tokens = model.encode(mel)
    assert tokens.shape == (3, 5, model.tokens_per_step) and tokens.dtype == torch.long
    assert int(tokens.min()) >= 0 and int(tokens.max()) < model.codebook_size
    out = model.decode(tokens)
    assert out.shape == (3, 80, 5 * CHUNK) and out.dtype == torch.float32
    # numpy in, same tokens out
    assert torch.equal(model.encode(mel.numpy()), tokens)


def test_code_vectors_decode_like_their_tokens_and_points_between_them_decode_too():
    """decode(tokens) is decode_code_vectors of the tokens' code vectors; a point between two
    codes (a token distribution's mean, imagination's token_draw "mean") decodes to its own chunk."""
    model = tiny_tokenizer()
    tokens = model.encode(torch.randn(2, 80, 3 * CHUNK))
    vectors = model.code_vectors()
    assert vectors.shape == (model.codebook_size, model.arch.code_dim)
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(model.codebook_size))
    assert torch.allclose(model.decode_code_vectors(vectors[tokens]), model.decode(tokens), atol=1e-6)
    other = model.encode(torch.randn(2, 80, 3 * CHUNK))
    between = model.decode_code_vectors(0.5 * (vectors[tokens] + vectors[other]))
    assert between.shape == (2, 80, 3 * CHUNK)
    assert not torch.allclose(between, model.decode(tokens), atol=1e-3) and not torch.allclose(between, model.decode(other), atol=1e-3)
    with pytest.raises(ValueError, match=r"decode_code_vectors expects \(B, steps, "):
        model.decode_code_vectors(vectors[tokens][0])


def test_chunks_are_encoded_independently():
    """The env tokenises one step at a time; encoding a whole utterance must give the same tokens."""
    model = tiny_tokenizer()
    mel = torch.randn(1, 80, 4 * CHUNK)
    whole = model.encode(mel)[0]
    per_step = torch.stack([model.encode_chunks(mel[:, :, s * CHUNK : (s + 1) * CHUNK])[0] for s in range(4)])
    assert torch.equal(whole, per_step)
    decoded = model.decode(whole[None])[0]
    for s in range(4):
        assert torch.allclose(decoded[:, s * CHUNK : (s + 1) * CHUNK], model.decode_chunks(whole[s : s + 1])[0], atol=1e-5)


def test_bad_shapes_and_ids_are_clear_errors():
    model = tiny_tokenizer()
    with pytest.raises(ValueError, match="multiple of chunk_frames"):
        model.encode(torch.randn(1, 80, CHUNK + 3))
    with pytest.raises(ValueError, match="80"):
        model.encode(torch.randn(1, 64, CHUNK))
    with pytest.raises(ValueError, match=r"\[0, 128\)"):
        model.decode(torch.full((1, 1, model.tokens_per_step), 128))
    with pytest.raises(ValueError, match="tokens"):
        model.decode(torch.zeros(1, 1, 5, dtype=torch.long))


def test_training_uses_more_codes_and_round_trips(trained):
    model, before, after = trained
    assert after["codes_used"] > before["codes_used"]
    assert after["codes_used"] >= 0.9 * model.codebook_size
    assert after["perplexity"] > before["perplexity"]
    # encode -> decode reconstructs the utterances far better than the untrained model
    assert after["mse"] < 0.5 * before["mse"]
    assert after["pearson"] > 0.7


def test_save_load_round_trip_gives_the_same_tokens(tmp_path: Path, trained, speech_mels):
    model = trained[0]
    path = model.save(tmp_path / "tok.pt")
    loaded = Tokenizer.load(path, features=FeaturesConfig())
    chunks = aligned_chunks(speech_mels[0], CHUNK)
    tokens = model.encode_chunks(chunks)
    assert torch.equal(loaded.encode_chunks(chunks), tokens)
    assert torch.allclose(loaded.decode_chunks(tokens), model.decode_chunks(tokens), atol=1e-6)
    assert not list(tmp_path.glob("*.tmp")), "save must not leave its temp file behind"


def test_load_with_other_feature_config_fails_clearly(tmp_path: Path):
    path = tiny_tokenizer().save(tmp_path / "tok.pt")
    other = replace(FeaturesConfig(), hop_length=256, n_mels=64)
    with pytest.raises(TokenizerCheckpointError) as err:
        Tokenizer.load(path, features=other)
    message = str(err.value)
    assert str(path) in message and "hop_length" in message and "n_mels" in message
    assert Tokenizer.load(path).features_config == FeaturesConfig()  # without features: no check
    # Griffin-Lim settings say how mel becomes sound, not what the tokenizer was trained on.
    loaded = Tokenizer.load(path, features=replace(FeaturesConfig(), griffin_lim_iters=8, griffin_lim_momentum=0.5))
    assert loaded.features_config == FeaturesConfig()  # the features it was trained on


def test_load_of_a_non_checkpoint_fails_clearly(tmp_path: Path):
    with pytest.raises(TokenizerCheckpointError, match="not found"):
        Tokenizer.load(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    torch.save({"weights": torch.zeros(2)}, junk)
    with pytest.raises(TokenizerCheckpointError, match="not a tokenizer checkpoint"):
        Tokenizer.load(junk)


def test_usage_metrics_of_known_counts():
    uniform = usage_metrics(np.array([5, 5, 5, 5, 0, 0, 0, 0]))
    assert uniform["perplexity"] == pytest.approx(4.0)
    assert (uniform["codes_used"], uniform["dead_codes"], uniform["codebook_size"]) == (4, 4, 8)
    assert usage_metrics(np.array([9, 0, 0]))["perplexity"] == pytest.approx(1.0)


def test_stage_end_to_end(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    from audiodream.pipeline.runner import run_pipeline

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "run"
    common = [
        f"run.dir={run_dir}",
        "run.stages=[data,tokenizer]",
        "run.progress=false",
        f"mlflow.tracking_uri={uri}",
        "data.synthetic.n_speakers=4",
        "data.synthetic.utterances_per_speaker=3",
        "tokenizer.codebook_size=128",
        "tokenizer.hidden=32",
        "tokenizer.blocks=1",
        "tokenizer.batch_size=32",
    ]
    assert run_pipeline(load_config([], common + ["tokenizer.steps=40", "tokenizer.eval_every=20"])) == 0
    out = run_dir / "tokenizer"
    metrics = json.loads((out / "metrics.json").read_text())
    for key in METRIC_KEYS:
        assert key in metrics and key in metrics["test"], key
    assert metrics["codebook_size"] == 128
    assert metrics["codes_used"] + metrics["dead_codes"] == 128
    assert 1.0 <= metrics["perplexity"] <= metrics["codes_used"]
    assert metrics["tokens_per_second"] == pytest.approx(300.0)
    assert -1.0 <= metrics["pearson"] <= 1.0 and metrics["mse"] > 0
    for png in ("reconstructions.png", "code_usage.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    wavs = sorted((out / "samples").glob("*.wav"))
    assert any("reconstruction" in w.name for w in wavs) and any("original" in w.name for w in wavs)
    for wav in wavs:
        audio, rate = sf.read(wav)
        assert rate == 16000 and len(audio) > 0 and np.abs(audio).max() > 0
    ckpt = Tokenizer.load(out / "checkpoint.pt", features=FeaturesConfig())
    assert ckpt.codebook_size == 128

    run_id = (run_dir / "mlflow_run_id").read_text().strip()
    run = MlflowClient(tracking_uri=uri).get_run(run_id)
    assert run.data.metrics["tokenizer.final.val.pearson"] == pytest.approx(metrics["pearson"])
    assert "tokenizer.val.codes_used" in run.data.metrics and "tokenizer.train.loss" in run.data.metrics
    assert run.data.params["tokenizer.tokens_per_step"] == "48"

    # steps=0 + init only evaluates: the same checkpoint on the same val split gives the same numbers
    saved = tmp_path / "trained.pt"
    (out / "checkpoint.pt").rename(saved)
    assert run_pipeline(load_config([], common + ["tokenizer.steps=0", f"tokenizer.init={saved}"])) == 0
    again = json.loads((out / "metrics.json").read_text())
    for key in METRIC_KEYS:
        assert again[key] == pytest.approx(metrics[key]), key
    assert again["training"]["steps"] == 0
    assert Tokenizer.load(out / "checkpoint.pt").codebook_size == 128


def test_steps_zero_without_init_is_a_clear_error(tmp_path: Path):
    from audiodream.tokenizer.stage import initial_model

    cfg = load_config([], ["tokenizer.steps=0"])
    with pytest.raises(ValueError, match="tokenizer.init"):
        initial_model(cfg, torch.device("cpu"))


def test_round_trips_in_batches_are_one_calls_tokens_and_their_decodings() -> None:
    """Batching only bounds memory: the tokens are those of one encode call, the chunks their decodings."""
    model = tiny_tokenizer()
    chunks = np.random.default_rng(0).normal(size=(10, model.n_mels, model.chunk_frames)).astype(np.float32)
    tokens, decoded = model.round_trip_chunks(chunks, batch=4)  # three calls
    assert torch.equal(tokens, model.encode_chunks(chunks).cpu())
    torch.testing.assert_close(decoded, model.decode_chunks(tokens).cpu())
    none_tokens, none_decoded = model.round_trip_chunks(chunks[:0])
    assert none_tokens.shape == (0, model.tokens_per_step) and none_decoded.shape == (0, model.n_mels, model.chunk_frames)
