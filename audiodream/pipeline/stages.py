"""The stage registry: what each stage runs, and which config keys its outputs depend on.

A stage's outputs are reused when `run.dir/<stage>/stage.json` records the same
fingerprint (hash of the config keys the stage depends on): re-running a command, or
adding a later stage to `run.stages`, never recomputes what is already there, while a
changed tokenizer setting does retrain the tokenizer (and everything after it). Settings
of how a stage runs (RUNTIME_KEYS: threads, device, worker processes) are not hashed, nor,
except by the stages whose outputs are sound made with them, the Griffin-Lim settings
(RENDER_KEYS).
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

from audiodream.config.schema import FEATURE_RENDER_FIELDS, Config

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
    renders: bool = False  # its outputs are sound made with RENDER_KEYS, so its fingerprint counts them

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
        Stage("eval", "audiodream.evaluation.stage:eval_stage", EVAL_KEYS, renders=True),
        Stage("generate", "audiodream.generation.stage:generate_stage", EVAL_KEYS + ("generate",), reusable=False, renders=True),
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
# Keys that only say how a mel spectrogram is turned back into sound: they change no features,
# tokens or model, so trying other Griffin-Lim settings on a trained run re-renders its eval
# (and `generate`) but reruns nothing before it. The tokenizer stage's preview wavs keep the
# settings they were made with.
RENDER_KEYS: tuple[str, ...] = tuple(f"features.{name}" for name in FEATURE_RENDER_FIELDS)


def left_out_keys(renders: bool) -> tuple[str, ...]:
    return RUNTIME_KEYS if renders else RUNTIME_KEYS + RENDER_KEYS


def fingerprint(
    cfg: Config, keys: tuple[str, ...], later_keys: Mapping[str, Any] = MappingProxyType({}),
    left_out: tuple[str, ...] = RUNTIME_KEYS + RENDER_KEYS,
) -> str:
    """Hash of the values of `keys`, leaving out `left_out`. A key of `later_keys` (key ->
    the value runs made before it had) counts only when its value differs from that one: a
    key added after runs existed then leaves their fingerprints as they were."""
    tree = asdict(cfg)
    for dotted in left_out:
        *parents, leaf = dotted.split(".")
        _select(tree, ".".join(parents)).pop(leaf)
    picked = {k: _select(tree, k) for k in keys}
    picked.update({k: value for k, old in later_keys.items() if (value := _select(tree, k)) != old})
    return hashlib.sha1(json.dumps(picked, sort_keys=True, default=str).encode()).hexdigest()[:16]


def accepted_fingerprints(
    cfg: Config, keys: tuple[str, ...], later_keys: Mapping[str, Any] = MappingProxyType({}), renders: bool = False
) -> tuple[str, ...]:
    """This version's fingerprint, then those earlier versions stamped: before RENDER_KEYS were
    left out (RUNTIME_KEYS were), and before that (every key hashed). Such outputs still match
    a config with the values they were made with."""
    eras = (left_out_keys(renders), RUNTIME_KEYS, ())
    return tuple(dict.fromkeys(fingerprint(cfg, keys, later_keys, left_out=era) for era in eras))


def marker_path(run_dir: Path, stage: Stage) -> Path:
    return Path(run_dir) / stage.name / "stage.json"


def is_done(cfg: Config, run_dir: Path, stage: Stage) -> bool:
    marker = marker_path(run_dir, stage)
    if not stage.reusable or not marker.is_file():
        return False
    return json.loads(marker.read_text()).get("fingerprint") in accepted_fingerprints(cfg, stage.depends_on, renders=stage.renders)


def mark_done(cfg: Config, run_dir: Path, stage: Stage, seconds: float) -> None:
    marker = marker_path(run_dir, stage)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"fingerprint": fingerprint(cfg, stage.depends_on, left_out=left_out_keys(stage.renders)), "seconds": round(seconds, 2)}))
