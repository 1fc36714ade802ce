"""MLflow tracking: one MLflow run per run.dir, reachable from any process.

`Tracker` holds only the tracking URI and the run id and talks through `MlflowClient`
(not the fluent, process-global API), so it pickles into Ray actors and the learner
logs to the same run as the driver. A resumed run.dir continues its MLflow run.

Default store: `sqlite:///<parent of run.dir>/mlflow.db` with the run's artifacts
inside run.dir (`run.dir/mlflow-artifacts/`), as DESIGN.md promises. MLflow places
artifacts per experiment, not per run, so for that embedded store only we point the
new run's artifact URI at run.dir right after creating it (one row of the store we own).
With any other tracking URI the server's own artifact store is used.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

log = logging.getLogger(__name__)

RUN_ID_FILE = "mlflow_run_id"


def default_tracking_uri(run_dir: Path) -> str:
    return f"sqlite:///{(Path(run_dir).resolve().parent / 'mlflow.db')}"


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


@dataclass
class Tracker:
    """A handle on one MLflow run; `enabled=False` makes every call a no-op."""

    tracking_uri: str = ""
    run_id: str = ""
    enabled: bool = False

    @classmethod
    def disabled(cls) -> "Tracker":
        return cls()

    @classmethod
    def start(cls, run_dir: Path, tracking_uri: str | None, experiment: str, run_name: str) -> "Tracker":
        """Open (or, for a resumed run.dir, reopen) the MLflow run of `run_dir`."""
        from mlflow.tracking import MlflowClient

        run_dir = Path(run_dir)
        uri = tracking_uri or default_tracking_uri(run_dir)
        client = MlflowClient(tracking_uri=uri)
        id_file = run_dir / RUN_ID_FILE
        if id_file.is_file():
            run_id = id_file.read_text().strip()
            try:
                client.get_run(run_id)
                client.update_run(run_id, status="RUNNING")
                return cls(uri, run_id, True)
            except Exception:  # store moved or wiped: start a fresh run
                log.warning("MLflow run %s not found in %s; starting a new one", run_id, uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        run = client.create_run(experiment_id, run_name=run_name)
        if uri.startswith("sqlite:///") and tracking_uri is None:
            _move_artifacts_into_run_dir(uri, run.info.run_id, run_dir / "mlflow-artifacts")
        id_file.parent.mkdir(parents=True, exist_ok=True)
        id_file.write_text(run.info.run_id)
        return cls(uri, run.info.run_id, True)

    def _client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Param

        flat = flatten(params)
        items = [Param(k, str(v)[:6000]) for k, v in flat.items()]
        client = self._client()
        existing = client.get_run(self.run_id).data.params
        items = [p for p in items if p.key not in existing]  # params are immutable in MLflow
        for start in range(0, len(items), 100):
            client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Metric
        import time

        now = int(time.time() * 1000)
        items = [
            Metric(k, float(v), now, int(step))
            for k, v in flatten(metrics).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
        ]
        for start in range(0, len(items), 500):
            self._client().log_batch(self.run_id, metrics=items[start : start + 500])

    def log_artifacts(self, paths: Iterable[Path], artifact_path: str | None = None) -> None:
        if not self.enabled:
            return
        client = self._client()
        for path in paths:
            path = Path(path)
            if path.is_dir():
                client.log_artifacts(self.run_id, str(path), artifact_path)
            elif path.is_file():
                client.log_artifact(self.run_id, str(path), artifact_path)

    def set_terminated(self, status: str = "FINISHED") -> None:
        if self.enabled:
            self._client().set_terminated(self.run_id, status=status)


def _move_artifacts_into_run_dir(uri: str, run_id: str, artifact_dir: Path) -> None:
    db_path = uri[len("sqlite:///") :]
    artifact_dir.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE runs SET artifact_uri = ? WHERE run_uuid = ?", (artifact_dir.resolve().as_uri(), run_id))
