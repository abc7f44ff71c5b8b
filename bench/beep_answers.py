"""What the model answers about beeps it must hear itself, through the whole audio path.

For each question of a split's ``sound_qa.jsonl`` whose clip is not narrated, the row's beep (its ``sound``:
start, end, pitch) is put into the clip's sound track (:func:`gpt4video.audio.synthesis.beep`, ``mix``,
``mux_audio``; a row without a beep gets a silent track), and the question is asked without the sounds line,
as ``gpt4video chat --video CLIP --sounds --prompt QUESTION`` would: the pipeline hears the track
(:func:`gpt4video.audio.events.tone_regions`) and writes the sounds line itself. Replies are scored as
``gpt4video eval`` scores the sounds task, which gives the model the data's own line instead
(:func:`gpt4video.evaluation.synthetic_media.sound_scores`: by kind, when / no_beep / whether / picture).
Also reported: how often the line the pipeline wrote is the data's line.

    python bench/beep_answers.py --split-dir data/synth/test --model smol --clips 100
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gpt4video.audio.decode import SAMPLE_RATE  # noqa: E402
from gpt4video.audio.recognition import SpeechConfig  # noqa: E402
from gpt4video.audio.synthesis import beep, mix, mux_audio  # noqa: E402
from gpt4video.evaluation.synthetic_media import SOUND_KINDS, _sound_kind, sound_scores  # noqa: E402
from gpt4video.jsonl import read_jsonl  # noqa: E402
from gpt4video.pipeline import Assistant  # noqa: E402
from gpt4video.safety import SafetyConfig, SafetyPolicy  # noqa: E402

SOUNDS_PREFIX = "Sounds: "


def beep_rows(split: Path, limit: int) -> list[dict]:
    """The first ``limit`` rows of ``split/sound_qa.jsonl`` without a subtitles line, each with its clip's length
    (from ``scenes.jsonl``), its question (the user's text without the sounds line) and that line (or "")."""
    scenes = {r["video"]: r["scene"] for r in read_jsonl(split / "scenes.jsonl", what="scene row")}
    rows = []
    for row in read_jsonl(split / "sound_qa.jsonl", what="sound row"):
        lines = row["turns"][0]["text"].split("\n")
        if lines[0].startswith("Subtitles"):
            continue
        line = lines[0] if lines[0].startswith(SOUNDS_PREFIX) else ""
        scene = scenes[row["video"]]
        rows.append({**row, "duration": scene["num_frames"] / scene["fps"], "line": line,
                     "question": "\n".join(lines[1:] if line else lines)})
        if len(rows) == limit:
            break
    return rows


def sounding_clip(split: Path, row: dict, work: Path) -> Path:
    """The row's clip with its beep (or silence) as its sound track, written once into ``work``."""
    clip = work / Path(row["video"]).name
    if not clip.is_file():
        sound = row["sound"]
        tones = [(sound["start"], beep(sound["frequency"], sound["end"] - sound["start"]))] if sound else []
        mux_audio(split / row["video"], mix(tones, row["duration"]), SAMPLE_RATE, clip)
    return clip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split-dir", type=Path, default=Path("data/synth/test"))
    ap.add_argument("--model", default="smol")
    ap.add_argument("--clips", type=int, default=100, help="questions (rows of sound_qa.jsonl without speech)")
    ap.add_argument("--work", type=Path, default=Path("runs/beep_answers"), help="sounding clips and results")
    args = ap.parse_args()

    (args.work / "clips").mkdir(parents=True, exist_ok=True)
    # As `gpt4video chat --sounds` does: the default safety checks, the default offline recogniser.
    assistant = Assistant.from_pretrained(args.model, safety=SafetyPolicy(SafetyConfig()).load())
    assistant.speech = SpeechConfig(sounds=True).build()
    t0 = time.perf_counter()
    items, line_right, examples = [], 0, []
    rows = beep_rows(args.split_dir, args.clips)
    for k, row in enumerate(rows):
        gold = row["turns"][1]["text"]
        clip = sounding_clip(args.split_dir, row, args.work / "clips")
        assistant.reset()
        reply = assistant.ask(row["question"], videos=[clip]).consume().to_dict()
        heard = next((s for s in reply["subtitles"] if s.startswith(SOUNDS_PREFIX)), "")
        line_right += heard == row["line"]
        item = SimpleNamespace(prediction=reply["text"], gold=gold,
                               meta={"kind": _sound_kind(row["sound"], gold, f"row {k + 1}")})
        items.append(item)
        if len(examples) < 10:
            examples.append({"question": row["question"], "line": row["line"], "heard": heard,
                             "reply": reply["text"], "gold": gold})
        print(f"{k + 1}/{len(rows)}", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    results = {"scores": sound_scores(items), "sounds_line_right": line_right, "n": len(rows), "examples": examples,
               "settings": {"model": args.model, "split": str(args.split_dir), "clips": args.clips,
                            "elapsed_seconds": round(time.perf_counter() - t0, 1)}}
    (args.work / "results.json").write_text(json.dumps(results, indent=2))

    labels = dict(SOUND_KINDS)
    print(f"{len(rows)} questions about beeps heard from the sound track ({args.split_dir}, model {args.model}); "
          f"the sounds line the pipeline wrote was the data's line for {line_right}")
    print("| question | n | right |")
    print("|---|---:|---:|")
    for kind, cell in results["scores"]["by_kind"].items():
        print(f"| {labels[kind]} | {cell['n']} | {cell['right']} ({cell['accuracy']:.1%}) |")
    total = results["scores"]
    print(f"| **all** | {total['n']} | {total['right']} ({total['accuracy']:.1%}) |" if total["n"] else "| all | 0 | - |")
    print(f"elapsed {results['settings']['elapsed_seconds']} s; wrote {args.work / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
