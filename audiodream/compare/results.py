"""Assembling the comparison: curves from each agent's metrics file, final returns, the plot.

Inputs, all in one run.dir (agent name in `compare.agents` -> file):
- `dreamer` (this project's agent, reported as "audiodream"): dreamer/metrics.jsonl;
- `ppo` (RLlib PPO, the `baseline` stage): baseline/metrics.jsonl;
- `dreamerv3` (RLlib DreamerV3, trained by the `compare` stage): compare/dreamerv3_metrics.jsonl.

Each agent's curve is its rows' (env_steps, time_s, return_mean, episodes): `return_mean`
is the mean return of the training (sampling) policy's episodes finished since the
previous row (PPO's rows: its last `baseline.return_window` episodes), `time_s` the
seconds since the agent's training started. `final_return` is defined the same way for all
agents: the episode-weighted mean of `return_mean` over the rows logged in the last
`compare.final_fraction` of `compare.env_steps` (at least the last row with a return).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from audiodream.dreamer.metrics_log import read_jsonl_rows
from audiodream.errors import UserFacingError

# agent (compare.agents) -> (key in results.json, label, metrics file in run.dir, stage that writes it)
AGENTS: dict[str, tuple[str, str, str, str]] = {
    "dreamer": ("audiodream", "audiodream (this agent)", "dreamer/metrics.jsonl", "dreamer"),
    "ppo": ("ppo", "RLlib PPO", "baseline/metrics.jsonl", "baseline"),
    "dreamerv3": ("dreamerv3", "RLlib DreamerV3", "compare/dreamerv3_metrics.jsonl", "compare"),
}
RESULTS_FILE = "results.json"
PLOT_FILE = "learning_curves.png"


class CompareError(UserFacingError, ValueError):
    """A comparison that cannot be made as configured: says what to change."""


def check_agents(agents: Iterable[str]) -> list[str]:
    agents = list(agents)
    unknown = [a for a in agents if a not in AGENTS]
    if unknown or not agents or len(set(agents)) != len(agents):
        raise CompareError(f"config key 'compare.agents': expected distinct names from {list(AGENTS)}, got {agents}")
    return agents


def _finite(value: Any) -> Optional[float]:
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def curve_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """(env_steps, time_s, return_mean, episodes) per row, in env-step order."""
    curve = [
        {
            "env_steps": int(row["env_steps"]),
            "time_s": _finite(row.get("time_s")),
            "return_mean": _finite(row.get("return_mean")),
            "episodes": int(row["episodes"]) if row.get("episodes") is not None else None,
        }
        for row in rows
        if row.get("env_steps") is not None
    ]
    return sorted(curve, key=lambda point: point["env_steps"])


def load_curve(run_dir: Path, agent: str) -> list[dict[str, Any]]:
    _, label, relative, stage = AGENTS[agent]
    path = Path(run_dir) / relative
    if not path.is_file():
        raise CompareError(
            f"{path} not found: the comparison of {label} needs the '{stage}' stage's metrics in this run.dir; "
            f"add {stage} to run.stages before compare, or drop '{agent}' from compare.agents"
        )
    curve = curve_from_rows(read_jsonl_rows(path))
    if not curve:
        raise CompareError(f"{path} holds no metrics rows: re-run the '{stage}' stage")
    return curve


def check_env_steps(agent: str, env_steps: int, target: int, tolerance: float) -> None:
    """An agent's final env steps must be within `tolerance` (relative) of `compare.env_steps`."""
    if target <= 0:
        raise CompareError(f"config key 'compare.env_steps': must be > 0, got {target}")
    if abs(env_steps - target) <= tolerance * target:
        return
    _, label, _, stage = AGENTS[agent]
    how = {
        "dreamer": (
            "change dreamer.train_steps or dreamer.train_ratio (the dreamer stage collects about "
            "dreamer.prefill_steps + dreamer.train_steps * dreamer.batch_size * dreamer.seq_len / dreamer.train_ratio env steps)"
        ),
        "ppo": f"set baseline.env_steps={target} (PPO stops at the first multiple of baseline.train_batch_size at or above it)",
        "dreamerv3": "lower compare.dreamerv3_log_every (DreamerV3 stops after the first iteration at or past compare.env_steps)",
    }[agent]
    raise CompareError(
        f"compare: {label} (stage '{stage}') trained for {env_steps} env steps, but compare.env_steps is {target} "
        f"(tolerance {tolerance:.0%}, compare.env_steps_tolerance): the agents must be compared at the same env steps. "
        f"Set compare.env_steps={env_steps}, or {how}"
    )


def final_return(curve: list[dict[str, Any]], budget: int, fraction: float) -> Optional[float]:
    """Episode-weighted mean of return_mean over rows at env steps >= last - fraction * budget."""
    points = [p for p in curve if p["return_mean"] is not None]
    if not points:
        return None
    start = points[-1]["env_steps"] - fraction * budget
    window = [p for p in points if p["env_steps"] >= start] or points[-1:]
    weights = [p["episodes"] if p["episodes"] else 1 for p in window]
    return float(sum(w * p["return_mean"] for w, p in zip(weights, window)) / sum(weights))


def agent_result(curve: list[dict[str, Any]], budget: int, fraction: float, greedy_return: Optional[float] = None) -> dict[str, Any]:
    times = [p["time_s"] for p in curve if p["time_s"] is not None]
    return {
        "env_steps": curve[-1]["env_steps"],
        "final_return": final_return(curve, budget, fraction),
        "greedy_return": greedy_return,
        "wall_s": times[-1] if times else None,
        "curve": curve,
    }


def read_greedy_return(run_dir: Path) -> Optional[float]:
    """The eval stage's greedy-policy return (eval/metrics.json `return_mean`), when present."""
    path = Path(run_dir) / "eval" / "metrics.json"
    if not path.is_file():
        return None
    return _finite(json.loads(path.read_text()).get("return_mean"))


def checks(algorithms: Mapping[str, Mapping[str, Any]]) -> dict[str, Optional[bool]]:
    """The issue's acceptance questions, answered from the final returns and wall times (null: not comparable)."""

    def value(name: str, key: str) -> Optional[float]:
        return algorithms.get(name, {}).get(key)

    ours, ppo, v3 = (value(n, "final_return") for n in ("audiodream", "ppo", "dreamerv3"))
    ours_s, v3_s = value("audiodream", "wall_s"), value("dreamerv3", "wall_s")
    return {
        "audiodream_beats_ppo": None if ours is None or ppo is None else ours > ppo,
        "audiodream_matches_dreamerv3": None if ours is None or v3 is None else ours >= v3,
        "audiodream_faster_than_dreamerv3": None if ours_s is None or v3_s is None else ours_s < v3_s,
    }


def assemble(
    run_dir: Path,
    agents: Iterable[str],
    env_id: str,
    budget: int,
    tolerance: float,
    fraction: float,
    references: Mapping[str, float],
    curves: Optional[Mapping[str, list[dict[str, Any]]]] = None,
) -> dict[str, Any]:
    """results.json's content. `curves` (agent -> curve) overrides reading the agent's file."""
    if not 0.0 < fraction <= 1.0:
        raise CompareError(f"config key 'compare.final_fraction': must be in (0, 1], got {fraction}")
    algorithms: dict[str, Any] = {}
    for agent in check_agents(agents):
        curve = (curves or {}).get(agent) or load_curve(run_dir, agent)
        check_env_steps(agent, curve[-1]["env_steps"], budget, tolerance)
        greedy = read_greedy_return(run_dir) if agent == "dreamer" else None
        algorithms[AGENTS[agent][0]] = agent_result(curve, budget, fraction, greedy)
    return {
        "env_id": env_id,
        "env_steps": budget,
        "final_fraction": fraction,
        **{k: float(v) for k, v in references.items()},
        "algorithms": algorithms,
        "checks": checks(algorithms),
    }


def plot_learning_curves(results: Mapping[str, Any], path: Path) -> Path:
    """Two panels: return against env steps and against wall time, with the env's reference returns."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    labels = {key: label for key, label, _, _ in AGENTS.values()}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True, constrained_layout=True)
    for ax, x_key, x_label in ((axes[0], "env_steps", "env steps"), (axes[1], "time_s", "wall time (s)")):
        for name, result in results["algorithms"].items():
            points = [p for p in result["curve"] if p["return_mean"] is not None and p[x_key] is not None]
            ax.plot([p[x_key] for p in points], [p["return_mean"] for p in points], marker=".", label=labels.get(name, name))
        for ref, style in (("optimal_return", dict(color="green", linestyle="--")), ("blind_return", dict(color="gray", linestyle="-.")), ("random_return", dict(color="red", linestyle=":"))):
            if results.get(ref) is not None:
                ax.axhline(results[ref], label=ref.replace("_return", ""), linewidth=1, **style)
        ax.set_xlabel(x_label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("episode return (training policy)")
    axes[0].set_title(f"{results['env_id']}: return against env steps")
    axes[1].set_title("return against wall time")
    axes[1].legend(loc="best", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
