"""Run the configured stages in order inside one run.dir and one MLflow run."""

from __future__ import annotations

import logging
import sys
import time
from datetime import datetime
from pathlib import Path

from audiodream.config.loader import save_config
from audiodream.config.schema import Config
from audiodream.errors import UserFacingError
from audiodream.pipeline.launch_clock import launch_running
from audiodream.pipeline.stages import STAGES, is_done, mark_done
from audiodream.tracking import Tracker

log = logging.getLogger("audiodream")


def resolve_run_dir(cfg: Config) -> Path:
    if cfg.run.dir:
        return Path(cfg.run.dir).expanduser()
    name = "+".join(cfg.config_names) or "defaults"
    return Path("runs") / f"{name}-{datetime.now():%Y%m%d-%H%M%S}"


def setup_logging(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        if getattr(handler, "_audiodream", False):
            root.removeHandler(handler)
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(run_dir / "launch.log")):
        handler.setFormatter(fmt)
        handler._audiodream = True  # type: ignore[attr-defined]
        root.addHandler(handler)


def start_tracker(cfg: Config, run_dir: Path) -> Tracker:
    if not cfg.mlflow.enabled:
        return Tracker.disabled()
    tracker = Tracker.start(run_dir, cfg.mlflow.tracking_uri, cfg.mlflow.experiment, run_dir.name)
    from audiodream.config.loader import config_to_dict

    tracker.log_params(config_to_dict(cfg))
    return tracker


def run_pipeline(cfg: Config) -> int:
    """Returns the process exit code."""
    with launch_running():  # the clock of dreamer.train_until_s starts here
        return _launch(cfg)


def _launch(cfg: Config) -> int:
    run_dir = resolve_run_dir(cfg)
    cfg.run.dir = str(run_dir)
    setup_logging(run_dir)
    save_config(cfg, run_dir / "config.yaml")
    log.info("run dir: %s", run_dir.resolve())
    tracker = start_tracker(cfg, run_dir)
    status = "FAILED"
    try:
        _run_stages(cfg, run_dir, tracker)
        status = "FINISHED"
    except UserFacingError as err:
        log.error("stage failed: %s", err)
        print(f"launch.py: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        status = "KILLED"
        log.warning("interrupted; outputs so far are in %s", run_dir)
        return 130
    finally:
        tracker.set_terminated(status)
    print_results(cfg, run_dir, tracker)
    return 0


def _run_stages(cfg: Config, run_dir: Path, tracker: Tracker) -> None:
    """Each configured stage in order, reusing those whose outputs match this config."""
    for name in cfg.run.stages:
        stage = STAGES[name]
        if not stage.is_available():
            log.warning(
                "stage '%s' is not part of this version of audiodream yet; stopping after the stages before it. "
                "Results so far are in %s",
                name,
                run_dir,
            )
            break
        if is_done(cfg, run_dir, stage):
            log.info("stage %s: outputs in %s match this config; reusing them", name, run_dir / name)
            continue
        log.info("stage %s: starting", name)
        started = time.perf_counter()
        stage.load()(cfg, run_dir, tracker)
        seconds = time.perf_counter() - started
        mark_done(cfg, run_dir, stage, seconds)
        tracker.log_metrics({f"stage_seconds.{name}": seconds}, step=0)
        log.info("stage %s: done in %.1f s", name, seconds)


def print_results(cfg: Config, run_dir: Path, tracker: Tracker) -> None:
    lines = [f"results: {run_dir.resolve()}"]
    if tracker.enabled:
        lines.append(f"MLflow: {tracker.tracking_uri} (run {tracker.run_id})")
        lines.append(f"  view it with: mlflow ui --backend-store-uri {tracker.tracking_uri} --host 127.0.0.1")
    print("\n".join(lines))
