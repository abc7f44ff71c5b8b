"""Latency of the safety checks on this machine (the input checks' budget: ≤ 50 ms per request).

Prints a Markdown table of median milliseconds (models loaded once, before timing):

1. text checks of one user message: ``profanity``, ``harmful_request`` and both through
   ``SafetyPolicy.check_input`` (the default input text stage);
2. frame checks of a 4-frame video: ``open_nsfw`` on 448x448 frames (the model's frame size) and on
   1280x720 frames, alone and through ``SafetyPolicy.check_input``;
3. a whole default input check: one message plus one 4-frame 448x448 video.

Usage::

    .venv/bin/python bench/safety_latency.py [--repeats 30] [--threads N] [--json PATH]

The frames are synthetic (smooth colour gradients with shapes: benign, like the project's synthetic
world). Checks run in the calling thread; figures vary when other jobs share the cores (runs slower
than 1.5x the fastest are marked "(noisy)"). Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt_ms, interleaved, log, machine_info, markdown_table  # noqa: E402

MESSAGES = [
    "What is the man holding in his left hand in this video?",
    "Can you make a short video of a red balloon drifting over a city at sunset?",
    "Describe what happens after the dog jumps into the lake, and tell me what breed it might be.",
]
BUDGET_MS = 50.0


def make_frames(num_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8 benign frames: a colour gradient and a moving disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    base = rng.uniform(40, 200, size=3)
    for t in range(num_frames):
        img = np.stack([base[c] + 40 * np.sin(xx / width * 3 + t + c) for c in range(3)], -1)
        cx, cy, r = width * (0.2 + 0.15 * t), height * 0.5, min(height, width) * 0.12
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r**2] = (220, 40, 40)
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from gpt4video.safety import SafetyConfig, SafetyPolicy

    log("loading the checkers ...")
    policy = SafetyPolicy(SafetyConfig()).load()
    profanity, harmful = policy.checker("profanity"), policy.checker("harmful_request")
    nsfw = policy.checker("open_nsfw")
    small, hd = make_frames(4, 448, 448), make_frames(4, 720, 1280)
    counter = {"i": 0}

    def message() -> str:
        counter["i"] += 1
        return MESSAGES[counter["i"] % len(MESSAGES)]

    fns = {
        "text: profanity": lambda: profanity.check_text(message()),
        "text: harmful_request": lambda: harmful.check_text(message()),
        "text: policy input (both)": lambda: policy.check_input(message()),
        "frames: open_nsfw, 4 x 448x448": lambda: nsfw.check_frames(small),
        "frames: open_nsfw, 4 x 1280x720": lambda: nsfw.check_frames(hd),
        "frames: policy input, 4 x 448x448": lambda: policy.check_input(None, [small]),
        "input: message + 4 x 448x448": lambda: policy.check_input(message(), [small]),
    }
    log(f"timing {len(fns)} checks x {args.repeats} (round robin) ...")
    results = interleaved(fns, args.repeats, warmup=3)
    rows, figures = [], {}
    for label, (timing, outs) in results.items():
        ms = timing.median * 1000
        verdict = outs[-1]
        allowed = getattr(verdict, "allowed", None)
        flagged = getattr(verdict, "flagged", None)
        status = ("allowed" if allowed else "refused") if allowed is not None else ("flagged" if flagged else "ok")
        note = " (noisy)" if timing.noisy else ""
        within = "" if not label.startswith(("text: policy", "input")) else ("yes" if ms <= BUDGET_MS else "no")
        rows.append([label, fmt_ms(timing.median) + note, fmt_ms(timing.low), within, status])
        figures[label] = timing.as_dict(scale=1000.0)
    print(markdown_table(["check", "median", "min", f"≤ {BUDGET_MS:.0f} ms", "result"], rows))
    print()
    info = machine_info()
    print(f"torch threads: {torch.get_num_threads()}; load average: {os.getloadavg()}; "
          f"cpu: {info.get('cpu', '?')}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "ms": figures}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
