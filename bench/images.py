"""Images out, checked from the pixels: image prompt → PNG → pixel analyser.

For ``--stills`` (100) random scenes of the synthetic world (1 to 3 objects; seeds of the test split), the
kind of image prompt the model writes ("A green square and two red circles on a white background": colours,
shapes, background, no motion) is drawn by ``render_image_prompt`` with the offline "synthetic" image
backend at 256x256, saved as a PNG, read back, and checked with ``gpt4video.evaluation.pixels.analyze_clip``:
the PNG shows exactly the prompt's objects (colour and shape, one each). Also the median time per image,
drawing and writing the PNG. (What a model makes of picture requests, in held-out phrasings, is measured by
``gpt4video eval``: docs/evaluation.md.)

Usage::

    .venv/bin/python bench/images.py [--stills 100] [--json PATH]

Progress goes to stderr, the Markdown tables to stdout. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import log, markdown_table  # noqa: E402

SIZE = 256
_NUMBERS = {1: "a", 2: "two", 3: "three"}


def image_prompt(objects: list[tuple[str, str]], background: str) -> str:
    """"A green square and two red circles on a white background" for ``[(colour, shape), ...]``."""
    counts: dict[tuple[str, str], int] = {}
    for pair in objects:
        counts[pair] = counts.get(pair, 0) + 1
    phrases = [f"{_NUMBERS[n]} {colour} {shape}{'s' if n > 1 else ''}" for (colour, shape), n in counts.items()]
    if phrases[0].startswith("a ") and phrases[0].split()[1][0] in "aeiou":
        phrases[0] = "an " + phrases[0][2:]
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return f"{listed[0].upper()}{listed[1:]} on {background}."


def read_png(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def shows(pixels: np.ndarray, objects: list[tuple[str, str]]) -> tuple[bool, list[list[str]]]:
    """Whether the pixel analyser finds exactly ``objects`` (colour, shape) in the image, and what it found."""
    from gpt4video.evaluation.pixels import analyze_clip

    found = [[o.color, o.shape] for o in analyze_clip(pixels)]
    return sorted(map(tuple, found)) == sorted(objects), found


# ------------------------------------------------------------------------------------------------


def stills(n: int, out_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from gpt4video.data.synthetic import sample_scene
    from gpt4video.data.synthetic.scenes import split_seeds
    from gpt4video.generators import build_image_generator
    from gpt4video.pipeline import GenerationSettings, render_image_prompt

    settings = GenerationSettings(None, image_generator=build_image_generator("synthetic"), image_size=SIZE)
    rows, seconds = [], []
    for i, seed in enumerate(split_seeds("test", n)):
        scene = sample_scene(seed)
        objects = [(o.color, o.shape) for o in scene.objects]
        prompt = image_prompt(objects, scene.background.phrase())
        settings.image_seed = i
        start = time.perf_counter()
        rendered = render_image_prompt(prompt, settings, None)
        image = rendered.image.save(out_dir) if rendered.image is not None else None
        seconds.append(time.perf_counter() - start)
        right, found = shows(read_png(image.path), objects) if image is not None else (False, [])
        rows.append({"prompt": prompt, "objects": objects, "error": rendered.error, "right": right, "found": found})
        if not right:
            log(f"still {i}: {prompt!r} -> {found} {rendered.error or ''}")
    summary = {"stills": n, "size": SIZE, "right": sum(r["right"] for r in rows),
               "median_seconds": statistics.median(seconds)}
    return summary, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stills", type=int, default=100, help="random scenes to draw and check (default 100)")
    parser.add_argument("--json", help="write every prompt and detection to this file")
    args = parser.parse_args()
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gpt4video-images-") as tmp:
        summary, rows = stills(args.stills, Path(tmp))
        report["stills"] = {**summary, "rows": rows}
        print(markdown_table(["renderer check", "result"], [
            [f"PNG shows exactly the prompt's objects (pixel analyser), {SIZE}x{SIZE}",
             f"{summary['right']} / {summary['stills']}"],
            ["time per image, drawing and writing the PNG (median)", f"{summary['median_seconds'] * 1000:.1f} ms"],
        ]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
