"""Greedy answers of a model on a test split, written one per line, to compare decoding engines.

Two runs of this script (for example before and after a change of engine, or two engines side by side)
give two files; ``--compare A B`` counts the answers that differ and prints the first differences.

    python bench/greedy_outputs.py --split-dir data/synth/test --out runs/greedy/new.jsonl
    python bench/greedy_outputs.py --engine transformers --out runs/greedy/hf.jsonl
    python bench/greedy_outputs.py --compare runs/greedy/old.jsonl runs/greedy/new.jsonl

It answers through the same Assistant and items as ``gpt4video eval`` (in-template phrasing: QA,
captioning, generation requests), so the printed scores are that command's scores on the same items.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _dump(args: argparse.Namespace) -> None:
    from gpt4video.evaluation.synthetic import assistant_answer_fn, evaluate_split
    from gpt4video.pipeline import Assistant

    assistant = Assistant.from_pretrained(args.model)
    if args.engine:
        from gpt4video.engines import make_engine

        options = {"gguf": args.gguf} if args.gguf else {}
        assistant.model.engine = make_engine(args.engine, assistant.model, **options)
    answer = assistant_answer_fn(assistant, None)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as sink:

        def recording(question, videos, history):  # noqa: ANN001, ANN202
            text = answer(question, videos, history)
            row = {"question": question, "videos": list(videos), "history": [str(h) for h in history or ()],
                   "answer": text}
            sink.write(json.dumps(row, ensure_ascii=False) + "\n")
            sink.flush()
            return text

        t0 = time.perf_counter()
        results = evaluate_split(None, args.split_dir, answer_fn=recording, max_qa=args.max_qa,
                                 max_captions=args.max_captions, max_generation=args.max_generation,
                                 max_images=0, max_narration=0, max_sounds=0,
                                 phrasing="train", progress=True)
    qa, gen = results.get("qa", {}), results.get("generation", {})
    summary = {
        "seconds": round(time.perf_counter() - t0, 1),
        "qa_exact": qa.get("overall", {}).get("accuracy_exact"),
        "qa_exact_by_type": {t: c.get("accuracy_exact") for t, c in qa.get("by_type", {}).items()},
        "generation": {k: gen.get(k) for k in ("precision", "recall")},
        "captioning": {k: v for k, v in results.get("captioning", {}).items() if k != "examples"},
        "out": str(out),
    }
    print(json.dumps(summary, indent=1, default=str))


def _compare(first: str, second: str, show: int) -> int:
    a = [json.loads(line) for line in Path(first).read_text(encoding="utf-8").splitlines() if line.strip()]
    b = [json.loads(line) for line in Path(second).read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(a) != len(b):
        print(f"different numbers of answers: {len(a)} vs {len(b)}")
    differing = [(x, y) for x, y in zip(a, b) if x["answer"] != y["answer"]]
    mismatched_items = sum(x["question"] != y["question"] for x, y in zip(a, b))
    print(f"{len(differing)} of {min(len(a), len(b))} answers differ ({mismatched_items} items misaligned)")
    for x, y in differing[:show]:
        print(f"- {x['question']!r}\n    {first}: {x['answer']!r}\n    {second}: {y['answer']!r}")
    return 1 if differing or len(a) != len(b) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split-dir", default="data/synth/test")
    parser.add_argument("--model", default="smol")
    parser.add_argument("--engine", default=None, help="decoding engine by name (default: the model's own)")
    parser.add_argument("--gguf", default=None, help="with --engine llamacpp: adapter, q8_0 or f16")
    parser.add_argument("--max-qa", type=int, default=700)
    parser.add_argument("--max-captions", type=int, default=100)
    parser.add_argument("--max-generation", type=int, default=150)
    parser.add_argument("--out", default="runs/greedy/answers.jsonl")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two answer files and exit")
    parser.add_argument("--show", type=int, default=10, help="differences to print with --compare")
    args = parser.parse_args()
    if args.compare:
        return _compare(*args.compare, args.show)
    _dump(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
