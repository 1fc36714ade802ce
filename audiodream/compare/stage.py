"""Stage `compare`: this agent, RLlib PPO and RLlib DreamerV3 on the same env at the same env steps.

Runs last, in the run.dir where the `dreamer` (and `eval`) and `baseline` stages have
written their metrics (configs/compare_complete.yaml, compare_echo.yaml). It first checks
that those agents trained for `compare.env_steps` (within `compare.env_steps_tolerance`;
a clear error before any training otherwise), then trains RLlib DreamerV3 for
`compare.env_steps` on the same tokenised env (audiodream/compare/dreamerv3.py), and
writes:
- run.dir/compare/dreamerv3_metrics.jsonl: DreamerV3's rows (env_steps, time_s, return_mean, ...);
- run.dir/compare/results.json: per agent its curve, final_return, greedy_return, wall_s,
  beside the env's reference returns and the acceptance checks (results.py);
- run.dir/compare/learning_curves.png: return against env steps and against wall time.
The same numbers go to MLflow as `compare.<agent>.<metric>`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from audiodream.compare.results import (
    AGENTS,
    PLOT_FILE,
    RESULTS_FILE,
    CompareError,
    assemble,
    check_agents,
    check_env_steps,
    curve_from_rows,
    load_curve,
    plot_learning_curves,
)
from audiodream.config.schema import Config
from audiodream.tracking import Tracker

log = logging.getLogger(__name__)


def tokenizer_checkpoint(run_dir: Path) -> Path:
    from audiodream.tokenizer.stage import require_tokenizer_checkpoint

    return require_tokenizer_checkpoint(run_dir, "RLlib DreamerV3 (it learns from the run's tokens)", "data, tokenizer, baseline, dreamer, eval, compare")


def summary_table(results: dict[str, Any]) -> str:
    def fmt(value: Any, width: int, decimals: int) -> str:
        return f"{'-' if value is None else format(value, f'.{decimals}f'):>{width}}"

    lines = [f"{'agent':<12} {'env steps':>10} {'final return':>13} {'greedy return':>14} {'wall s':>8}"]
    for name, r in results["algorithms"].items():
        lines.append(f"{name:<12} {r['env_steps']:>10} {fmt(r['final_return'], 13, 3)} {fmt(r['greedy_return'], 14, 3)} {fmt(r['wall_s'], 8, 0)}")
    refs = ", ".join(f"{k} {results[k]:.3f}" for k in ("optimal_return", "blind_return", "random_return") if k in results)
    return "\n".join(lines + [f"({refs})", f"checks: {results['checks']}"])


def log_results(tracker: Tracker, results: dict[str, Any], live: tuple[str, ...] = ("dreamerv3",)) -> None:
    """Curves (at step = env steps) and final figures; `live` agents' curves were logged while they trained."""
    for name, r in results["algorithms"].items():
        for point in r["curve"] if name not in live else []:
            values = {f"compare.{name}.{k}": point[k] for k in ("return_mean", "time_s") if point[k] is not None}
            tracker.log_metrics(values, step=point["env_steps"])
        finals = {f"compare.{name}.{k}": r[k] for k in ("final_return", "greedy_return", "wall_s", "env_steps") if r[k] is not None}
        tracker.log_metrics(finals, step=r["env_steps"])
    checks = {f"compare.checks.{k}": float(v) for k, v in results["checks"].items() if v is not None}
    tracker.log_metrics(checks, step=results["env_steps"])


def compare_stage(cfg: Config, run_dir: Path, tracker: Tracker) -> None:
    """Stage entry point (see audiodream.pipeline.stages)."""
    from audiodream.baseline.stage import reference_returns

    c = cfg.compare
    run_dir = Path(run_dir)
    agents = check_agents(c.agents)
    # The agents trained by earlier stages: check them before spending minutes on DreamerV3.
    curves = {agent: load_curve(run_dir, agent) for agent in agents if agent != "dreamerv3"}
    for agent, curve in curves.items():
        check_env_steps(agent, curve[-1]["env_steps"], c.env_steps, c.env_steps_tolerance)
    references = reference_returns(cfg, run_dir)
    out_dir = run_dir / "compare"
    out_dir.mkdir(parents=True, exist_ok=True)
    if "dreamerv3" in agents:
        from audiodream.compare.dreamerv3 import train_dreamerv3
        from audiodream.distributed.cluster import connect, disconnect

        tokenizer = tokenizer_checkpoint(run_dir)
        cluster = connect(cfg.ray, log_to_driver=False)
        try:
            rows = train_dreamerv3(cfg, run_dir, tracker, tokenizer, c.env_steps)
        finally:
            disconnect(cluster)
        curves["dreamerv3"] = curve_from_rows(rows)
    results = assemble(run_dir, agents, cfg.env.id, c.env_steps, c.env_steps_tolerance, c.final_fraction, references, curves)
    results_path = out_dir / RESULTS_FILE
    results_path.write_text(json.dumps(results, indent=1))
    plot_path = plot_learning_curves(results, out_dir / PLOT_FILE)
    log_results(tracker, results)
    extra = [run_dir / AGENTS["dreamerv3"][2]] if "dreamerv3" in agents else []
    tracker.log_artifacts([results_path, plot_path, *extra], "compare")
    log.info("compare: %s, %d env steps per agent\n%s", cfg.env.id, c.env_steps, summary_table(results))
