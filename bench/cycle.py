"""The generation cycle, checked end to end: request → video prompt → rendered video → pixels → caption.

For ``--n`` (100) generation requests of one object (shape, colour, motion drawn from a fixed seed),
each phrased with one of the generation frames of the held-out template family "footage"
(``gpt4video.data.phrasing``), which no training split uses, this script:

(a) asks the model (``Assistant`` with the offline "synthetic" backend writing into ``--out``) and
    records whether it wrote a video prompt, and whether that prompt, read with ``parse_prompt``,
    asks for the requested object;
(b) reads the rendered mp4 back (``load_video(path, num_frames=16)``) and checks from its pixels
    alone that it shows exactly one object of the requested colour, shape and motion ((a) and (b):
    ``gpt4video.evaluation.pixels.check_generation``, which ``gpt4video eval`` uses too);
(c) lets the model watch that video and answer "Describe this video.", and checks that the
    caption mentions the requested colour, shape and motion (word matching);
(d) asks ``--questions`` (50) ordinary questions about videos (rows of the test split's
    ``qa.jsonl``, evenly spread, with their clip) and counts the replies that wrote a video prompt.

Prints a Markdown table (and with ``--json PATH`` writes every request, reply and detection)::

    .venv/bin/python bench/cycle.py [--model smol] [--n 100] [--out runs/cycle] [--json PATH]

Progress goes to stderr. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import log, markdown_table  # noqa: E402

#: The held-out template family whose generation frames phrase the requests. Placeholders: {ger} "a red
#: circle moving left", {rel} "a red circle that moves left", {clause} "a red circle moves left", {bg} where
#: (left empty here).
REQUEST_FAMILY = "footage"

CAPTION_REQUEST = "Describe this video."

#: Words that say each motion in a caption (the world's paraphrases and a few more).
MOTION_WORDS: dict[str, frozenset[str]] = {
    "left": frozenset({"left", "leftward", "leftwards"}),
    "right": frozenset({"right", "rightward", "rightwards"}),
    "up": frozenset({"up", "upward", "upwards", "rises", "rising"}),
    "down": frozenset({"down", "downward", "downwards", "falls", "falling", "drops"}),
    "still": frozenset({"still", "stationary", "motionless", "static", "place", "not"}),
    "grows": frozenset({"grows", "grow", "growing", "bigger", "larger", "expands", "expanding", "enlarges"}),
    "shrinks": frozenset({"shrinks", "shrink", "shrinking", "smaller", "contracts", "contracting"}),
}


# ------------------------------------------------------------------------------------------------
# Requests


def _require(condition: object, message: str) -> None:
    """An assertion that ``python -O`` does not remove."""
    if not condition:
        raise AssertionError(message)


def request_templates() -> tuple[str, ...]:
    """The generation frames of :data:`REQUEST_FAMILY`, a held-out family: the training data never uses it
    (``tests/unit/test_phrasing.py`` checks that no training split's text does)."""
    from gpt4video.data.phrasing import family

    requests = family(REQUEST_FAMILY)
    _require(requests.split == "heldout", f"template family {REQUEST_FAMILY!r} is used in training")
    templates = requests.frames["generate"]
    _require(len(templates) >= 10 and len(set(templates)) == len(templates), "need 10 or more distinct templates")
    return templates


def noun_phrase(color: str, shape: str) -> str:
    words = f"{color} {shape}"
    return ("an " if words[0] in "aeiou" else "a ") + words


def make_requests(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` one-object requests: templates in turn, shape/colour/motion and the motion's wording at random."""
    from gpt4video.data.synthetic import COLORS, MOTION_PHRASES, MOTIONS, SHAPES

    templates = request_templates()
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        shape, color, motion = str(rng.choice(SHAPES)), str(rng.choice(COLORS)), str(rng.choice(MOTIONS))
        phrases = MOTION_PHRASES[motion]
        phrase = phrases[int(rng.integers(len(phrases)))]
        np_ = noun_phrase(color, shape)
        k = i % len(templates)
        text = templates[k].format(
            ger=f"{np_} {phrase.gerund}", rel=f"{np_} that {phrase.singular}", clause=f"{np_} {phrase.singular}", bg="",
        )
        out.append({"index": i, "template": k, "request": text, "shape": shape, "color": color, "motion": motion})
    return out


# ------------------------------------------------------------------------------------------------
# Checks


def caption_mentions(caption: str, shape: str, color: str, motion: str) -> dict[str, bool]:
    """Which of the requested colour, shape and motion a caption mentions (whole words)."""
    words = set(re.findall(r"[a-z]+", caption.lower()))
    return {
        "color": color in words,
        "shape": shape in words or f"{shape}s" in words,
        "motion": bool(words & MOTION_WORDS[motion]),
    }


def pick_questions(qa_path: Path, n: int) -> list[dict[str, Any]]:
    """``n`` rows of a split's qa.jsonl, evenly spread over the file (so over clips and question types)."""
    rows = [json.loads(line) for line in qa_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        sys.exit(f"{qa_path} holds no questions")
    picks = np.linspace(0, len(rows) - 1, min(n, len(rows))).round().astype(int)
    return [rows[i] for i in picks]


def rate(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.1f}%)" if n else f"{k}/0 (n/a)"


# ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smol", help="preset name or saved model directory (default smol)")
    parser.add_argument("--n", type=int, default=100, help="generation requests (default 100)")
    parser.add_argument("--out", default="runs/cycle", help="where the rendered videos go (default runs/cycle)")
    parser.add_argument("--json", metavar="PATH", help="write every figure and record here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the requests and of the renders")
    parser.add_argument("--questions", type=int, default=50, help="ordinary questions for the false-generation check")
    parser.add_argument("--qa", default="data/synth/test/qa.jsonl", help="questions (paths relative to its directory)")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--size", type=int, default=256, help="side of the rendered videos (default 256)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.questions < 0:
        parser.error("--n must be >= 1 and --questions >= 0")

    templates = request_templates()
    qa_path = Path(args.qa)
    if args.questions and not qa_path.is_file():
        sys.exit(f"{qa_path} not found: build the test split first (make data), or pass --qa / --questions 0")

    import torch
    from tqdm.auto import tqdm

    from gpt4video.data.synthetic import ObjectSpec, PromptSpec
    from gpt4video.errors import InputError
    from gpt4video.evaluation.pixels import check_generation
    from gpt4video.generators import build_generator
    from gpt4video.modeling import GenerationParams, GPT4Video
    from gpt4video.pipeline import Assistant, GenerationSettings
    from gpt4video.video import load_video

    if args.threads:
        torch.set_num_threads(args.threads)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    log(f"loading model {args.model!r} ...")
    model = GPT4Video.from_pretrained(args.model)
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    settings = GenerationSettings(build_generator("synthetic"), num_frames=16,
                                  height=args.size, width=args.size)
    generating = Assistant(model, settings)
    watching = Assistant(model)  # no generator: captions and ordinary questions render nothing

    records: list[dict[str, Any]] = []
    for req in tqdm(make_requests(args.n, args.seed), desc="requests", unit="req", file=sys.stderr):
        rec: dict[str, Any] = {**req, "prompt_written": False, "prompt_asks_for_request": False, "rendered": False,
                               "pixel_match": False, "caption_agrees": False}
        generating.reset()
        settings.seed = args.seed * 100_000 + req["index"]
        reply = generating.ask(req["request"], params=params)
        try:
            reply.consume()
        except InputError as e:  # the renderer refused (e.g. objects that do not fit): counts as not rendered
            rec["error"] = f"{type(e).__name__}: {e}"
        rec.update(reply=reply.raw_text, video_prompts=list(reply.video_prompts),
                   generation_errors=list(reply.generation_errors))
        want = PromptSpec((ObjectSpec(req["shape"], req["color"], req["motion"]),))
        video = reply.generated[0].save(out_dir) if reply.generated else None  # read back from the mp4
        check = check_generation(reply.video_prompts[0] if reply.video_prompts else None, want, render=False,
                                 frames=load_video(video.path, num_frames=16).frames if video else None)
        rec.update(prompt_written=check["prompt_written"], prompt_asks_for_request=check["prompt_asks_for_request"],
                   pixel_match=check["content_right"])
        if video is not None:
            rec.update(rendered=True, video=video.path, generation_seconds=video.seconds, detected=check["detected"])
            watching.reset()
            caption = watching.ask(CAPTION_REQUEST, [video.path], params).consume()
            rec["caption"] = caption.raw_text
            rec["caption_mentions"] = caption_mentions(caption.text, req["shape"], req["color"], req["motion"])
            rec["caption_agrees"] = all(rec["caption_mentions"].values())
        records.append(rec)

    qa_records: list[dict[str, Any]] = []
    if args.questions:
        for row in tqdm(pick_questions(qa_path, args.questions), desc="ordinary questions", unit="q", file=sys.stderr):
            watching.reset()
            reply = watching.ask(row["question"], [str(qa_path.parent / row["video"])], params).consume()
            qa_records.append({"question": row["question"], "video": row["video"], "reply": reply.raw_text,
                               "wrote_prompt": bool(reply.video_prompts)})

    n = len(records)
    written = sum(r["prompt_written"] for r in records)
    faithful = sum(r["prompt_asks_for_request"] for r in records)
    rendered = sum(r["rendered"] for r in records)
    pixel = sum(r["pixel_match"] for r in records)
    captions = sum(r["caption_agrees"] for r in records)
    false_gen = sum(r["wrote_prompt"] for r in qa_records)
    seconds = [r["generation_seconds"] for r in records if r["rendered"]]
    median_ms = statistics.median(seconds) * 1000 if seconds else None
    mentions = {k: sum(r.get("caption_mentions", {}).get(k, False) for r in records) for k in ("color", "shape", "motion")}

    summary = {
        "model": args.model, "model_source": getattr(model, "source", None), "trained": getattr(model, "trained", None),
        "requests": n, "prompt_written": written, "prompt_asks_for_request": faithful, "rendered": rendered,
        "pixel_match": pixel, "caption_agrees": captions, "caption_mentions": mentions,
        "ordinary_questions": len(qa_records), "false_generations": false_gen,
        "generation_ms_median": median_ms, "video_size": args.size, "num_frames": 16,
        "rates": {
            "prompt_written": written / n, "prompt_asks_for_request": faithful / n,
            "pixel_match_of_all": pixel / n, "pixel_match_of_rendered": pixel / rendered if rendered else None,
            "caption_agreement_of_all": captions / n,
            "caption_agreement_of_rendered": captions / rendered if rendered else None,
        },
    }

    print(f"# Generation cycle: `{args.model}`, {n} unseen-phrasing requests\n")
    rows = [
        ["Prompt written (`reply.video_prompts` non-empty)", rate(written, n)],
        ["Prompt asks for the requested object (`parse_prompt`)", rate(faithful, n)],
        ["Video rendered", rate(rendered, n)],
        ["Pixel match: rendered video shows the requested colour, shape and motion (of all requests)", rate(pixel, n)],
        ["Pixel match (of rendered)", rate(pixel, rendered)],
        ["Caption agreement: the model's caption of its video names colour, shape and motion (of all)", rate(captions, n)],
        ["Caption agreement (of rendered)", rate(captions, rendered)],
        ["Caption names colour / shape / motion (of rendered)",
         " / ".join(rate(mentions[k], rendered) for k in ("color", "shape", "motion"))],
        [f"False generations on {len(qa_records)} ordinary questions", f"{false_gen}/{len(qa_records)}"],
        [f"Generation time per video, synthetic backend, {args.size}x{args.size}x16 incl. mp4 (median)",
         f"{median_ms:.1f} ms" if median_ms is not None else "n/a"],
    ]
    print(markdown_table(["Measure", "Result"], rows))
    print("\n## Prompt written, by request template\n")
    by_template = []
    for k, template in enumerate(templates):
        mine = [r for r in records if r["template"] == k]
        if not mine:
            continue
        by_template.append([f"`{template}`", rate(sum(r["prompt_written"] for r in mine), len(mine)),
                            rate(sum(r["pixel_match"] for r in mine), len(mine))])
    print(markdown_table(["Template", "Prompt written", "Pixel match"], by_template))

    if args.json:
        report = {"summary": summary, "templates": list(templates), "requests": records,
                  "ordinary_questions": qa_records,
                  "args": vars(args), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
