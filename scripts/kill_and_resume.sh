#!/usr/bin/env bash
# Shows that a Dreamer run killed with SIGKILL resumes: same command, same run.dir.
#
#   scripts/kill_and_resume.sh [RUN_DIR] [key=value ...]
#
# 1. starts `launch.py` (small sizes, stages data, tokenizer, dreamer) in the background;
# 2. once dreamer/checkpoint.pt exists and a few more metrics rows are written, kills the
#    launch process with SIGKILL (no chance to clean up or checkpoint);
# 3. prints the checkpoint's update count and the replay persisted in run.dir/replay/;
# 4. re-runs the identical command and shows that it resumes from that update with that
#    replay (the log says so), and that `step` keeps growing in dreamer/metrics.jsonl.
# Takes a few minutes on a 2-core machine. Extra key=value arguments go to both runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
RUN_DIR=${1:-/tmp/audiodream-kill-demo}
shift || true
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR"

ARGS=(
  run.dir="$RUN_DIR" run.stages=[data,tokenizer,dreamer] run.progress=false
  data.synthetic.n_speakers=6 data.synthetic.utterances_per_speaker=4
  tokenizer.steps=30 tokenizer.eval_every=30 tokenizer.hidden=32
  dreamer.deter=64 dreamer.embed=64 dreamer.hidden=64 dreamer.stoch=8 dreamer.classes=8 dreamer.imag_horizon=5
  dreamer.batch_size=8 dreamer.seq_len=16 dreamer.prefill_steps=300 dreamer.train_ratio=16
  dreamer.train_steps=600 dreamer.log_every=10 dreamer.checkpoint_every=50
  env.num_envs=8 env.kwargs.voices=4 env.kwargs.takes=1
  "$@"
)

state() {  # "<checkpoint update> <replay steps stored> <env steps collected>"
  "$PYTHON" - "$RUN_DIR" <<'EOF'
import sys
from pathlib import Path
import numpy as np
from audiodream.dreamer.checkpoint import load_checkpoint
run = Path(sys.argv[1])
step = load_checkpoint(run / "dreamer" / "checkpoint.pt")["step"]
files = sorted((run / "replay").glob("chunk-*.npz"))
stored = sum(len(np.load(f)["actions"]) for f in files)
collected = int(np.load(files[-1])["total_added"]) if files else 0
print(step, stored, collected)
EOF
}

echo "== first run (will be killed with SIGKILL) =="
"$PYTHON" launch.py "${ARGS[@]}" > "$RUN_DIR/first.log" 2>&1 &
LAUNCH_PID=$!
until [ -f "$RUN_DIR/dreamer/checkpoint.pt" ] && [ "$(wc -l < "$RUN_DIR/dreamer/metrics.jsonl")" -ge 8 ]; do
  if ! kill -0 "$LAUNCH_PID" 2>/dev/null; then echo "the first run ended before it could be killed:"; tail -20 "$RUN_DIR/first.log"; exit 1; fi
  sleep 1
done
kill -9 "$LAUNCH_PID"
wait "$LAUNCH_PID" 2>/dev/null || true
sleep 5  # Ray's own processes notice their driver is gone
read -r STEP STORED COLLECTED < <(state)
echo "killed: last checkpoint at update $STEP; replay on disk: $STORED steps stored, $COLLECTED env steps collected"
echo "metrics rows written before the kill: $(wc -l < "$RUN_DIR/dreamer/metrics.jsonl") (last step $(tail -1 "$RUN_DIR/dreamer/metrics.jsonl" | "$PYTHON" -c 'import json,sys; print(json.loads(sys.stdin.read())["step"])'))"

echo "== same command again =="
"$PYTHON" launch.py "${ARGS[@]}" > "$RUN_DIR/second.log" 2>&1
grep -E "resuming" "$RUN_DIR/second.log"
read -r STEP2 STORED2 COLLECTED2 < <(state)
echo "finished: update $STEP2; replay $STORED2 steps stored, $COLLECTED2 env steps collected"
"$PYTHON" - "$RUN_DIR" "$STEP" "$STORED" <<'EOF'
import json, sys
from pathlib import Path
run, step, stored = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
log = (run / "second.log").read_text()
rows = [json.loads(line) for line in (run / "dreamer" / "metrics.jsonl").read_text().splitlines()]
steps = [r["step"] for r in rows]
assert f"resuming from update {step} " in log, "the rerun did not resume from the checkpoint"
assert f"replay: resuming with {stored} stored steps" in log, "the rerun did not resume with the persisted replay"
assert steps == sorted(set(steps)), f"metrics steps not strictly growing: {steps}"
print(f"OK: resumed from update {step} with {stored} replay steps; metrics steps {steps[0]}..{steps[-1]} strictly growing")
EOF
