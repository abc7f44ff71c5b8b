"""Images out, checked from the pixels: image prompt → PNG → pixel analyser.

1. **The offline renderer** (always): for ``--stills`` (100) random scenes of the synthetic world (1 to 3
   objects; seeds of the test split), the image prompt the model is taught to write ("A green square and
   two red circles on a white background": colours, shapes, background, no motion) is drawn by
   ``render_image_prompt`` with the "synthetic" image backend at 256x256, saved as a PNG, read back, and
   checked with ``gpt4video.evaluation.pixels.analyze_clip``: the PNG shows exactly the prompt's objects
   (colour and shape, one each). Also the median time per image, drawing and writing the PNG.
2. **The model** (with ``--model``): ``--n`` (100) picture requests of one object (colour and shape drawn from
   a fixed seed), each phrased with one of :data:`REQUEST_FRAMES`, and ``--questions`` (50) ordinary
   questions about fresh synthetic clips. Reported: requests whose reply wrote an ``<image_prompt>``, requests
   whose PNG shows the requested colour and shape (pixel analyser), and ordinary questions that produced an
   image. :data:`REQUEST_FRAMES` were written for this script; check that the stage-2 data does not use them
   before calling them unseen phrasings.

Usage::

    .venv/bin/python bench/images.py [--stills 100] [--model smol --n 100 --questions 50] [--json PATH]

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

#: How the requests of part 2 ask for a picture; ``{np}`` is "a green square".
REQUEST_FRAMES = (
    "Draw a picture of {np}.",
    "Can you make an image of {np}?",
    "I'd like a still image showing {np}.",
    "Paint {np} for me.",
    "Show me a picture with {np} in it.",
    "Please generate an image of {np}.",
    "Could you sketch {np}?",
    "Make me a drawing of {np}.",
    "Create a still picture of {np}.",
    "I want an illustration of {np}.",
)
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
# 1. The offline renderer


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


# ------------------------------------------------------------------------------------------------
# 2. The model


def model_requests(model: str, n: int, n_questions: int, out_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from gpt4video.data.synthetic import sample_scene
    from gpt4video.data.synthetic.qa import questions
    from gpt4video.data.synthetic.render import write_clip
    from gpt4video.data.synthetic.scenes import split_seeds
    from gpt4video.data.synthetic.vocabulary import COLORS, SHAPES
    from gpt4video.engines import GenerationParams
    from gpt4video.generators import build_image_generator
    from gpt4video.pipeline import Assistant, GenerationSettings

    settings = GenerationSettings(None, image_generator=build_image_generator("synthetic"), image_size=SIZE,
                                  image_seed=0)
    assistant = Assistant.from_pretrained(model, generation=settings)
    params = GenerationParams(max_new_tokens=64)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        colour, shape = str(rng.choice(COLORS)), str(rng.choice(SHAPES))
        request = REQUEST_FRAMES[i % len(REQUEST_FRAMES)].format(np=f"{'an' if colour[0] in 'aeiou' else 'a'} {colour} {shape}")
        assistant.reset()
        reply = assistant.ask(request, (), params).consume()
        right, found = False, []
        if reply.generated_images:
            image = reply.generated_images[0].save(out_dir)
            right, found = shows(read_png(image.path), [(colour, shape)])
        rows.append({"kind": "request", "request": request, "reply": reply.raw_text,
                     "image_prompts": reply.image_prompts, "right": right, "found": found})
        log(f"request {i + 1}/{n}: {request!r} -> {reply.image_prompts} {'ok' if right else ''}")
    for i, seed in enumerate(split_seeds("test", 10_000 + n_questions)[10_000:]):  # past the evaluated clips
        scene = sample_scene(seed)
        clip = write_clip(scene, out_dir / f"question-{seed}.mp4")
        question = questions(scene, seed)[0].question
        assistant.reset()
        reply = assistant.ask(question, [clip], params).consume()
        rows.append({"kind": "question", "request": question, "reply": reply.raw_text,
                     "image_prompts": reply.image_prompts, "video_prompts": reply.video_prompts})
        log(f"question {i + 1}/{n_questions}: {question!r} -> images {len(reply.image_prompts)}")
    requests = [r for r in rows if r["kind"] == "request"]
    ordinary = [r for r in rows if r["kind"] == "question"]
    summary = {"model": model, "requests": n, "prompt_written": sum(bool(r["image_prompts"]) for r in requests),
               "right": sum(r["right"] for r in requests), "questions": n_questions,
               "questions_with_image": sum(bool(r["image_prompts"]) for r in ordinary)}
    return summary, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stills", type=int, default=100, help="random scenes for the renderer check (default 100)")
    parser.add_argument("--model", help="also ask this model (a preset such as smol, or a directory)")
    parser.add_argument("--n", type=int, default=100, help="picture requests asked of the model (default 100)")
    parser.add_argument("--questions", type=int, default=50, help="ordinary questions asked of the model (default 50)")
    parser.add_argument("--json", help="write every prompt, reply and detection to this file")
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
        if args.model:
            summary, rows = model_requests(args.model, args.n, args.questions, Path(tmp))
            report["model"] = {**summary, "rows": rows}
            print()
            print(markdown_table([f"model {args.model}", "result"], [
                ["picture requests whose reply wrote an image prompt", f"{summary['prompt_written']} / {summary['requests']}"],
                ["picture requests whose PNG shows the requested colour and shape",
                 f"{summary['right']} / {summary['requests']}"],
                ["ordinary questions that produced an image", f"{summary['questions_with_image']} / {summary['questions']}"],
            ]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
