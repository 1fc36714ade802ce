from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from audiodream.config import ConfigError, load_config
from audiodream.config.loader import CONFIGS_DIR, _all_keys
from audiodream.config.schema import Config
from tests.conftest import REPO


def test_defaults_yaml_lists_every_key_with_a_comment():
    raw = (CONFIGS_DIR / "defaults.yaml").read_text()
    tree = yaml.safe_load(raw)

    def keys(node, prefix=""):
        for k, v in node.items():
            yield prefix + k
            if isinstance(v, dict) and v and k not in ("kwargs",):
                yield from keys(v, prefix + k + ".")

    yaml_keys = set(keys(tree))
    schema_keys = set(_all_keys(Config)) - {"config_names"}
    assert yaml_keys == schema_keys
    for line in raw.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not stripped.endswith(":"):
            assert "#" in stripped, f"defaults.yaml line has no comment: {line!r}"


def test_yaml_defaults_match_dataclass_defaults():
    # The YAML is what users read; the dataclass defaults must not silently disagree with it.
    assert load_config([]) == Config(config_names=[])


def test_configs_merge_in_order_and_overrides_are_yaml_typed(tmp_path):
    (tmp_path / "defaults.yaml").write_text((CONFIGS_DIR / "defaults.yaml").read_text())
    (tmp_path / "a.yaml").write_text("ray:\n  num_workers: 5\ndreamer:\n  batch_size: 4\n")
    (tmp_path / "b.yaml").write_text("ray:\n  num_workers: 7\n")
    cfg = load_config(["a", "b"], ["run.stages=[data,tokenizer]", "dreamer.lr_model=0.5", "env.kwargs={answer_steps: 3}"], configs_dir=tmp_path)
    assert cfg.ray.num_workers == 7  # b after a
    assert cfg.dreamer.batch_size == 4  # from a, untouched by b
    assert cfg.run.stages == ["data", "tokenizer"]
    assert cfg.dreamer.lr_model == 0.5
    assert cfg.env.kwargs == {"answer_steps": 3}
    assert cfg.config_names == ["a", "b"]


def test_a_config_includes_others_before_itself(tmp_path):
    (tmp_path / "defaults.yaml").write_text((CONFIGS_DIR / "defaults.yaml").read_text())
    (tmp_path / "base.yaml").write_text("ray:\n  num_workers: 5\ndreamer:\n  batch_size: 4\n")
    (tmp_path / "child.yaml").write_text("include: [base]\nray:\n  num_workers: 7\n")
    cfg = load_config(["child"], ["dreamer.seq_len=9"], configs_dir=tmp_path)
    assert (cfg.ray.num_workers, cfg.dreamer.batch_size, cfg.dreamer.seq_len) == (7, 4, 9)  # base, then child, then overrides
    assert cfg.config_names == ["child"]
    (tmp_path / "a.yaml").write_text("include: b\n")
    (tmp_path / "b.yaml").write_text("include: [a]\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(["a"], configs_dir=tmp_path)
    (tmp_path / "c.yaml").write_text("include: [nope]\n")
    with pytest.raises(ConfigError, match="'nope' not found .*included by"):
        load_config(["c"], configs_dir=tmp_path)


@pytest.mark.parametrize(
    "override, named, suggestion",
    [
        ("ray.num_worker=3", "ray.num_worker", "ray.num_workers"),
        ("dreamer.trian_steps=3", "dreamer.trian_steps", "dreamer.train_steps"),
        ("tokeniser.steps=3", "tokeniser.steps", "tokenizer.steps"),
    ],
)
def test_unknown_key_names_key_and_closest(override, named, suggestion):
    with pytest.raises(ConfigError) as err:
        load_config([], [override])
    assert f"'{named}'" in str(err.value) and f"'{suggestion}'" in str(err.value)


@pytest.mark.parametrize(
    "override, key",
    [
        ("ray.num_workers=two", "ray.num_workers"),
        ("run.stages=data", "run.stages"),
        ("mlflow.enabled=3", "mlflow.enabled"),
        ("features.n_mels=1.5", "features.n_mels"),
        ("dreamer.explore_epsilon=1.5", "dreamer.explore_epsilon"),
        ("dreamer.actor_reward_gradient=dynamics", "dreamer.actor_reward_gradient"),
    ],
)
def test_mistyped_value_names_key(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config([], [override])


@pytest.mark.parametrize(
    "override, expected",
    [("dreamer.train_seconds=soon", "expected a number or null"), ("dreamer.imag_starts=all", "expected an integer or null")],
)
def test_an_optional_key_says_what_it_accepts(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config([], [override])


def test_reward_prior_without_entropy_is_named():
    with pytest.raises(ConfigError, match="'dreamer.actor_reward_prior'"):
        load_config([], ["dreamer.actor_reward_prior=true", "dreamer.entropy_coef=0"])


def test_stage_order_and_names_are_checked():
    with pytest.raises(ConfigError, match="did you mean 'tokenizer'"):
        load_config([], ["run.stages=[data,tokeniser]"])
    with pytest.raises(ConfigError, match="ordered subset"):
        load_config([], ["run.stages=[tokenizer,data]"])


def test_unknown_config_name_is_an_error():
    with pytest.raises(ConfigError, match="dreamer_audio"):
        load_config(["dreamer_audi"])


def test_launch_cli_exit_codes_and_help():
    help_out = subprocess.run([sys.executable, "launch.py", "--help"], cwd=REPO, capture_output=True, text=True)
    assert help_out.returncode == 0
    assert "dreamer_audio" in help_out.stdout and "tokenizer" in help_out.stdout
    bad = subprocess.run([sys.executable, "launch.py", "--config", "dreamer_audio", "ray.num_worker=2"], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2
    assert "ray.num_worker" in bad.stderr and "ray.num_workers" in bad.stderr
