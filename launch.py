#!/usr/bin/env python
"""audiodream command line: parse, validate the config, hand over to the library."""

from __future__ import annotations

import argparse
import sys

from audiodream.config import STAGES, ConfigError, load_config
from audiodream.config.loader import available_configs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="launch.py",
        description="Train and evaluate world models on audio.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            f"configs (configs/NAME.yaml): {', '.join(available_configs())}\n"
            f"stages (run.stages, in this order): {', '.join(STAGES)}\n"
            "overrides: dotted keys with YAML values, e.g. dreamer.train_steps=200 "
            "ray.num_workers=2 run.stages=[data,tokenizer] run.dir=runs/try1\n"
            "every key and its default: configs/defaults.yaml"
        ),
    )
    parser.add_argument("--config", action="append", default=[], metavar="NAME", help="config to merge over the defaults (repeatable, in order)")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"launch.py: config error: {err}", file=sys.stderr)
        return 2
    from audiodream.pipeline.runner import run_pipeline

    return run_pipeline(cfg)


if __name__ == "__main__":
    sys.exit(main())
