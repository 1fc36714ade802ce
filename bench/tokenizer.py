#!/usr/bin/env python
"""Tokenizer throughput: seconds of audio encoded / decoded per second of wall time, as JSON.

    python bench/tokenizer.py --out bench/out/tokenizer.json [--checkpoint RUN/tokenizer/checkpoint.pt]

Measured on CPU, and on CUDA when present, for two batch sizes: `batch_chunks` env steps
at once (throughput, e.g. tokenising a corpus) and `--env-batch` (default 8 = env.num_envs,
what an env worker tokenises per vector-env step). Throughput does not depend on the
weights, so without --checkpoint a freshly initialised default-config tokenizer is timed.
A realtime factor of 100 means 100 s of audio per second.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiodream.config import load_config  # noqa: E402
from audiodream.tokenizer import Tokenizer  # noqa: E402


def timed(fn: Callable[[], object], device: torch.device, min_seconds: float) -> float:
    """Mean seconds per call, repeating until at least `min_seconds` have passed (after one warm-up)."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    calls, started = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return elapsed / calls


def measure(model: Tokenizer, device: torch.device, batch_chunks: int, min_seconds: float) -> dict[str, float]:
    model = model.to(device)
    chunks = torch.randn(batch_chunks, model.n_mels, model.chunk_frames, device=device)
    tokens = model.encode_chunks(chunks)
    audio_seconds = batch_chunks * model.chunk_frames / model.geometry.frames_per_second
    encode_s = timed(lambda: model.encode_chunks(chunks), device, min_seconds)
    decode_s = timed(lambda: model.decode_chunks(tokens), device, min_seconds)
    return {
        "batch_chunks": batch_chunks,
        "audio_seconds_per_batch": audio_seconds,
        "encode_realtime_factor": audio_seconds / encode_s,
        "decode_realtime_factor": audio_seconds / decode_s,
        "encode_ms_per_batch": 1000 * encode_s,
        "decode_ms_per_batch": 1000 * decode_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--checkpoint", type=Path, default=None, help="tokenizer checkpoint (default: untrained default config)")
    parser.add_argument("--batch-chunks", type=int, default=512, help="chunks (env steps) per call for the throughput figure")
    parser.add_argument("--env-batch", type=int, default=8, help="chunks per call for the env-worker figure")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="time each measurement for at least this long")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.checkpoint is not None:
        model = Tokenizer.load(args.checkpoint)
    else:
        cfg = load_config([])
        torch.manual_seed(0)
        model = Tokenizer.from_config(cfg.tokenizer, cfg.features, cfg.env.chunk_frames)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    result: dict[str, object] = {
        "checkpoint": str(args.checkpoint) if args.checkpoint else None,
        "tokens_per_step": model.tokens_per_step,
        "tokens_per_second": model.tokens_per_second,
        "cpu_threads": args.threads,
        "machine": platform.processor() or platform.machine(),
    }
    for device in devices:
        name = device.type
        if device.type == "cuda":
            result["cuda_device"] = torch.cuda.get_device_name(device)
        throughput = measure(model, device, args.batch_chunks, args.min_seconds)
        result[name] = {**throughput, "env_batch": measure(model, device, args.env_batch, args.min_seconds)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
