"""How the input safety check treats speech: harmless narration and harmful requests spoken in a video.

Each text is spoken by eSpeak NG and heard by the default recogniser (PocketSphinx) through the pipeline's own
path (voice-activity detection, then the subtitles line timed to 8 frames), then asked about with a neutral
question ("What does the narrator say?"). Three ways of checking it are compared, each with the default
safety policy:

- ``line``: the message as the model reads it, the subtitles line and the question joined (the check before
  the speech was read apart);
- ``apart``: the question as the message and the spoken words as their own text (what the pipeline does now);
- ``joined``: the spoken words and the question joined as plain text, without the line's form.

Harmful and harmless texts are the validation rows of independent sets 1-6 (never trained on by the head;
the packaged thresholds were calibrated on them, so the harmful-request figures are tuned ones), narration the
test split's narrated sentences (the synthetic world's harmless speech). Each is also checked as written (a
recogniser that makes no mistakes)::

    python bench/speech_input_check.py --manifest runs/heldout_ind1to6.jsonl --split-dir data/synth/test
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gpt4video.audio import SAMPLE_RATE, AudioTrack, SpeechConfig, SpeechSegment, format_subtitles, spoken_words  # noqa: E402,E501
from gpt4video.audio.synthesis import mix, narrate  # noqa: E402
from gpt4video.jsonl import read_jsonl  # noqa: E402
from gpt4video.safety import SafetyConfig, SafetyPolicy  # noqa: E402
from gpt4video.video import uniform_timestamps  # noqa: E402

QUESTION = "What does the narrator say?"
VARIANTS = ("line", "apart", "joined")


def refused(policy: SafetyPolicy, variant: str, line: str) -> bool:
    words = spoken_words(line)
    if variant == "line":
        return not policy.check_input(f"{line}\n{QUESTION}" if line else QUESTION).allowed
    if variant == "apart":
        return not policy.check_input(QUESTION, speech=[("video's speech", words)] if words else []).allowed
    return not policy.check_input(f"{words}\n{QUESTION}" if words else QUESTION).allowed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True, help="benchmark items (JSONL with text and label)")
    ap.add_argument("--split-dir", default="data/synth/test", help="a split with narration_qa.jsonl")
    ap.add_argument("--limit", type=int, default=0, help="at most N items of each group, spread over it (0: all)")
    ap.add_argument("--out", default="runs/speech_input_check.json")
    args = ap.parse_args()

    items = [r for r in read_jsonl(Path(args.manifest), what="benchmark item") if not r.get("turns")]
    groups = {"harmful request": [r["text"] for r in items if r["label"] == "harmful"],
              "harmless request": [r["text"] for r in items if r["label"] != "harmful"],
              "narration": sorted({r["narration"]["text"] for r in read_jsonl(Path(args.split_dir) /
                                   "narration_qa.jsonl", what="narration row") if r.get("narration")})}
    if args.limit:
        groups = {g: texts[:: max(1, len(texts) // args.limit)][: args.limit] for g, texts in groups.items()}
    policy = SafetyPolicy(SafetyConfig()).load()
    transcriber = SpeechConfig().build()
    t0 = time.perf_counter()
    results: dict = {}
    for group, texts in groups.items():
        counts = {f"{v} {how}": 0 for how in ("heard", "written") for v in VARIANTS}
        examples = []
        for k, text in enumerate(texts):
            voice = narrate(text)
            seconds = len(voice) / SAMPLE_RATE + 0.6
            sound = mix([(0.3, voice)], seconds)
            frame_times = uniform_timestamps(seconds, 8)
            heard_lines = transcriber.lines(AudioTrack(sound, SAMPLE_RATE), frame_times)
            heard = next((ln for ln in heard_lines if spoken_words(ln)), "")
            written = format_subtitles([SpeechSegment(0.0, seconds, text)], frame_times)  # every frame
            for how, line in (("heard", heard), ("written", written)):
                for v in VARIANTS:
                    counts[f"{v} {how}"] += refused(policy, v, line)
            if len(examples) < 5:
                examples.append({"text": text, "heard": spoken_words(heard)})
            print(f"\r{group} {k + 1}/{len(texts)}", end="", file=sys.stderr)
        print(file=sys.stderr)
        results[group] = {"n": len(texts), "refused": counts, "examples": examples}
    results["settings"] = {"manifest": args.manifest, "split_dir": args.split_dir, "question": QUESTION,
                           "elapsed_seconds": round(time.perf_counter() - t0, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print("| speech | n | " + " | ".join(f"refused, {v} (heard / written)" for v in VARIANTS) + " |")
    print("|---|---:|" + "---:|" * len(VARIANTS))
    for group in groups:
        r = results[group]
        cells = [f"{r['refused'][f'{v} heard']} / {r['refused'][f'{v} written']}" for v in VARIANTS]
        print(f"| {group} | {r['n']} | " + " | ".join(cells) + " |")
    print(f"wrote {args.out} ({results['settings']['elapsed_seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
