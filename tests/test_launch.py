"""The command line end to end on the data stage: files, splits, determinism, reuse."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict

import pytest
import yaml

from audiodream.config import load_config
from audiodream.data.manifest import read_manifest
from audiodream.pipeline.launch_clock import launch_running, launch_started
from audiodream.pipeline.stages import DATA_KEYS, RUNTIME_KEYS, STAGES, fingerprint, is_done, mark_done
from tests.conftest import REPO

TINY = ["data.synthetic.n_speakers=5", "data.synthetic.utterances_per_speaker=3", "data.num_workers=1", "mlflow.enabled=false"]


def launch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "launch.py", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_data_stage_writes_config_and_a_deterministic_speaker_disjoint_manifest(tmp_path):
    runs = []
    for name in ("a", "b"):
        run_dir = tmp_path / name
        result = launch("--config", "dreamer_audio", "run.stages=[data]", f"run.dir={run_dir}", *TINY)
        assert result.returncode == 0, result.stderr[-2000:]
        assert str(run_dir) in result.stdout  # tells the user where the results are
        runs.append(run_dir)
    config = yaml.safe_load((runs[0] / "config.yaml").read_text())
    assert config["run"]["stages"] == ["data"] and config["data"]["synthetic"]["n_speakers"] == 5
    assert config["config_names"] == ["dreamer_audio"]
    manifests = [read_manifest(r / "data" / "manifest.csv") for r in runs]
    # Same config, same corpus and split, clip for clip (paths differ only by run dir).
    keyed = [[(row.speaker, row.split, row.duration_s, row.extra["syllables"]) for row in m] for m in manifests]
    assert keyed[0] == keyed[1] and len(keyed[0]) == 15
    speakers_by_split = defaultdict(set)
    for row in manifests[0]:
        speakers_by_split[row.split].add(row.speaker)
    assert set(speakers_by_split) == {"train", "val", "test"}
    splits = list(speakers_by_split.values())
    assert all(not (a & b) for i, a in enumerate(splits) for b in splits[i + 1 :])


def test_rerun_reuses_a_finished_stage_and_recomputes_after_a_relevant_change(tmp_path):
    run_dir = tmp_path / "run"
    args = ["--config", "dreamer_audio", "run.stages=[data]", f"run.dir={run_dir}", *TINY]
    assert launch(*args).returncode == 0
    manifest = run_dir / "data" / "manifest.csv"
    first_mtime = manifest.stat().st_mtime_ns
    again = launch(*args)
    assert again.returncode == 0 and "reusing" in again.stderr
    assert manifest.stat().st_mtime_ns == first_mtime
    # How the stage runs is not what it makes: other worker processes or Griffin-Lim settings
    # reuse it, and so do markers stamped the ways earlier versions did (runtime keys, and
    # then the Griffin-Lim settings, hashed too).
    other_machine = launch(*args, "data.num_workers=2", "features.griffin_lim_iters=8")
    assert other_machine.returncode == 0 and "reusing" in other_machine.stderr
    marker = run_dir / "data" / "stage.json"
    for left_out in (RUNTIME_KEYS, ()):
        earlier = fingerprint(load_config(["dreamer_audio"], args[2:]), DATA_KEYS, left_out=left_out)
        marker.write_text(json.dumps({**json.loads(marker.read_text()), "fingerprint": earlier}))
        older_marker = launch(*args)
        assert older_marker.returncode == 0 and "reusing" in older_marker.stderr
    assert manifest.stat().st_mtime_ns == first_mtime
    changed = launch(*args[:-1], "data.min_duration_s=0.6", "mlflow.enabled=false")
    assert changed.returncode == 0 and "reusing" not in changed.stderr
    assert manifest.stat().st_mtime_ns != first_mtime


def test_griffin_lim_settings_count_only_for_stages_that_render_sound(tmp_path):
    made = load_config(["dreamer_audio"], [])
    for name in ("data", "tokenizer", "dreamer", "eval"):
        mark_done(made, tmp_path, STAGES[name], 1.0)
    for key, value in (("features.griffin_lim_iters", "8"), ("features.griffin_lim_momentum", "0.5")):
        rendered_otherwise = load_config(["dreamer_audio"], [f"{key}={value}"])
        assert [is_done(rendered_otherwise, tmp_path, STAGES[n]) for n in ("data", "tokenizer", "dreamer", "eval")] == [True, True, True, False]
    featurised_otherwise = load_config(["dreamer_audio"], ["features.n_mels=64"])
    assert not any(is_done(featurised_otherwise, tmp_path, STAGES[n]) for n in ("data", "tokenizer", "dreamer", "eval"))


def test_a_bad_corpus_path_is_one_clear_line_and_exit_2(tmp_path):
    missing = tmp_path / "no_such_corpus"
    result = launch("run.stages=[data]", f"run.dir={tmp_path / 'run'}", "data.source=folder", f"data.path={missing}", "mlflow.enabled=false")
    assert result.returncode == 2
    assert str(missing) in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_launch_clock_runs_only_while_a_launch_does():
    """dreamer.train_until_s counts from the launch's start; outside a launch there is none to count from."""
    assert launch_started() is None
    before = time.perf_counter()
    with pytest.raises(RuntimeError):
        with launch_running():
            started = launch_started()
            assert started is not None and before <= started <= time.perf_counter()
            raise RuntimeError("a stage failed")
    assert launch_started() is None
