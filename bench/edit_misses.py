"""Why requests to change a shown clip go wrong: the clip misread, or read right and the prompt wrong.

Reads the requests of a ``gpt4video eval`` run (``results.json``: ``generation`` and ``generation_heldout``,
each request with its pixel check), keeps those that came with a clip (changes to a shown clip), and for
each spells the clip the way the model reads it (its video tokens' nearest words,
:meth:`gpt4video.modeling.GPT4Video.video_words`). The clip counts as read right when the spelled words
name exactly the clip's objects (colour, shape and motion of each, from the split's ``scenes.jsonl``).
Prints a Markdown table: requests with the content right or wrong, by whether the clip was read right.

    python bench/edit_misses.py runs/eval/r6/results.json --model smol [--split-dir data/synth/test]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import log, markdown_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", help="results.json of a `gpt4video eval` run with generation requests")
    parser.add_argument("--model", default="smol", help="the model the run evaluated (name or directory)")
    parser.add_argument("--split-dir", default="data/synth/test")
    parser.add_argument("--feature-cache", default="data/feature_cache")
    parser.add_argument("--examples", type=int, default=5, help="misses to print of each kind")
    args = parser.parse_args(argv)

    from gpt4video.data.feature_cache import FeatureCache
    from gpt4video.data.synthetic.prompts import parse_prompt
    from gpt4video.data.synthetic.scenes import Scene
    from gpt4video.evaluation.pixels import object_triples
    from gpt4video.modeling import GPT4Video

    results = json.loads(Path(args.results).read_text(encoding="utf-8"))
    split = Path(args.split_dir)
    scenes = {str((split / row["video"]).resolve()): Scene.from_dict(row["scene"])
              for row in map(json.loads, (split / "scenes.jsonl").read_text(encoding="utf-8").splitlines())}
    model = GPT4Video.from_pretrained(args.model)
    cache = FeatureCache(args.feature_cache, model)

    rows, misses = [], {True: [], False: []}
    for task in ("generation", "generation_heldout"):
        edits = [r for r in results.get(task, {}).get("requests", []) if r.get("videos")]
        if not edits:
            continue
        log(f"{task}: spelling the clips of {len(edits)} changes to a shown clip")
        cells = Counter()
        for r in edits:
            path = str(Path(r["videos"][-1]).resolve())
            spelled = model.video_words(cache.get_many([path]))[0]
            read = parse_prompt(spelled)
            read_right = read is not None and object_triples(read) == object_triples(scenes[path])
            right = bool(r["check"]["content_right"])
            cells[(read_right, right)] += 1
            if not right:
                misses[read_right].append({"request": r["question"], "clip read as": spelled.split(".")[0].strip() + ".",
                                           "clip": [list(t) for t in object_triples(scenes[path])],
                                           "prompt": r["prediction"]})
        n = len(edits)
        rows.append([task, n, cells[(True, True)] + cells[(False, True)], cells[(True, False)], cells[(False, False)],
                     f"{100 * (cells[(True, True)] + cells[(True, False)]) / n:.1f} %"])
    if not rows:
        print("no changes to a shown clip in these results (run `gpt4video eval` with --max-generation)")
        return 1
    print(markdown_table(["task", "changes to a shown clip", "content right", "wrong, clip read right",
                          "wrong, clip misread", "clips read right"], rows))
    for read_right, title in ((False, "clip misread"), (True, "clip read right, prompt wrong")):
        for m in misses[read_right][:args.examples]:
            print(f"\n- {title}: {json.dumps(m)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
