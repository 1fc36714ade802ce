"""run.dir/dreamer/metrics.jsonl (one JSON object per row) and the same rows to MLflow.

In MLflow the same metrics are named `dreamer.<key>` (other stages log names such as
`return_mean` too), with the row's `step` as the MLflow step.

On resume, rows logged after the checkpoint the run resumes from are dropped: those
updates are redone, and `step` then keeps growing through the file.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

from audiodream.tracking import Tracker

METRICS_FILE = "metrics.jsonl"
# DESIGN.md promises MLflow the same metric names as metrics.jsonl; eval logs under "eval.*".
MLFLOW_PREFIX = ""


def _json_value(value: Any) -> Any:
    """JSON has no NaN/inf: a metric that is not a finite number is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_jsonl_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl file; a last line cut short by a kill is skipped."""
    rows = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
    return rows


class MetricsLog:
    def __init__(self, path: Path, tracker: Tracker) -> None:
        self.path = Path(path)
        self.tracker = tracker
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def rows(self) -> list[dict[str, Any]]:
        return read_jsonl_rows(self.path) if self.path.is_file() else []

    def truncate_after(self, step: int) -> None:
        """Keep only rows up to `step` (atomically)."""
        if not self.path.is_file():
            return
        kept = [row for row in self.rows() if int(row.get("step", 0)) <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in kept))
        os.replace(tmp, self.path)

    def write(self, row: Mapping[str, Any]) -> None:
        clean = {key: _json_value(value) for key, value in row.items()}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(clean) + "\n")
        numbers = {f"{MLFLOW_PREFIX}{k}": v for k, v in clean.items() if v is not None and k != "step"}
        self.tracker.log_metrics(numbers, step=int(row["step"]))
