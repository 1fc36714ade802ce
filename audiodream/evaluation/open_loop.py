"""Open-loop token prediction by horizon, for the world model and count baselines.

The protocol and the baselines are audiodream.worldmodel.evaluate's (read its
docstring); this module picks the episodes:

* held-out (what CE is measured on): `eval.episodes` fresh episodes of `env.id` on the
  **test** split (Listen-v0: test-split clips of the corpus; Complete-v0: voices no
  training episode had), played by the run's behaviour policy (the actor, sampling,
  when the run has one; else the random prefill policy), seeded apart from training.
  Each episode gives one prediction per horizon: observe its first C =
  `eval.context_steps` steps, predict step C + h - 1 for h in `eval.horizons`. A
  horizon no episode is long enough for (C + h steps) is reported as null.
* training (what the baselines are fitted on): the token episodes the dreamer stage
  stored in run.dir/replay/ (the newest `BASELINE_FIT_STEPS` steps), i.e. the data the
  world model itself learnt from; if a run has none, fresh train-split episodes.

`open_loop_metrics` is the in-process entry point (the learner may call it with its
live model); the eval stage adds the episode gathering and the plot.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

from audiodream.config.schema import Config, EvalConfig
from audiodream.dreamer.checkpoint import resume_fingerprints
from audiodream.evaluation.episodes import Episode, replay_episodes, total_steps
from audiodream.evaluation.returns import play_in_env
from audiodream.worldmodel import WorldModel, evaluate_world_model

log = logging.getLogger(__name__)

BASELINE_FIT_STEPS = 200_000
FALLBACK_TRAIN_EPISODES_PER_TEST_EPISODE = 4


def open_loop_metrics(
    model: WorldModel,
    train_episodes: Sequence[Mapping[str, Any]],
    test_episodes: Sequence[Mapping[str, Any]],
    eval_cfg: EvalConfig,
    seed: int = 0,
) -> dict[str, Any]:
    """{"ce_by_horizon", "ce_baselines", "steps_by_horizon", "context_steps", "n_samples"} (horizon keys are strings)."""
    return evaluate_world_model(
        model, train_episodes, test_episodes, eval_cfg.context_steps, eval_cfg.horizons, eval_cfg.ce_samples, seed
    )


def training_episodes(cfg: Config, run_dir: Path, tokenizer_path: Path, behaviour: Any, seed: int) -> tuple[list[Episode], str]:
    """(episodes to fit the baselines on, where they came from)."""
    replay_dir = Path(run_dir) / "replay"
    if (replay_dir / "meta.json").is_file():
        episodes = replay_episodes(replay_dir, BASELINE_FIT_STEPS, accepted_fingerprints=resume_fingerprints(cfg))
        if episodes:
            return episodes, f"replay ({total_steps(episodes)} training steps in {replay_dir})"
    n = FALLBACK_TRAIN_EPISODES_PER_TEST_EPISODE * cfg.eval.episodes
    log.warning("eval: no replay data in %s; fitting the baselines on %d fresh %s-split episodes instead", replay_dir, n, cfg.env.split)
    played = play_in_env(cfg, run_dir, tokenizer_path, behaviour, n, seed + 1, False, cfg.env.split, "baseline episodes")
    return played.episodes, f"{n} fresh {cfg.env.split}-split episodes (no replay in {replay_dir})"


def warn_uncovered_horizons(result: Mapping[str, Any], context: int) -> None:
    for h, value in result["ce_by_horizon"].items():
        if value is None:
            log.warning("eval: ce_by_horizon[%s] is null: no test episode has the %d steps (C=%d + h) it needs", h, context + int(h), context)
