"""Stage eval (audiodream/evaluation/) end to end on a tiny run.dir, and its scoring by hand.

The tiny run.dir is made with the real writers of every earlier stage: a synthetic
corpus with its manifest and feature cache, a saved (untrained) tokenizer, a dreamer
checkpoint of briefly trained tiny models, and replay chunk files, so eval reads exactly
the formats a real run leaves behind.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import envs
from audiodream.agent import RandomPolicy
from audiodream.config import ConfigError, load_config
from audiodream.config.schema import Config
from audiodream.data.feature_cache import FeatureCache
from audiodream.data.manifest import ManifestRow, write_manifest
from audiodream.data.split import assign_splits
from audiodream.data.stage import DataPaths, samples_per_step
from audiodream.data.synthetic.corpus import build_synthetic_corpus
from audiodream.distributed.replay import ReplayBuffer
from audiodream.dreamer.checkpoint import load_checkpoint, save_checkpoint, resume_fingerprint
from audiodream.dreamer.trainers import DreamerTrainers
from audiodream.evaluation import completion_scores, eval_stage, load_trained_run, play_episodes, replay_episodes
from audiodream.evaluation.completion import CompletionPrompt, exact_sample_references, same_length_batches
from audiodream.evaluation.completion_prompts import completion_setup, with_reconstructions
from audiodream.evaluation.imagination import Temperatures, behaviour_policy, dream_mels, dream_trajectory, imagine_mels, imagine_tokens, observe_prompt, prompt_states
from audiodream.evaluation.returns import gap_closed
from audiodream.evaluation.trained_run import MissingStageOutput
from audiodream.tokenizer.model import Tokenizer
from audiodream.tracking import Tracker

HORIZONS = ("1", "2", "4", "8", "16")
TINY = [
    "run.progress=false",
    "mlflow.enabled=false",
    "data.synthetic.n_speakers=5",
    "data.synthetic.utterances_per_speaker=2",
    "data.synthetic.min_syllables=24",  # C=8 + h=16 steps: every horizon has test episodes
    "data.synthetic.max_syllables=26",
    "features.griffin_lim_iters=4",
    "tokenizer.codebook_size=64",
    "tokenizer.groups=2",
    "tokenizer.code_dim=4",
    "tokenizer.hidden=16",
    "tokenizer.blocks=1",
    "dreamer.token_embed=8",
    "dreamer.embed=32",
    "dreamer.deter=32",
    "dreamer.stoch=4",
    "dreamer.classes=4",
    "dreamer.hidden=32",
    "dreamer.decoder_slot_dim=8",
    "env.num_envs=2",
    "env.episode_steps=40",
    "eval.episodes=4",
    "eval.completion_prompts=3",
    "eval.completion_samples=8",
    "eval.n_dreams=1",
    "eval.ce_samples=2",
    "eval.dream_steps=4",
]


def tiny_config(run_dir: Path, env_id: str, *extra: str) -> Config:
    return load_config([], TINY + [f"run.dir={run_dir}", f"env.id={env_id}", *extra])


def build_tiny_run(cfg: Config, run_dir: Path, updates: int = 5) -> dict[str, list]:
    """data + tokenizer + dreamer outputs in run_dir, in the formats those stages write."""
    paths = DataPaths.of(run_dir)
    utterances = build_synthetic_corpus(
        paths.synthetic, cfg.data.synthetic, cfg.features.sample_rate, samples_per_step(cfg), progress=False, num_workers=1
    )
    clips = FeatureCache(paths.feature_root, cfg.features).compute([u.path for u in utterances], num_workers=1, progress=False)
    split = assign_splits(u.speaker for u in utterances)
    write_manifest(
        paths.manifest,
        [
            ManifestRow(str(u.path), u.speaker, c.duration_s, split[u.speaker], c.frames, c.key, {"syllables": " ".join(map(str, u.syllables))})
            for u, c in zip(utterances, clips)
        ],
    )
    torch.manual_seed(0)
    tokenizer = Tokenizer.from_config(cfg.tokenizer, cfg.features, cfg.env.chunk_frames)
    tokenizer_path = tokenizer.save(run_dir / "tokenizer" / "checkpoint.pt")
    probe = envs.make_env(cfg, None, run_dir)
    n_actions = int(probe.action_space.n)
    probe.close()
    fingerprint = resume_fingerprint(cfg)
    replay = ReplayBuffer(10_000, tokenizer.tokens_per_step, tokenizer.codebook_size, n_actions, directory=run_dir / "replay", fingerprint=fingerprint)
    vector = envs.make_vector_env(cfg, 2, tokenizer_path, run_dir)
    played = play_episodes(vector, RandomPolicy(n_actions), 6, seed=1, greedy=False)
    vector.close()
    for i, episode in enumerate(played.episodes):
        replay.add({**episode, "episode_ids": np.full(len(episode["actions"]), i)})
    codebook = tokenizer.quantizer.normalized_codebook().detach()
    trainers = DreamerTrainers(cfg.dreamer, tokenizer.tokens_per_step, tokenizer.codebook_size, n_actions, "cpu", codebook)
    for _ in range(updates):
        trainers.update(replay.sample(4, 8), None)
    state = {"fingerprint": fingerprint, "step": updates, "env_steps": replay.total_added, "policy_version": 0, **trainers.state_dict()}
    save_checkpoint(run_dir / "dreamer" / "checkpoint.pt", state)
    return {"episodes": played.episodes}


@pytest.fixture(scope="module")
def listen_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path, dict]:
    run_dir = tmp_path_factory.mktemp("listen_run")
    cfg = tiny_config(  # as listen_synthetic
        run_dir, "audiodream/Listen-v0", "dreamer.actor_critic=false", "dreamer.codebook_tied=true", "dreamer.model_ema_decay=0.5"
    )
    built = build_tiny_run(cfg, run_dir)
    tracker = Tracker.start(run_dir, f"sqlite:///{run_dir / 'mlflow.db'}", "eval-test", "tiny")
    eval_stage(cfg, run_dir, tracker)
    return cfg, run_dir, {**built, "tracker": tracker}


@pytest.fixture(scope="module")
def complete_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path]:
    run_dir = tmp_path_factory.mktemp("complete_run")
    cfg = tiny_config(run_dir, "audiodream/Complete-v0", "env.kwargs={voices: 2}", "eval.context_steps=4")
    build_tiny_run(cfg, run_dir)
    eval_stage(cfg, run_dir, Tracker.disabled())
    return cfg, run_dir


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


# ------------------------------------------------------------------------- end to end


def test_eval_writes_ce_by_horizon_and_baselines_for_every_horizon(listen_run) -> None:
    cfg, run_dir, _ = listen_run
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert tuple(metrics["ce_by_horizon"]) == HORIZONS
    assert all(_finite(v) and v > 0 for v in metrics["ce_by_horizon"].values())
    assert tuple(metrics["ce_by_horizon_sampled"]) == HORIZONS
    assert all(_finite(v) and v > 0 for v in metrics["ce_by_horizon_sampled"].values())
    assert set(metrics["ce_baselines"]) == {"unigram", "bigram", "repeat"}
    for curve in metrics["ce_baselines"].values():
        assert tuple(curve) == HORIZONS and all(_finite(v) and v > 0 for v in curve.values())
    assert metrics["steps_by_horizon"] == {h: cfg.eval.episodes for h in HORIZONS}  # one prediction per test episode
    assert metrics["context_steps"] == cfg.eval.context_steps and metrics["ce_baseline_fit"].startswith("replay")
    # an untrained model on 64 codes knows little: its CE is near log(64), not below the baselines' floor of 0
    assert metrics["ce_by_horizon"]["1"] < 2 * math.log(64)
    assert metrics["return_mean"] == 0.0 and metrics["return_episodes"] == cfg.eval.episodes  # Listen-v0: one action, reward 0
    assert metrics["return_policy"].startswith("random")
    for key in ("completion_accuracy", "completion_tv_distance", "completion_tv_floor", "classifier_accuracy_real",
                "completion_outside_support", "completion_posterior_decode_accuracy",
                "completion_mode_mass", "completion_rest_of_support_mass"):
        assert _finite(metrics[key]) and 0.0 <= metrics[key] <= 1.0, key
    assert metrics["completion_prompts"] == 3 and metrics["completion_samples"] == 8
    assert metrics["completion_token_temperature"] == 1.0 and metrics["completion_latent_temperature"] == 1.0
    assert not [key for key in metrics if key.endswith("_temperature_1")]  # drawn at 1 already
    assert "test-split utterances" in metrics["completion_source"]
    assert metrics["classifier_accuracy_real"] > 1 / 24  # fitted on train chunks, scored on held-out voices


def _eval_a_copy(run_dir: Path, copy: Path, cfg: Config) -> tuple[dict, dict]:
    """(metrics.json of the run, of a copy of it evaluated again under `cfg`)."""
    shutil.copytree(run_dir, copy)
    shutil.rmtree(copy / "eval")
    eval_stage(cfg, copy, Tracker.disabled())
    return json.loads((run_dir / "eval" / "metrics.json").read_text()), json.loads((copy / "eval" / "metrics.json").read_text())


def test_other_griffin_lim_settings_re_render_a_trained_run_without_retraining_it(listen_run, tmp_path) -> None:
    """Griffin-Lim settings change how mel becomes sound only: the run's checkpoint, tokenizer
    and cached features are accepted, and the eval's predictions are those it made before."""
    cfg, run_dir, _ = listen_run
    copy = tmp_path / "run"
    rendered_otherwise = dataclasses.replace(cfg, features=dataclasses.replace(cfg.features, griffin_lim_iters=4, griffin_lim_momentum=0.5))
    before, after = _eval_a_copy(run_dir, copy, rendered_otherwise)
    assert after["ce_by_horizon"] == before["ce_by_horizon"] and after["step"] == before["step"]
    assert sorted(p.name for p in (copy / "eval" / "samples").glob("*.wav")) == sorted(p.name for p in (run_dir / "eval" / "samples").glob("*.wav"))


def test_imagining_at_other_temperatures_reports_the_figures_at_1_beside_them(listen_run, tmp_path) -> None:
    """eval.token_temperature / latent_temperature change how completion and dreams draw
    imagined steps, not the model's CE; the completion figures at temperature 1 (the same
    prompts, seed and draws as a run at 1) are reported beside the ones at the config's."""
    cfg, run_dir, _ = listen_run
    copy = tmp_path / "run"
    sharp = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, token_temperature=0.0, latent_temperature=0.0))
    before, after = _eval_a_copy(run_dir, copy, sharp)
    assert after["ce_by_horizon"] == before["ce_by_horizon"]
    assert after["completion_token_temperature"] == 0.0 and after["completion_latent_temperature"] == 0.0
    for key in ("completion_accuracy", "completion_tv_distance", "completion_outside_support"):
        assert after[f"{key}_temperature_1"] == before[key], key
    assert len(list((copy / "eval" / "samples").glob("dream_*.wav"))) == cfg.eval.n_dreams
    with pytest.raises(ValueError, match="eval.latent_temperature"):
        eval_stage(dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, latent_temperature=-1.0)), copy, Tracker.disabled())
    with pytest.raises(ValueError, match="'eval.token_draw': must be one of sample, mean, got 'median'"):
        eval_stage(dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, token_draw="median")), copy, Tracker.disabled())


def test_imagined_steps_decoded_from_their_mean_codes_are_reported_as_such(listen_run, tmp_path) -> None:
    """eval.token_draw "mean" changes what the tokenizer decodes for imagined steps only; the
    figures of the default draw (sampled tokens at temperature 1) are reported beside it."""
    cfg, run_dir, _ = listen_run
    copy = tmp_path / "run"
    mean = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, token_draw="mean"))
    before, after = _eval_a_copy(run_dir, copy, mean)
    assert after["ce_by_horizon"] == before["ce_by_horizon"]
    assert before["completion_token_draw"] == "sample" and after["completion_token_draw"] == "mean"
    for key in ("completion_accuracy", "completion_tv_distance", "completion_outside_support"):
        assert after[f"{key}_temperature_1"] == before[key], key
    assert 0.0 <= after["completion_posterior_decode_accuracy"] <= 1.0
    assert len(list((copy / "eval" / "samples").glob("dream_*.wav"))) == cfg.eval.n_dreams


def test_the_syllable_classifier_is_the_configs_and_changes_only_the_completion_figures(listen_run, tmp_path) -> None:
    cfg, run_dir, _ = listen_run
    copy = tmp_path / "run"
    network = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, syllable_classifier="mlp", classifier_reconstructions=True))
    linear_run, network_run = _eval_a_copy(run_dir, copy, network)
    assert linear_run["completion_classifier"] == "lda" and network_run["completion_classifier"] == "mlp"
    assert linear_run["completion_classifier_reconstructions"] is False and network_run["completion_classifier_reconstructions"] is True
    assert network_run["ce_by_horizon"] == linear_run["ce_by_horizon"]
    assert network_run["classifier_accuracy_real"] > 1 / 24  # fitted on train chunks, scored on held-out voices
    unknown = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, syllable_classifier="svm"))
    with pytest.raises(ValueError, match="eval.syllable_classifier.*'svm'.*mlp, lda"):
        eval_stage(unknown, copy, Tracker.disabled())
    with pytest.raises(ConfigError, match="eval.classifier_reconstructions.*true/false.*'maybe'"):
        load_config(["listen_synthetic"], ["eval.classifier_reconstructions=maybe"])  # the typed config rejects a non-flag


def test_classifier_reconstructions_are_the_tokenizers_round_trips_of_the_same_chunks(listen_run) -> None:
    cfg, run_dir, _ = listen_run
    tokenizer = load_trained_run(cfg, run_dir).tokenizer
    setup, reason = completion_setup(cfg, run_dir, tokenizer, 2, 0)
    assert setup is not None, reason
    chunks = setup.train_chunks.subset(40, np.random.default_rng(0))
    both = with_reconstructions(chunks, tokenizer, batch=16)  # three tokenizer calls
    n = len(chunks.labels)
    assert both.mels.shape == (2 * n, *chunks.mels.shape[1:]) and both.mels.dtype == np.float32
    assert np.array_equal(both.labels, np.concatenate([chunks.labels, chunks.labels]))
    assert np.array_equal(both.mels[:n], chunks.mels)
    expected = tokenizer.decode_chunks(tokenizer.encode_chunks(chunks.mels)).cpu().numpy()
    np.testing.assert_allclose(both.mels[n:], expected, atol=1e-5)
    assert not np.allclose(both.mels[n:], chunks.mels, atol=1e-3)  # a lossy round trip, not a copy


def test_eval_scores_the_moving_average_the_learner_kept(listen_run) -> None:
    cfg, run_dir, _ = listen_run
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["model_ema_decay"] == 0.5 and metrics["step"] > 1
    state = load_checkpoint(run_dir / "dreamer" / "checkpoint.pt")["world_model"]
    assert state["ema_decay"] == 0.5 and state["ema_updates"] == metrics["step"]
    loaded = load_trained_run(cfg, run_dir).world_model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state["model_ema"].items())
    assert any(not torch.equal(loaded[k], v) for k, v in state["model"].items()), "eval must not load the last weights"


def test_eval_writes_plots_and_valid_wavs(listen_run) -> None:
    cfg, run_dir, _ = listen_run
    for name in ("ce_by_horizon", "completion", "continuations", "dreams"):
        png = run_dir / "eval" / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    samples = run_dir / "eval" / "samples"
    step_samples = samples_per_step(cfg)
    expected = {"continuation_0.wav": None, "continuation_0_real.wav": None, "dream_0.wav": cfg.eval.dream_steps * step_samples}
    assert {p.name for p in samples.glob("*.wav")} == set(expected)
    for name, length in expected.items():
        audio, rate = sf.read(str(samples / name))
        assert rate == cfg.features.sample_rate, name
        assert np.isfinite(audio).all() and np.abs(audio).max() > 1e-3, name
        assert len(audio) % step_samples == 0 and len(audio) >= 2 * step_samples, name
        if length is not None:
            assert len(audio) == length, name
    real, _ = sf.read(str(samples / "continuation_0_real.wav"))
    imagined, _ = sf.read(str(samples / "continuation_0.wav"))
    assert len(real) == len(imagined)  # the imagined part is as long as the utterance's real rest


def test_eval_logs_numbers_and_files_to_mlflow(listen_run) -> None:
    from mlflow.tracking import MlflowClient

    _, run_dir, built = listen_run
    tracker = built["tracker"]
    client = MlflowClient(tracking_uri=tracker.tracking_uri)
    logged = client.get_run(tracker.run_id).data.metrics
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert logged["eval.ce_by_horizon.16"] == pytest.approx(metrics["ce_by_horizon"]["16"])
    assert logged["eval.ce_baselines.bigram.1"] == pytest.approx(metrics["ce_baselines"]["bigram"]["1"])
    samples = {Path(a.path).name for a in client.list_artifacts(tracker.run_id, "eval/samples")}
    plots = {Path(a.path).name for a in client.list_artifacts(tracker.run_id, "eval/plots")}
    assert samples == {p.name for p in (run_dir / "eval" / "samples").glob("*.wav")}
    assert "ce_by_horizon.png" in plots and "dreams.png" in plots


def test_complete_eval_reports_returns_against_exact_references(complete_run) -> None:
    cfg, run_dir = complete_run
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    env = envs.make_env(cfg, None, run_dir).unwrapped
    assert metrics["optimal_return"] == pytest.approx(env.optimal_return())
    assert metrics["random_return"] == pytest.approx(env.random_return())
    assert metrics["return_policy"] == "greedy actor" and metrics["return_episodes"] == cfg.eval.episodes
    assert 0.0 <= metrics["return_mean"] <= 3.0  # 3 answers, reward <= 1 each
    assert _finite(metrics["return_random_policy_measured"]) and _finite(metrics["return_mean_test_split"])
    expected_gap = (metrics["return_mean"] - metrics["random_return"]) / (metrics["optimal_return"] - metrics["random_return"])
    assert metrics["return_gap_closed"] == pytest.approx(expected_gap)
    # Complete-v0 episodes (8-10 steps) cannot reach C=4 + h=8: reported as null, not made up
    assert _finite(metrics["ce_by_horizon"]["1"]) and metrics["ce_by_horizon"]["8"] is None
    assert metrics["steps_by_horizon"]["8"] == 0
    assert "prompt steps" in metrics["completion_source"] and _finite(metrics["completion_tv_distance"])
    assert metrics["completion_prompt_steps_mean"] <= 3  # shortest prompt is 4 syllables: prompts of 2-3 steps


# ------------------------------------------------------------------------ scoring by hand


def test_completion_scores_on_a_hand_made_histogram() -> None:
    true_next = np.zeros((3, 24))
    true_next[0, [0, 1, 2]] = [0.7, 0.2, 0.1]
    true_next[1, [1, 2]] = [0.3, 0.7]
    true_next[2, [0, 3]] = [0.6, 0.4]
    predicted = np.array(
        [
            [0] * 6 + [1] * 4,  # right top choice; q = (.6, .4, 0) -> TV = (.1 + .2 + .1) / 2 = .2
            [1] * 7 + [2] * 3,  # wrong top choice; TV = (.4 + .4) / 2 = .4
            [0] * 5 + [3] * 5,  # tie between 0 (right) and 3: counts 1/2; TV = (.1 + .1) / 2 = .1
        ]
    )
    scores = completion_scores(predicted, true_next)
    assert scores.accuracy == pytest.approx((1 + 0 + 0.5) / 3)
    assert scores.per_prompt_tv == pytest.approx([0.2, 0.4, 0.1])
    assert scores.tv_distance == pytest.approx(0.7 / 3)
    assert scores.tv_missed_mode == pytest.approx((0.4 + 0.5 * 0.1) / 3)  # the wrong top choice, and half the tie
    assert scores.histograms[0, :2] == pytest.approx([0.6, 0.4])
    assert scores.outside_support == 0.0  # every imagined syllable above is one p allows
    elsewhere = completion_scores(np.array([[0] * 7 + [5] * 3, [9] * 10, [0] * 10]), true_next)
    assert elsewhere.outside_support == pytest.approx((0.3 + 1.0 + 0.0) / 3)  # 5 and 9 are never next there
    # p's modes are 0, 2, 0 (0.7, 0.7, 0.6); q puts 0.7, 0, 1.0 there and 0, 0, 0 on the rest of p's support
    assert elsewhere.mode_mass == pytest.approx((0.7 + 0.0 + 1.0) / 3)
    assert elsewhere.mode_mass_true == pytest.approx((0.7 + 0.7 + 0.6) / 3)
    assert elsewhere.rest_of_support_mass == pytest.approx(0.0)
    assert elsewhere.rest_of_support_mass_true == pytest.approx((0.3 + 0.3 + 0.4) / 3)
    assert scores.rest_of_support_mass == pytest.approx((0.4 + 0.7 + 0.5) / 3)  # q on 1 | on 1 | on 3
    with pytest.raises(ValueError, match="must lie in"):
        completion_scores(np.array([[24]]), true_next[:1])


def test_completion_prompts_are_batched_by_length() -> None:
    """Prompts of one length are observed together; every prompt lands in exactly one batch."""
    lengths = [3, 2, 3, 5, 3, 2]
    prompts = [CompletionPrompt(np.zeros((n, 4), dtype=np.int64), list(range(n)), np.ones(1)) for n in lengths]
    assert same_length_batches(prompts, 2) == [[1, 5], [0, 2], [4], [3]]
    assert same_length_batches(prompts, 0) == [[1], [5], [0], [2], [4], [3]]  # at least one prompt a batch
    assert same_length_batches([], 8) == []


def test_exact_sample_references_shrink_with_more_samples() -> None:
    point = np.zeros((1, 24))
    point[0, 5] = 1.0
    assert exact_sample_references(point, 8) == (0.0, 1.0)  # a certain next syllable: exact samples are perfect
    spread = np.full((4, 24), 1 / 24)
    spread[:, 0] += 0.5
    spread /= spread.sum(axis=1, keepdims=True)
    few, _ = exact_sample_references(spread, 8)
    many, _ = exact_sample_references(spread, 512)
    assert 0 < many < few < 1


def test_gap_closed() -> None:
    assert gap_closed(1.5, 0.5, 2.5) == pytest.approx(0.5)
    assert gap_closed(0.0, 0.0, 0.0) is None  # Listen-v0: nothing to close


# --------------------------------------------------------------------- episodes and replay


def test_replay_episodes_read_back_what_was_stored(listen_run) -> None:
    cfg, run_dir, built = listen_run
    stored = built["episodes"]
    read = replay_episodes(run_dir / "replay", accepted_fingerprints=[resume_fingerprint(cfg)])
    assert len(read) == len(stored)
    for got, want in zip(read, stored):
        assert np.array_equal(got["tokens"], want["tokens"]) and np.array_equal(got["actions"], want["actions"])
        assert got["is_first"][0] and not got["is_first"][1:].any()
    newest = replay_episodes(run_dir / "replay", max_steps=len(stored[-1]["actions"]))
    assert len(newest) == 1 and np.array_equal(newest[0]["tokens"], stored[-1]["tokens"])
    with pytest.raises(ValueError, match="different"):
        replay_episodes(run_dir / "replay", accepted_fingerprints=["not-this-run"])


def test_play_episodes_gives_exactly_n_whole_episodes(complete_run) -> None:
    cfg, run_dir = complete_run
    vector = envs.make_vector_env(cfg, 3, run_dir / "tokenizer" / "checkpoint.pt", run_dir)
    played = play_episodes(vector, RandomPolicy(24), 7, seed=5, greedy=False)
    vector.close()
    assert len(played.episodes) == len(played.returns) == 7
    for episode, ret in zip(played.episodes, played.returns):
        steps = len(episode["actions"])
        assert 8 <= steps <= 10  # Complete-v0 defaults: 4-6 prompt syllables + turn cue + 3 answers
        assert episode["is_first"][0] and episode["actions"][0] == 0 and episode["rewards"][0] == 0
        assert episode["terminals"][-1] and not episode["terminals"][:-1].any()
        assert ret == pytest.approx(float(episode["rewards"].sum())) and not episode["rewards"][:-3].any()  # only answers pay


# ----------------------------------------------------------------------- models and errors


def test_prompt_states_are_the_posterior_of_each_prompt_step(listen_run) -> None:
    """posterior_decode_accuracy decodes these; the last is where completion imagines from."""
    cfg, run_dir, _ = listen_run
    model = load_trained_run(cfg, run_dir).world_model
    policy = behaviour_policy(None, model)
    tokens = torch.randint(0, model.spec.vocab_size, (2, 5, model.spec.tokens_per_step))
    states = list(prompt_states(model, tokens, policy, torch.Generator().manual_seed(4)))
    last = observe_prompt(model, tokens, policy, torch.Generator().manual_seed(4))
    assert len(states) == 5 and torch.equal(states[-1].h, last.h) and torch.equal(states[-1].z, last.z)
    whole = model.observe(tokens, torch.zeros(2, 5, dtype=torch.long), torch.arange(5).expand(2, 5) == 0)
    assert torch.allclose(states[0].h, whole.h[:, 0], atol=1e-6)  # from an episode start (later steps differ by the latent samples)
    assert torch.allclose(states[0].z.view(2, -1, model.spec.classes).sum(-1), torch.ones(2, model.spec.stoch))  # one-hot posterior samples
    with pytest.raises(ValueError, match="tokens must have shape"):
        observe_prompt(model, tokens[0], policy)


def test_unconditional_dream_starts_like_an_observed_episode(listen_run) -> None:
    """The first dream step must come from the prior the model uses at an is_first step."""
    cfg, run_dir, _ = listen_run
    model = load_trained_run(cfg, run_dir).world_model
    generator = torch.Generator().manual_seed(0)
    dream = dream_trajectory(model, 2, 3, behaviour_policy(None, model), generator=generator)
    tokens = torch.zeros(2, 1, model.spec.tokens_per_step, dtype=torch.long)
    observed = model.observe(tokens, torch.zeros(2, 1, dtype=torch.long), torch.ones(2, 1, dtype=torch.bool))
    assert torch.allclose(dream.h[:, 1], observed.h[:, 0], atol=1e-6)
    assert torch.allclose(dream.prior_log_probs[:, 0], observed.prior_log_probs[:, 0], atol=1e-5)
    assert dream.tokens is not None and dream.tokens.shape == (2, 3, model.spec.tokens_per_step)
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        dream_trajectory(model, 2, 0, behaviour_policy(None, model), generator=generator)


def test_imagined_steps_sound_as_their_token_draw_says(listen_run) -> None:
    """token_draw "sample" decodes the very tokens imagine_tokens draws (one random stream);
    "mean" decodes each slot's mean code vector, a function of the imagined latents only:
    the same whatever the token stream, and at token temperature 0 the most likely tokens'."""
    cfg, run_dir, _ = listen_run
    run = load_trained_run(cfg, run_dir)
    model, tok = run.world_model, run.tokenizer
    policy = behaviour_policy(None, model)
    start = observe_prompt(model, torch.randint(0, model.spec.vocab_size, (3, 2, model.spec.tokens_per_step)), policy, torch.Generator().manual_seed(1))
    sampled = imagine_mels(model, tok, start, 4, policy, Temperatures(), torch.Generator().manual_seed(5))
    tokens = imagine_tokens(model, start, 4, policy, Temperatures(), torch.Generator().manual_seed(5))
    assert sampled.shape == (3, tok.n_mels, 4 * tok.chunk_frames)
    assert torch.allclose(sampled, tok.decode(tokens), atol=1e-6)
    sharp = Temperatures(1.0, 0.0, "mean")  # latents at their modes: one component draw is the only noise
    mean = imagine_mels(model, tok, start, 4, policy, sharp, torch.Generator().manual_seed(5))
    trajectory = model.imagine(start, policy, 4, torch.Generator().manual_seed(5), False, latent_temperature=0.0)
    expected = tok.decode_code_vectors(model.mean_code_vectors(trajectory.features[:, 1:], tok.code_vectors(), 1.0))
    assert torch.allclose(mean, expected, atol=1e-6) and not torch.allclose(mean, sampled, atol=1e-3)
    greedy = dataclasses.replace(sharp, tokens=0.0)
    assert torch.allclose(imagine_mels(model, tok, start, 4, policy, greedy, torch.Generator().manual_seed(5)),
                          imagine_mels(model, tok, start, 4, policy, dataclasses.replace(greedy, token_draw="sample"), torch.Generator().manual_seed(5)), atol=1e-6)
    dreams = dream_mels(model, tok, 2, 3, policy, sharp, torch.Generator().manual_seed(6))
    assert dreams.shape == (2, tok.n_mels, 3 * tok.chunk_frames) and torch.isfinite(dreams).all()
    with pytest.raises(ValueError, match="token draw: must be one of sample, mean"):
        Temperatures(1.0, 1.0, "median")


def test_eval_refuses_missing_or_foreign_checkpoints(listen_run, tmp_path: Path) -> None:
    cfg, run_dir, _ = listen_run
    with pytest.raises(MissingStageOutput, match=str(tmp_path / "tokenizer" / "checkpoint.pt")):
        load_trained_run(cfg, tmp_path)
    other = tiny_config(run_dir, "audiodream/Listen-v0", "dreamer.actor_critic=false", "dreamer.deter=48")
    with pytest.raises(ValueError, match=r"dreamer[/\\]checkpoint.pt: made with different"):
        load_trained_run(other, run_dir)
    old_cell = tiny_config(run_dir, "audiodream/Listen-v0", "dreamer.actor_critic=false", "dreamer.gru=torch")
    with pytest.raises(ValueError, match="old values: .*dreamer.gru=torch"):  # how to open a run made before the key
        load_trained_run(old_cell, run_dir)
    bad = tiny_config(run_dir, "audiodream/Listen-v0", "eval.context_steps=0")
    with pytest.raises(ValueError, match="eval.context_steps"):
        eval_stage(bad, run_dir, Tracker.disabled())
