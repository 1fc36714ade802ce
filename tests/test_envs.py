"""The spectrogram environments, the tokenising wrappers and the plug-in path (envs/)."""

from __future__ import annotations

import itertools
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

import envs
from audiodream.config import load_config
from audiodream.config.schema import FeaturesConfig
from audiodream.data.feature_cache import FeatureCache
from audiodream.data.manifest import ManifestRow, write_manifest
from audiodream.data.stage import DataPaths
from audiodream.data.synthetic.grammar import SyllableGrammar
from audiodream.features import write_wav
from audiodream.tokenizer.model import Tokenizer, TokenizerArchitecture
from envs import completion_returns
from envs.factory import EnvConfigError

# Few voices keep the per-process voice bank (synthesised on first use) fast to build.
SMALL = {
    "audiodream/Listen-v0": {"synthetic_clips": 4},
    "audiodream/Complete-v0": {"voices": 3},
    "audiodream/Echo-v0": {"voices": 3},
}


@pytest.fixture(scope="module")
def tokenizer_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small untrained tokenizer: the wrappers only need its interface and determinism."""
    torch.manual_seed(0)
    arch = TokenizerArchitecture(
        n_mels=80, chunk_frames=16, downsample=4, groups=12, code_dim=8, codebook_size=1024, hidden=32, blocks=1
    )
    return Tokenizer(arch, FeaturesConfig()).save(tmp_path_factory.mktemp("tok") / "checkpoint.pt")


def config_for(env_id: str, **overrides: object):
    kwargs = {**SMALL.get(env_id, {}), **overrides.pop("kwargs", {})}  # type: ignore[arg-type]
    items = [f"env.id={env_id}", f"env.kwargs={kwargs}"] + [f"{k}={v}" for k, v in overrides.items()]
    return load_config([], items)


def rollout(env: gym.Env, seed: int, actions: list[int], steps: int) -> tuple[list[np.ndarray], list[float]]:
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for t in range(steps):
        obs, reward, terminated, truncated, _ = env.step(actions[t % len(actions)])
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            obs, _ = env.reset()
            observations.append(obs)
    return observations, rewards


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize("env_id", envs.AUDIODREAM_IDS)
def test_check_env_passes_raw_and_tokenised(env_id: str, tokenizer_path: Path) -> None:
    raw = envs.make_env(config_for(env_id))
    assert raw.observation_space == spaces.Box(-np.inf, np.inf, (80, 16), np.float32)
    check_env(raw.unwrapped, skip_render_check=True)
    tokenised = envs.make_env(config_for(env_id), tokenizer_path)
    assert tokenised.observation_space == spaces.MultiDiscrete(np.full(48, 1024))
    check_env(tokenised, skip_render_check=True)
    obs, _ = tokenised.reset(seed=3)
    assert obs.shape == (48,) and obs.dtype == np.int64 and tokenised.observation_space.contains(obs)


@pytest.mark.parametrize("env_id", envs.AUDIODREAM_IDS)
def test_seeding_reproduces_episodes(env_id: str) -> None:
    cfg = config_for(env_id)
    first, second, other = (envs.make_env(cfg) for _ in range(3))
    n = first.action_space.n
    actions = [int(a) for a in np.random.default_rng(0).integers(n, size=50)]
    obs_a, rew_a = rollout(first, 11, actions, 40)
    obs_b, rew_b = rollout(second, 11, actions, 40)
    obs_c, _ = rollout(other, 12, actions, 40)
    assert rew_a == rew_b
    assert all(np.array_equal(a, b) for a, b in zip(obs_a, obs_b))
    assert not all(np.array_equal(a, c) for a, c in zip(obs_a, obs_c))


@pytest.mark.parametrize("env_id", envs.AUDIODREAM_IDS)
def test_out_of_range_action_is_a_clear_error(env_id: str) -> None:
    env = envs.make_env(config_for(env_id))
    env.reset(seed=0)
    n = env.action_space.n
    for bad in (n, -1, 1.5, True):
        with pytest.raises(ValueError, match=r"outside the action space Discrete"):
            env.step(bad)


def test_registered_ids_work_with_gymnasium_make() -> None:
    for env_id in envs.AUDIODREAM_IDS:
        env = gym.make(env_id, **SMALL[env_id])
        obs, _ = env.reset(seed=0)
        assert obs.shape == (80, 16) and np.isfinite(obs).all()


# --------------------------------------------------------------------------- Complete-v0


def test_complete_episode_timeline_and_rewards() -> None:
    env = envs.make_env(config_for("audiodream/Complete-v0")).unwrapped
    grammar = SyllableGrammar()
    rng = np.random.default_rng(5)
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        prompt = list(env.prompt)
        assert 4 <= len(prompt) <= 6 and info == {"phase": "prompt", "syllable": prompt[0]}
        phases, rewards, steps, done = [], [], 0, False
        while not done:
            action = int(rng.integers(24))
            spoken_before = list(env.spoken)
            obs, reward, done, truncated, info = env.step(action)
            steps += 1
            phases.append(info["phase"])
            assert not truncated
            if info["phase"] == "answer":
                assert reward == pytest.approx(grammar.next_distribution(spoken_before)[action])
                assert info["syllable"] == action
            else:
                assert reward == 0.0
            rewards.append(reward)
        assert phases == ["prompt"] * (len(prompt) - 1) + ["turn"] + ["answer"] * 3
        assert steps == len(prompt) + 3
        assert env.spoken[: len(prompt)] == prompt


def test_complete_ignores_actions_during_the_prompt_and_speaks_the_answer() -> None:
    cfg = config_for("audiodream/Complete-v0")
    a, b = envs.make_env(cfg).unwrapped, envs.make_env(cfg).unwrapped
    obs_a, _ = a.reset(seed=4)
    obs_b, _ = b.reset(seed=4)
    heard = [obs_a]
    while not a.in_answer_phase:
        obs_a, *_ = a.step(0)
        obs_b, *_ = b.step(23)
        assert np.array_equal(obs_a, obs_b)
        heard.append(obs_a)
    # The turn cue is silence: one constant value, below everything in the spoken prompt.
    assert np.ptp(obs_a) == 0.0 and obs_a.max() < min(chunk.min() for chunk in heard[:-1])
    answer_a, *_ = a.step(2)
    answer_b, *_ = b.step(17)
    assert not np.allclose(answer_a, answer_b)


def test_complete_context_matters_and_exact_returns_match_play() -> None:
    env = envs.make_env(config_for("audiodream/Complete-v0")).unwrapped
    optimal, random, blind = env.optimal_return(), env.random_return(), env.blind_return()
    assert random == pytest.approx(3 / 24)
    # Listening to the prompt is worth a lot: the optimal return more than doubles the best
    # return of any policy that does not hear it, which in turn beats random play.
    assert optimal > 2.0 * blind and blind > 4 * random

    # blind_return is the best open-loop answer sequence: check it by brute force over all 24^3.
    grammar, lengths = env.grammar, env.prompt_lengths
    transition = grammar.pair_transition()
    pair = completion_returns.last_pair_distribution(grammar, lengths)
    best = -1.0
    for c1, c2 in itertools.product(range(24), repeat=2):
        value = (
            (pair * transition[:, :, c1]).sum()
            + (pair.sum(axis=0) * transition[:, c1, c2]).sum()
            + transition[c1, c2, :].max()
        )
        best = max(best, float(value))
    assert blind == pytest.approx(best)

    def measured(policy, episodes: int) -> tuple[float, float]:
        returns = []
        for seed in range(episodes):
            env.reset(seed=1000 + seed)
            total, done = 0.0, False
            while not done:
                _, reward, done, _, _ = env.step(policy())
                total += reward
            returns.append(total)
        return float(np.mean(returns)), float(np.std(returns) / np.sqrt(episodes))

    rng = np.random.default_rng(0)
    random_mean, random_se = measured(lambda: int(rng.integers(24)), 1500)
    assert abs(random_mean - random) < 4 * random_se
    optimal_mean, optimal_se = measured(env.optimal_action, 600)
    assert abs(optimal_mean - optimal) < 4 * optimal_se


def test_complete_kwargs_are_validated() -> None:
    with pytest.raises(ValueError, match="prompt_min"):
        envs.make_env(config_for("audiodream/Complete-v0", kwargs={"prompt_min": 1}))
    with pytest.raises(EnvConfigError, match="answer_stpes"):
        envs.make_env(config_for("audiodream/Complete-v0", kwargs={"answer_stpes": 2}))


# --------------------------------------------------------------------------- Echo-v0


def test_echo_rewards_repeating_the_word() -> None:
    env = envs.make_env(config_for("audiodream/Echo-v0")).unwrapped
    perfect, random_returns = [], []
    rng = np.random.default_rng(1)
    for seed in range(400):
        for policy, sink in ((env.optimal_action, perfect), (lambda: int(rng.integers(24)), random_returns)):
            env.reset(seed=seed)
            word, total, done, steps = list(env.prompt), 0.0, False, 0
            while not done:
                _, reward, done, _, _ = env.step(policy())
                total, steps = total + reward, steps + 1
            assert 2 <= len(word) <= 4 and steps == 2 * len(word)
            sink.append((total, len(word)))
    assert all(total == length for total, length in perfect)
    totals = np.array([t for t, _ in random_returns])
    assert abs(totals.mean() - env.random_return()) < 4 * totals.std() / np.sqrt(len(totals))
    assert env.random_return() == pytest.approx(3 / 24)


# --------------------------------------------------------------------------- Listen-v0


def test_listen_streams_synthetic_clips_in_windows() -> None:
    env = envs.make_env(config_for("audiodream/Listen-v0", **{"env.episode_steps": 5})).unwrapped
    for seed in range(6):
        obs, info = env.reset(seed=seed)
        mel = env.clips.mel(info["clip"])
        start = info["start_chunk"] * 16
        chunks, ends = [obs], None
        while ends is None:
            obs, reward, terminated, truncated, _ = env.step(0)
            assert reward == 0.0
            chunks.append(obs)
            if terminated or truncated:
                ends = (terminated, truncated)
        assert ends == (False, True) and len(chunks) == 6  # 8-20 syllable clips are longer than 5 steps
        assert np.array_equal(np.concatenate(chunks, axis=1), mel[:, start : start + 6 * 16])


def test_listen_reads_the_data_stage_manifest(tmp_path: Path) -> None:
    """Clips of the requested split, exactly as cached; a whole short clip ends `terminated`."""
    cfg = config_for("audiodream/Listen-v0", **{"env.episode_steps": 50, "env.split": "val"})
    paths = DataPaths.of(tmp_path)
    rng = np.random.default_rng(0)
    wavs = [write_wav(tmp_path / "audio" / f"c{i}.wav", 0.3 * rng.standard_normal(16000 // (i + 1)), 16000) for i in range(3)]
    cached = FeatureCache(paths.feature_root, cfg.features).compute(wavs, num_workers=1, progress=False)
    splits = ["train", "val", "val"]
    write_manifest(
        paths.manifest,
        [ManifestRow(str(c.path), f"s{i}", c.duration_s, splits[i], c.frames, c.key) for i, c in enumerate(cached)],
    )
    env = envs.make_env(cfg, run_dir=tmp_path).unwrapped
    assert len(env.clips) == 2  # the val clips: 50 and 33 frames (3 and 2 chunks)
    seen = set()
    for seed in range(10):
        obs, info = env.reset(seed=seed)
        chunks, done = [obs], False
        while not done:
            obs, _, terminated, truncated, _ = env.step(0)
            chunks.append(obs)
            done = terminated or truncated
        assert terminated and not truncated
        row = env.clips.rows[info["clip"]]
        assert row.split == "val"
        mel = FeatureCache(paths.feature_root, cfg.features).load(row.cache_key).mel
        n = mel.shape[1] // 16
        assert np.array_equal(np.concatenate(chunks, axis=1), mel[:, : n * 16])
        seen.add(row.path)
    assert seen == {str(wavs[1]), str(wavs[2])}
    with pytest.raises(ValueError, match="no clip of at least"):
        envs.make_env(config_for("audiodream/Listen-v0", **{"env.split": "test"}), run_dir=tmp_path)


# --------------------------------------------------------------------------- tokenising wrappers


def test_tokenised_observations_are_the_tokenizer_codes(tokenizer_path: Path) -> None:
    cfg = config_for("audiodream/Complete-v0")
    tokenizer = Tokenizer.load(tokenizer_path)
    raw, tokenised = envs.make_env(cfg), envs.make_env(cfg, tokenizer_path)
    actions = [3, 9, 14]
    raw_obs, _ = rollout(raw, 7, actions, 12)
    token_obs, _ = rollout(tokenised, 7, actions, 12)
    expected = tokenizer.encode_chunks(np.stack(raw_obs)).numpy()
    assert np.array_equal(np.stack(token_obs), expected)

    vector = envs.make_vector_env(cfg, 3, tokenizer_path)
    assert vector.single_observation_space == tokenised.observation_space
    obs, _ = vector.reset(seed=20)
    assert obs.shape == (3, 48)
    for i in range(3):  # sub-env i of a vector env reset with seed s is seeded s + i
        single, _ = tokenised.reset(seed=20 + i)
        assert np.array_equal(obs[i], single)
    obs, rewards, terminated, truncated, _ = vector.step(np.array([1, 2, 3]))
    assert obs.shape == (3, 48) and rewards.shape == (3,)


def test_tokenizer_must_match_the_chunks(tokenizer_path: Path) -> None:
    cfg = config_for("audiodream/Complete-v0", **{"env.chunk_frames": 8})
    with pytest.raises(ValueError, match="chunk_frames"):
        envs.make_env(cfg, tokenizer_path)
    with pytest.raises(FileNotFoundError, match="tokenizer checkpoint not found"):
        envs.make_env(config_for("audiodream/Complete-v0"), tokenizer_path.parent / "missing.pt")


# --------------------------------------------------------------------------- plug-in


class ToneEnv(gym.Env):
    """A plug-in audio env defined outside envs/: a tone whose pitch the agent moves."""

    metadata = {"render_modes": []}

    def __init__(self, features: FeaturesConfig | None = None, chunk_frames: int = 16, pitch_hz: float = 220.0) -> None:
        from audiodream.features import LogMelExtractor

        self.features = features or FeaturesConfig()
        self.chunk_frames = chunk_frames
        self.pitch_hz = pitch_hz
        self.extractor = LogMelExtractor(self.features)
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.features.n_mels, chunk_frames), np.float32)
        self.action_space = spaces.Discrete(3)

    def _chunk(self) -> np.ndarray:
        n = self.chunk_frames * self.features.hop_length
        wave = np.sin(2 * np.pi * self.pitch_hz * np.arange(n) / self.features.sample_rate).astype(np.float32)
        return self.extractor.normalized(wave).mel

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._chunk(), {}

    def step(self, action):
        self.pitch_hz *= (0.9, 1.0, 1.1)[int(action)]
        self.t += 1
        return self._chunk(), float(action == 1), self.t >= 4, False, {}


class WrongShapeEnv(ToneEnv):
    def __init__(self) -> None:
        super().__init__()
        self.observation_space = spaces.Box(-1, 1, (3,), np.float32)


def test_plugin_env_by_module_and_class(tokenizer_path: Path) -> None:
    cfg = load_config([], ["env.id=tests.test_envs:ToneEnv", "env.kwargs={pitch_hz: 440.0}", "env.chunk_frames=16"])
    env = envs.make_env(cfg, tokenizer_path)
    assert env.unwrapped.pitch_hz == 440.0 and env.unwrapped.features == cfg.features
    obs, _ = env.reset(seed=0)
    assert obs.shape == (48,)
    _, reward, _, _, _ = env.step(1)
    assert reward == 1.0 and env.unwrapped.pitch_hz == 440.0
    vector = envs.make_vector_env(cfg, 2, tokenizer_path)
    obs, _ = vector.reset(seed=0)
    assert obs.shape == (2, 48) and np.array_equal(obs[0], obs[1])


def test_bad_env_ids_and_spaces_are_clear_errors() -> None:
    with pytest.raises(EnvConfigError, match="not a registered Gymnasium id"):
        envs.make_env(load_config([], ["env.id=audiodream/Completion-v0"]))
    with pytest.raises(EnvConfigError, match="cannot import module 'no_such_module'"):
        envs.make_env(load_config([], ["env.id=no_such_module:Env"]))
    with pytest.raises(EnvConfigError, match="has no class or function 'Nope'"):
        envs.make_env(load_config([], ["env.id=tests.test_envs:Nope"]))
    with pytest.raises(ValueError, match=r"must emit log-mel chunks Box\(float32, \(80, 16\)\)"):
        envs.make_env(load_config([], ["env.id=tests.test_envs:WrongShapeEnv"]))


def test_envs_are_registered_with_rllib() -> None:
    from ray.tune.registry import ENV_CREATOR, _global_registry

    from envs.rllib import CONFIGURED_ENV_NAME, register_configured_env

    ids = envs.register_rllib_envs()
    for env_id in ids:
        creator = _global_registry.get(ENV_CREATOR, env_id)
        env = creator(SMALL[env_id])
        assert env.observation_space.shape == (80, 16)
    cfg = config_for("audiodream/Echo-v0")
    assert register_configured_env(cfg, None, None) == CONFIGURED_ENV_NAME
    creator = _global_registry.get(ENV_CREATOR, CONFIGURED_ENV_NAME)
    assert creator({}).unwrapped.word_lengths == [2, 3, 4]
    assert creator({"num_envs": 3}).num_envs == 3
