"""What the model answers about narrated synthetic clips it never saw, through the whole audio path.

For each narrated question of a test split (``narration_qa.jsonl`` in-template, ``narration_qa_heldout.jsonl``
out-of-template; rows whose reply says what is said), the clip is rendered again long enough to hold its
sentence (``--seconds``), the sentence is spoken by eSpeak NG (:func:`gpt4video.audio.synthesis.narrate`) into
its sound track, and the question is asked without the subtitles line, as ``gpt4video chat --video CLIP
--prompt QUESTION`` would: the pipeline hears the track (VAD, then the recogniser) and writes the subtitles
line itself. A reply is right when it holds every spoken word in order. Also reported: the word accuracy
(1 - WER) of the reply's quoted words against the sentence, how often the recogniser's own transcript was
exactly the sentence and its word accuracy, and how often the reply repeats what the recogniser heard (the
model's part, apart from the recogniser's).

    python bench/narration.py --split-dir data/synth/test --model smol --clips 100 --work runs/narration
    python bench/narration.py ... --vocabulary     # pocketsphinx limited to the narration lexicon's words
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import word_errors  # noqa: E402
from gpt4video.audio.recognition import SpeechConfig  # noqa: E402
from gpt4video.audio.subtitles import spoken_words  # noqa: E402
from gpt4video.audio.synthesis import mix, mux_audio, narrate  # noqa: E402
from gpt4video.data.phrasing import normalize  # noqa: E402
from gpt4video.data.synthetic import sample_scene, write_clip  # noqa: E402
from gpt4video.data.synthetic import narration as lexicon  # noqa: E402
from gpt4video.jsonl import read_jsonl  # noqa: E402
from gpt4video.pipeline import Assistant  # noqa: E402
from gpt4video.safety import SafetyConfig, SafetyPolicy  # noqa: E402

SPEECH_START = 0.3  # seconds of silence before the sentence


def narrated_rows(split: Path, name: str, limit: int) -> list[dict]:
    rows = [r for r in read_jsonl(split / name, what="narration row")
            if r.get("narration") and f'"{r["narration"]["text"]}"' in r["turns"][1]["text"]]
    return rows[:limit]


def lexicon_words() -> tuple[str, ...]:
    parts = (*lexicon._SUBJECTS, *lexicon._VERBS, *lexicon._OBJECTS, *lexicon._ENDINGS, *lexicon._GREETINGS)
    return tuple(sorted({w for p in parts for w in p.split()}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split-dir", default="data/synth/test")
    ap.add_argument("--model", default="smol")
    ap.add_argument("--clips", type=int, default=100, help="narrated questions of each file")
    ap.add_argument("--seconds", type=float, default=6.0, help="length of each re-rendered clip")
    ap.add_argument("--work", default="runs/narration", help="where the narrated clips and results go")
    ap.add_argument("--vocabulary", action="store_true", help="limit pocketsphinx to the narration lexicon's words")
    args = ap.parse_args()

    split, work = Path(args.split_dir), Path(args.work)
    (work / "clips").mkdir(parents=True, exist_ok=True)
    # As `gpt4video chat` does: the default safety checks, the default offline recogniser.
    assistant = Assistant.from_pretrained(args.model, safety=SafetyPolicy(SafetyConfig()).load())
    assistant.speech = SpeechConfig(vocabulary=lexicon_words() if args.vocabulary else ()).build()
    fps = 8.0
    results = {}
    t0 = time.perf_counter()
    for name in ("narration_qa.jsonl", "narration_qa_heldout.jsonl"):
        rows = narrated_rows(split, name, args.clips)
        right = exact_transcripts = repeats = refused = errors = reply_errors = words = 0
        examples = []
        for k, row in enumerate(rows):
            text = row["narration"]["text"]
            seed = int(Path(row["video"]).stem)
            clip = work / "clips" / f"{seed}.mp4"
            if not clip.is_file():
                silent = work / "clips" / f"{seed}-silent.mp4"
                write_clip(sample_scene(seed, num_frames=round(args.seconds * fps), fps=fps), silent)
                voice = narrate(text)
                mux_audio(silent, mix([(SPEECH_START, voice)], args.seconds), 16000, clip)
                silent.unlink()
            question = row["turns"][0]["text"].split("\n", 1)[1]
            assistant.reset()
            reply = assistant.ask(question, videos=[clip]).consume().to_dict()
            heard = " ".join(filter(None, map(spoken_words, reply["subtitles"])))
            ok = f" {normalize(text)} " in f" {normalize(reply['text'])} "
            right += ok
            refused += reply.get("refused_by") is not None
            exact_transcripts += normalize(heard) == normalize(text)
            repeats += bool(heard) and f" {normalize(heard)} " in f" {normalize(reply['text'])} "
            errors += word_errors(normalize(text).split(), normalize(heard).split())
            quoted = reply["text"].split('"')[1] if reply["text"].count('"') >= 2 else reply["text"]
            reply_errors += word_errors(normalize(text).split(), normalize(quoted).split())
            words += len(normalize(text).split())
            if len(examples) < 5 or (not ok and len(examples) < 10):
                examples.append({"said": text, "heard": heard, "question": question, "reply": reply["text"], "right": ok})
            print(f"{name} {k + 1}/{len(rows)}: right {right}", file=sys.stderr, end="\r")
        results[name] = {"n": len(rows), "right": right, "accuracy": right / len(rows) if rows else None,
                         "transcript_exact": exact_transcripts, "reply_repeats_transcript": repeats,
                         "refused": refused,
                         "recogniser_word_accuracy": 1 - errors / words if words else None,
                         "reply_word_accuracy": 1 - reply_errors / words if words else None, "examples": examples}
        print(file=sys.stderr)
    results["settings"] = {"model": args.model, "clips": args.clips, "seconds": args.seconds,
                           "vocabulary": args.vocabulary, "elapsed_seconds": round(time.perf_counter() - t0, 1)}
    out = work / ("results-vocabulary.json" if args.vocabulary else "results.json")
    out.write_text(json.dumps(results, indent=2))
    for name in ("narration_qa.jsonl", "narration_qa_heldout.jsonl"):
        r = results[name]
        print(f"{name}: {r['right']}/{r['n']} replies hold every spoken word (word accuracy of the quoted reply "
              f"{r['reply_word_accuracy']:.3f}); the recogniser heard {r['transcript_exact']}/{r['n']} sentences "
              f"exactly (word accuracy {r['recogniser_word_accuracy']:.3f}); {r['reply_repeats_transcript']}/{r['n']} "
              f"replies repeat what the recogniser heard; {r['refused']}/{r['n']} refused by a safety layer")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
