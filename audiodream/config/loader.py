"""Load, merge, override and validate configs.

Order (pydreamer-style sections plus overrides): `configs/defaults.yaml`, then each
`configs/NAME.yaml` given with `--config` (each preceded by the configs its `include:`
key names), then dotted `key=value` overrides whose values are parsed as YAML
(`run.stages=[data,tokenizer]`, `ray.num_workers=2`).
YAML is parsed with `yaml.safe_load` only: nothing in a config is ever evaluated.
"""

from __future__ import annotations

from audiodream.errors import UserFacingError
import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml

from audiodream.config.schema import ACTOR_REWARD_GRADIENTS, GRU_CELL_NAMES, STAGES, Config

CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"


class ConfigError(UserFacingError, ValueError):
    """A config problem, phrased for the user: names the key and what is wrong."""


def available_configs(configs_dir: Path = CONFIGS_DIR) -> list[str]:
    return sorted(p.stem for p in configs_dir.glob("*.yaml") if p.stem != "defaults")


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Merge `update` into a copy of `base`; nested mappings merge, everything else replaces."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key part")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {key}: value {raw!r} is not valid YAML: {err}") from err
    return key.split("."), value


def apply_override(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if child is None or not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}{f.name}"
        keys.append(dotted)
        if dataclasses.is_dataclass(hints[f.name]):
            keys.extend(_all_keys(hints[f.name], dotted + "."))
    return keys


def _unknown_key_error(dotted: str) -> ConfigError:
    valid = _all_keys(Config)
    close = difflib.get_close_matches(dotted, valid, n=1, cutoff=0.5)
    if not close:  # also try the last component alone, e.g. `ray.num_worker` vs `ray.num_workers`
        leaf = dotted.rsplit(".", 1)[-1]
        leaves = {k.rsplit(".", 1)[-1]: k for k in valid}
        hit = difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.6)
        close = [leaves[hit[0]]] if hit else []
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown config key '{dotted}'{hint}")


def _first_leaf(dotted: str, value: Any) -> str:
    """`tokeniser: {steps: 3}` is reported as 'tokeniser.steps', the key the user typed."""
    while isinstance(value, dict) and value:
        key, value = next(iter(value.items()))
        dotted = f"{dotted}.{key}"
    return dotted


_DESCRIPTIONS: dict[Any, str] = {bool: "true/false", int: "an integer", float: "a number", str: "a string", type(None): "null"}


def _describe(tp: Any) -> str:
    """What a value of annotation `tp` looks like in YAML: 'a number or null', not 'Optional'."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(tp))
    if origin is list:
        return "a list"
    if origin is dict:
        return "a mapping"
    return _DESCRIPTIONS.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any, dotted: str) -> Any:
    """Check `value` against the annotation `tp`, converting only int -> float."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, dotted)
            except ConfigError:
                pass
        raise ConfigError(f"config key '{dotted}': expected {_describe(tp)}, got {value!r}")
    if tp is Any:
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key '{dotted}': expected a list, got {value!r}")
        (item_tp,) = typing.get_args(tp)
        return [_coerce(v, item_tp, f"{dotted}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{dotted}': expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{dotted}': expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{dotted}': expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads `4e-3` (no dot) as a string; accept what Python reads as a number.
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{dotted}': expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{dotted}': expected a string, got {value!r}")
        return value
    raise ConfigError(f"config key '{dotted}': unsupported type {tp}")


def build_dataclass(cls: type, tree: dict[str, Any], prefix: str = "") -> Any:
    if not isinstance(tree, dict):
        raise ConfigError(f"config key '{prefix.rstrip('.')}': expected a section (mapping), got {tree!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in tree.items():
        if key not in names:
            raise _unknown_key_error(_first_leaf(f"{prefix}{key}", value))
    kwargs = {}
    for name in names:
        if name not in tree:
            continue
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = build_dataclass(tp, tree[name] or {}, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(tree[name], tp, f"{prefix}{name}")
    return cls(**kwargs)


def validate(cfg: Config) -> None:
    """Cross-field checks that types alone cannot express."""
    bad = [s for s in cfg.run.stages if s not in STAGES]
    if bad:
        close = difflib.get_close_matches(bad[0], STAGES, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"config key 'run.stages': unknown stage '{bad[0]}'{hint} (stages: {', '.join(STAGES)})")
    order = [STAGES.index(s) for s in cfg.run.stages]
    if order != sorted(order) or len(set(order)) != len(order):
        raise ConfigError(f"config key 'run.stages': stages must be an ordered subset of {list(STAGES)}, got {cfg.run.stages}")
    sources = ("synthetic", "folder", "commonvoice", "librispeech")
    if cfg.data.source not in sources:
        raise ConfigError(f"config key 'data.source': expected one of {sources}, got {cfg.data.source!r}")
    if cfg.data.source != "synthetic" and not cfg.data.path:
        raise ConfigError(f"config key 'data.path': required when data.source={cfg.data.source}")
    f = cfg.features
    if f.f_max > f.sample_rate / 2:
        raise ConfigError(f"config key 'features.f_max': {f.f_max} is above Nyquist ({f.sample_rate / 2})")
    if cfg.env.chunk_frames % cfg.tokenizer.downsample:
        raise ConfigError(
            f"config key 'env.chunk_frames': {cfg.env.chunk_frames} must be a multiple of "
            f"tokenizer.downsample ({cfg.tokenizer.downsample}) so every env step has the same token count"
        )
    for key, value in (("ray.worker_num_cpus", cfg.ray.worker_num_cpus), ("dreamer.train_ratio", cfg.dreamer.train_ratio)):
        if value <= 0:
            raise ConfigError(f"config key '{key}': must be > 0, got {value}")
    if cfg.learner.num_threads is not None and cfg.learner.num_threads < 1:
        raise ConfigError(f"config key 'learner.num_threads': must be >= 1 or null, got {cfg.learner.num_threads}")
    if not 0.0 <= cfg.dreamer.explore_epsilon <= 1.0:
        raise ConfigError(f"config key 'dreamer.explore_epsilon': must lie in [0, 1], got {cfg.dreamer.explore_epsilon}")
    if cfg.dreamer.actor_reward_gradient not in ACTOR_REWARD_GRADIENTS:
        raise ConfigError(f"config key 'dreamer.actor_reward_gradient': expected one of {ACTOR_REWARD_GRADIENTS}, got {cfg.dreamer.actor_reward_gradient!r}")
    if cfg.dreamer.gru not in GRU_CELL_NAMES:
        raise ConfigError(f"config key 'dreamer.gru': expected one of {GRU_CELL_NAMES}, got {cfg.dreamer.gru!r}")
    if not 0.0 < cfg.dreamer.model_adam_beta2 < 1.0:
        raise ConfigError(f"config key 'dreamer.model_adam_beta2': must lie in (0, 1), got {cfg.dreamer.model_adam_beta2}")
    ema, power = cfg.dreamer.model_ema_decay, cfg.dreamer.model_ema_power
    if ema is not None and not 0.0 < ema < 1.0:
        raise ConfigError(f"config key 'dreamer.model_ema_decay': must lie in (0, 1) or be null, got {ema}")
    if power is not None and not 0.0 <= power < 1000.0:
        raise ConfigError(f"config key 'dreamer.model_ema_power': must lie in [0, 1000) or be null, got {power}")
    if ema is not None and power is not None:
        raise ConfigError(f"config key 'dreamer.model_ema_power': set it or dreamer.model_ema_decay, not both (got {power} and {ema})")
    start = cfg.dreamer.model_ema_start
    if start < 0:
        raise ConfigError(f"config key 'dreamer.model_ema_start': must be >= 0, got {start}")
    if start > 0 and power is None:
        raise ConfigError(f"config key 'dreamer.model_ema_start': applies to the power-function average; set dreamer.model_ema_power too (got start {start})")
    for key, value in (("model_ema_decay", ema), ("model_ema_power", power)):
        if value is not None and cfg.dreamer.actor_critic:
            raise ConfigError(
                f"config key 'dreamer.{key}': averaged world-model weights are for world-model-only runs "
                "(dreamer.actor_critic: false); the actor is trained on the live model's features, so eval must act with those"
            )
    if cfg.dreamer.actor_reward_prior and not cfg.dreamer.entropy_coef > 0.0:
        raise ConfigError(f"config key 'dreamer.actor_reward_prior': needs dreamer.entropy_coef > 0 (the prior is r / entropy_coef), got {cfg.dreamer.entropy_coef}")


def config_path(name: str, configs_dir: Path = CONFIGS_DIR, relative_to: Path | None = None) -> Path:
    """`NAME` -> configs/NAME.yaml; a name ending in .yaml is a path (relative to `relative_to` when given)."""
    if name.endswith(".yaml"):
        path = Path(name).expanduser()
        return path if path.is_absolute() or relative_to is None else relative_to / path
    return configs_dir / f"{name}.yaml"


def read_named_config(name: str, configs_dir: Path = CONFIGS_DIR, relative_to: Path | None = None, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """One named config with its `include:` list resolved.

    A config may start with `include: [NAME, ...]` (or one name): those configs are merged
    first, in order, then the file itself, exactly as if they had come before it on the
    command line (`--config NAME --config this`). Includes nest; a cycle is an error."""
    path = config_path(name, configs_dir, relative_to)
    if not path.is_file():
        close = difflib.get_close_matches(name, available_configs(configs_dir), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        where = f" (included by {chain[-1]})" if chain else ""
        raise ConfigError(f"config '{name}' not found at {path}{where}{hint} (available: {', '.join(available_configs(configs_dir))})")
    key = str(path.resolve())
    if key in chain:
        raise ConfigError(f"{path}: 'include' makes a cycle ({' -> '.join([*chain, key])})")
    tree = read_yaml(path)
    includes = tree.pop("include", None) or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError(f"{path}: 'include' must be a config name or a list of names, got {includes!r}")
    merged: dict[str, Any] = {}
    for included in includes:
        merged = deep_merge(merged, read_named_config(included, configs_dir, path.parent, (*chain, key)))
    return deep_merge(merged, tree)


def load_config(names: list[str], overrides: list[str] | None = None, configs_dir: Path = CONFIGS_DIR) -> Config:
    defaults_path = configs_dir / "defaults.yaml"
    tree = read_yaml(defaults_path)
    for name in names:
        tree = deep_merge(tree, read_named_config(name, configs_dir))
    for text in overrides or []:
        path_parts, value = parse_override(text)
        apply_override(tree, path_parts, value)
    tree["config_names"] = [Path(n).stem for n in names]
    cfg = build_dataclass(Config, tree)
    validate(cfg)
    return cfg


def config_to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def config_from_dict(tree: dict[str, Any]) -> Config:
    cfg = build_dataclass(Config, tree)
    validate(cfg)
    return cfg
