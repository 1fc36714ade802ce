"""The stage registry: what each stage runs, and which config keys its outputs depend on.

A stage's outputs are reused when `run.dir/<stage>/stage.json` records the same
fingerprint (hash of the config keys the stage depends on): re-running a command, or
adding a later stage to `run.stages`, never recomputes what is already there, while a
changed tokenizer setting does retrain the tokenizer (and everything after it). Settings
of how a stage runs (RUNTIME_KEYS: threads, device, worker processes) are not hashed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from audiodream.config.schema import Config

DATA_KEYS = ("data", "features", "env.chunk_frames")
TOKENIZER_KEYS = DATA_KEYS + ("tokenizer", "run.seed")
DREAMER_KEYS = TOKENIZER_KEYS + ("env", "dreamer", "learner", "ray.num_workers", "ray.worker_num_cpus")
EVAL_KEYS = DREAMER_KEYS + ("eval",)
BASELINE_KEYS = TOKENIZER_KEYS + ("env", "baseline")
# compare reads dreamer, eval and baseline outputs and trains RLlib DreamerV3 on the run's env
COMPARE_KEYS = EVAL_KEYS + ("baseline", "compare")


@dataclass(frozen=True)
class Stage:
    name: str
    entry_point: str  # "module:function", function(cfg, run_dir, tracker) -> None
    depends_on: tuple[str, ...]
    reusable: bool = True

    def load(self) -> Callable[..., Any]:
        module_name, func_name = self.entry_point.split(":")
        return getattr(importlib.import_module(module_name), func_name)

    def is_available(self) -> bool:
        module_name = self.entry_point.split(":")[0]
        try:
            return importlib.util.find_spec(module_name) is not None
        except ModuleNotFoundError:
            return False


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("data", "audiodream.data.stage:data_stage", DATA_KEYS),
        Stage("tokenizer", "audiodream.tokenizer.stage:tokenizer_stage", TOKENIZER_KEYS),
        Stage("baseline", "audiodream.baseline.stage:baseline_stage", BASELINE_KEYS),
        Stage("dreamer", "audiodream.dreamer.stage:dreamer_stage", DREAMER_KEYS),
        Stage("eval", "audiodream.evaluation.stage:eval_stage", EVAL_KEYS),
        Stage("generate", "audiodream.generation.stage:generate_stage", EVAL_KEYS + ("generate",), reusable=False),
        Stage("compare", "audiodream.compare.stage:compare_stage", COMPARE_KEYS),
    )
}


def _select(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node[part]
    return node


# Keys inside fingerprinted sections that say how a stage runs, not what it makes: changing
# them (more threads on a bigger machine, the tokenizer on a GPU) must neither retrain a stage
# nor set a killed run's checkpoint and replay aside.
RUNTIME_KEYS: tuple[str, ...] = ("data.num_workers", "tokenizer.device", "tokenizer.num_threads")


def fingerprint(
    cfg: Config, keys: tuple[str, ...], later_keys: Mapping[str, Any] = MappingProxyType({}), runtime_keys: tuple[str, ...] = RUNTIME_KEYS
) -> str:
    """Hash of the values of `keys`, leaving out `runtime_keys`. A key of `later_keys` (key ->
    the value runs made before it had) counts only when its value differs from that one: a
    key added after runs existed then leaves their fingerprints as they were."""
    tree = asdict(cfg)
    for dotted in runtime_keys:
        *parents, leaf = dotted.split(".")
        _select(tree, ".".join(parents)).pop(leaf)
    picked = {k: _select(tree, k) for k in keys}
    picked.update({k: value for k, old in later_keys.items() if (value := _select(tree, k)) != old})
    return hashlib.sha1(json.dumps(picked, sort_keys=True, default=str).encode()).hexdigest()[:16]


def accepted_fingerprints(cfg: Config, keys: tuple[str, ...], later_keys: Mapping[str, Any] = MappingProxyType({})) -> tuple[str, str]:
    """This version's fingerprint, then the one outputs made before RUNTIME_KEYS were left out
    carry (they hashed those keys too): such outputs still match a config with the values
    they were made with."""
    return fingerprint(cfg, keys, later_keys), fingerprint(cfg, keys, later_keys, runtime_keys=())


def marker_path(run_dir: Path, stage: Stage) -> Path:
    return Path(run_dir) / stage.name / "stage.json"


def is_done(cfg: Config, run_dir: Path, stage: Stage) -> bool:
    marker = marker_path(run_dir, stage)
    if not stage.reusable or not marker.is_file():
        return False
    return json.loads(marker.read_text()).get("fingerprint") in accepted_fingerprints(cfg, stage.depends_on)


def mark_done(cfg: Config, run_dir: Path, stage: Stage, seconds: float) -> None:
    marker = marker_path(run_dir, stage)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"fingerprint": fingerprint(cfg, stage.depends_on), "seconds": round(seconds, 2)}))
