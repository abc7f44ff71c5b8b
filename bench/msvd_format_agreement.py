"""One truth, two readers: a synthetic test split's questions scored by `gpt4video eval` and, written in the
MSVD-QA layout (Video-ChatGPT's test_q.json / test_a.json and a video folder), by `gpt4video eval video-qa`.

Renders a synthetic test split (or uses --split-dir), takes --questions questions evenly spread over its
qa.jsonl, writes them as a one-file split (WORK/split/qa.jsonl) and as an MSVD-QA folder (WORK/msvd), loads
the model once and answers both; prints each reader's exact and contains-match accuracy and exits 1 if they
differ.

    python bench/msvd_format_agreement.py --work runs/msvd_agreement [--model smol] [--questions 200]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import log, markdown_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", required=True, help="a folder for the split, the MSVD-QA copy and the predictions")
    parser.add_argument("--split-dir", help="an existing synthetic split (default: render 40 test clips into WORK)")
    parser.add_argument("--model", default="smol", help="a preset or model directory (default smol)")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    args = parser.parse_args(argv)

    from gpt4video.config import GenerationParams
    from gpt4video.data.synthetic.splits import build_split
    from gpt4video.evaluation import evaluate_split
    from gpt4video.evaluation.benchmarks import evaluate_video_qa, read_video_qa
    from gpt4video.evaluation.synthetic import _spread
    from gpt4video.jsonl import read_jsonl, write_jsonl
    from gpt4video.pipeline import Assistant

    work = Path(args.work)
    split = Path(args.split_dir) if args.split_dir else build_split(work / "synth", "test", 40, progress=False)
    rows = _spread(list(read_jsonl(split / "qa.jsonl")), args.questions)
    log(f"{len(rows)} questions from {split}")
    for row in rows:
        row["video"] = str((split / row["video"]).resolve())
    write_jsonl(work / "split" / "qa.jsonl", rows)
    msvd = work / "msvd"
    msvd.mkdir(parents=True, exist_ok=True)
    (msvd / "test_q.json").write_text(json.dumps([{"video_name": Path(r["video"]).stem, "question_id": k,
                                                   "question": r["question"]} for k, r in enumerate(rows)]))
    (msvd / "test_a.json").write_text(json.dumps([{"answer": str(r["answer"]), "question_id": k, "type": r["type"]}
                                                  for k, r in enumerate(rows)]))

    assistant = Assistant.from_pretrained(args.model)
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    log("gpt4video eval (the synthetic split reader)")
    synthetic = evaluate_split(assistant, work / "split", phrasing="train", max_captions=0, max_generation=0,
                               max_images=0, max_narration=0, max_sounds=0,
                               params=params, progress=False)["qa"]["overall"]
    log("gpt4video eval video-qa --benchmark msvd-qa (no judge)")
    qa = read_video_qa("msvd-qa", msvd, Path(rows[0]["video"]).parent)
    bench = evaluate_video_qa(assistant, qa, work / "out", params=params, progress=False,
                              model_name=args.model)["no_judge"]
    table = [["gpt4video eval", synthetic["n"], f"{100 * synthetic['accuracy_exact']:.1f}%",
              f"{100 * synthetic['accuracy_contains_gold']:.1f}%"],
             ["gpt4video eval video-qa (msvd-qa, no judge)", bench["n"], f"{100 * bench['accuracy_exact']:.1f}%",
              f"{100 * bench['accuracy_contains']:.1f}%"]]
    print(markdown_table(["reader", "questions", "exact match", "contains match"], table))
    same = (synthetic["accuracy_exact"], synthetic["accuracy_contains_gold"]) == \
        (bench["accuracy_exact"], bench["accuracy_contains"])
    print("\nthe two readers agree" if same else "\nthe two readers DISAGREE")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
