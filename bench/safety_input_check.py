"""The input checker alone (no model) on safety benchmark items: how many harmful requests it refuses and
how many harmless ones it lets through, per set, task, category and obfuscation technique (each
out-of-source set on its own).

Each item is checked as the assistant checks it: the text checkers of the safety config (default:
profanity + harmful_request) on the final message and on the conversation so far (earlier user turns and
the message, joined). It shows what the first layer catches on its own; ``gpt4video eval safety`` runs the
whole pipeline. No video frames are checked (the benchmark's clips are harmless shapes).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python bench/safety_input_check.py [--benchmark all|in-source|independent|...|independent5]
        [--safety-config FILE] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import log, markdown_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from gpt4video.safety.benchmark import BENCHMARKS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benchmark", choices=tuple(BENCHMARKS), default="all")
    parser.add_argument("--safety-config", metavar="FILE", help="a YAML SafetyConfig (default: the built-in one)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    from gpt4video.evaluation.safety import load_manifests
    from gpt4video.evaluation.synthetic import detection_scores
    from gpt4video.pipeline import CONTEXT_TURNS
    from gpt4video.safety import SafetyConfig, SafetyPolicy
    from gpt4video.safety.benchmark import resolve

    config = SafetyConfig.from_yaml(args.safety_config) if args.safety_config else SafetyConfig()
    policy = SafetyPolicy(config).load()
    items = resolve(load_manifests(list(BENCHMARKS[args.benchmark])))
    log(f"checking {len(items)} items")
    groups: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for r in items:
        it = r.item
        earlier = r.turns[-CONTEXT_TURNS:]  # as Assistant._context joins them
        context = "\n".join([*earlier, r.message]) if earlier else None
        refused = not policy.check_input(r.message, context=context).allowed
        harmful = it.label == "harmful"
        name = "in-source" if it.set in ("main", "obfuscation") else it.set  # each independent set apart
        for key in (f"{name} {it.set} {it.task}", f"{name} {it.set} all",
                    *( [f"{name} category {it.category}"] if harmful else [f"{name} benign topic {it.category}"]),
                    *( [f"{name} obfuscation {it.obfuscation}"] if it.obfuscation else [])):
            groups[key].append((harmful, refused))
    rows, figures = [], {}
    for key in sorted(groups):
        pairs = groups[key]
        s = detection_scores([h for h, _ in pairs], [r for _, r in pairs])
        s["over_refusal"] = s["fp"] / s["negatives"] if s["negatives"] else None
        figures[key] = s
        rows.append([key, s["n"], s["positives"], f"{s['recall']:.3f}" if s["positives"] else "–",
                     s["negatives"], f"{100 * s['over_refusal']:.1f} %" if s["negatives"] else "–",
                     f"{s['f1']:.3f}" if s["positives"] and s["negatives"] else "–"])
    print(markdown_table(["items", "n", "harmful", "recall", "benign", "refused", "F1"], rows))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
