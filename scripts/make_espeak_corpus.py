#!/usr/bin/env python
"""Make a small `folder` corpus of espeak-ng speech: one subfolder per voice ("speaker").

Why: the tokenizer is trained on the built-in synthetic syllable corpus, and we want to
know whether it also reconstructs speech it has never seen. With no network there are no
recordings to download, so espeak-ng (a formant synthesiser of a different family than
ours, speaking real English sentences with real prosody) stands in for unseen speech.
Several voices x speeds x pitches give the >= 3 speakers the data stage's speaker-disjoint
split needs.

Needs the espeak-ng binary (Debian: `apt-get install -y espeak-ng`). Not run by CI.

    python scripts/make_espeak_corpus.py OUT_DIR [--sentences N]
    python launch.py run.stages=[data,tokenizer] data.source=folder data.path=OUT_DIR \
        tokenizer.steps=0 tokenizer.init=RUN/tokenizer/checkpoint.pt run.dir=...
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

SENTENCES: tuple[str, ...] = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.",
)

# (speaker folder, espeak-ng voice, words per minute, pitch 0-99, gap between words in 10 ms units)
VOICES: tuple[tuple[str, str, int, int, int], ...] = (
    ("us_male_slow", "en-us+m3", 130, 35, 2),
    ("gb_female", "en-gb+f2", 165, 65, 0),
    ("us_female_high", "en-us+f4", 150, 80, 1),
    ("scot_male_fast", "en-gb-scotland+m1", 195, 30, 0),
    ("caribbean_klatt", "en-029+klatt2", 160, 50, 1),
    ("rp_female_slow", "en-gb-x-rp+f3", 120, 55, 3),
)


def synthesize(text: str, voice: str, speed: int, pitch: int, word_gap: int, out: Path) -> None:
    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-g", str(word_gap), "-w", str(out), text]
    result = subprocess.run(cmd, capture_output=True, text=True)
    # espeak-ng exits 0 even on a bad option or voice, so check that it wrote audio.
    if result.returncode != 0 or not out.is_file() or out.stat().st_size <= 44:
        raise RuntimeError(f"espeak-ng wrote no audio to {out} ({' '.join(cmd)}): {result.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="corpus folder to create (one subfolder per voice)")
    parser.add_argument("--sentences", type=int, default=len(SENTENCES), help="sentences per voice")
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print("espeak-ng not found; install it (Debian: apt-get install -y espeak-ng)", file=sys.stderr)
        return 1
    count = 0
    for v, (speaker, voice, speed, pitch, word_gap) in enumerate(VOICES):
        folder = args.out / speaker
        folder.mkdir(parents=True, exist_ok=True)
        # Rotate the sentence list per voice so speakers do not all say the same first lines.
        for i in range(args.sentences):
            text = SENTENCES[(i + 3 * v) % len(SENTENCES)]
            synthesize(text, voice, speed, pitch, word_gap, folder / f"{speaker}_{i:03d}.wav")
            count += 1
    print(f"wrote {count} utterances by {len(VOICES)} voices under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
