"""The `dreamer` stage: Dreamer trained by Ray actors on the run's tokenizer and env."""

from __future__ import annotations

import logging
from pathlib import Path

from audiodream.config.schema import Config
from audiodream.dreamer.parts import AudioDreamerParts
from audiodream.dreamer.run import DreamerRun
from audiodream.tracking import Tracker

log = logging.getLogger(__name__)


def dreamer_stage(cfg: Config, run_dir: Path, tracker: Tracker) -> None:
    parts = AudioDreamerParts.from_run(cfg, Path(run_dir))
    summary = DreamerRun(cfg, Path(run_dir), tracker, parts).run()
    log.info(
        "dreamer: %d updates, %d env steps, replay %d steps at %d bytes per step%s",
        summary.step,
        summary.env_steps,
        summary.replay_steps,
        summary.replay_bytes_per_step,
        f" (resumed from update {summary.resumed_from_step})" if summary.resumed_from_step is not None else "",
    )
