"""Word accuracy of the offline speech recogniser on speech synthesised by eSpeak NG.

Sentences about the synthetic world ("the red square moves left") and everyday sentences are spoken by
:func:`gpt4video.audio.synthesis.narrate`, placed in a sound track between silences, and transcribed by
:class:`gpt4video.audio.recognition.Transcriber` (VAD, then the recogniser). Word accuracy is
1 - word error rate (substitutions + deletions + insertions over the reference words), over all
sentences of a set. PocketSphinx runs twice: with its packaged general language model, and limited to
the synthetic world's words (``SpeechConfig(vocabulary=...)``). ``--sentences-file`` scores your own
sentences (one a line) instead, with the general model and limited to their own words.

    python bench/speech_recognition.py --sentences 50
    python bench/speech_recognition.py --sentences-file narration.txt
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import word_errors  # noqa: E402
from gpt4video.audio.decode import SAMPLE_RATE, AudioTrack  # noqa: E402
from gpt4video.audio.recognition import SpeechConfig  # noqa: E402
from gpt4video.audio.synthesis import mix, narrate  # noqa: E402
from gpt4video.data.synthetic.vocabulary import COLORS, DIRECTIONS, SHAPES  # noqa: E402

EVERYDAY = [
    "hello world", "good morning everyone", "please open the door", "the weather is nice today",
    "i would like a cup of coffee", "where is the train station", "thank you very much",
    "we are going to the park", "the children play in the garden", "turn off the lights please",
    "my phone number is five five five", "the meeting starts at nine", "can you help me",
    "this is a short story about a dog", "the water is cold", "she reads a book every night",
]


def world_sentences(count: int, rng: random.Random) -> list[str]:
    forms = ["the {c} {s} moves {d}", "look at the {c} {s}", "a {c} {s}", "the {s} is {c}", "{c} {s} going {d}"]
    return [rng.choice(forms).format(c=rng.choice(COLORS), s=rng.choice(SHAPES), d=rng.choice(DIRECTIONS))
            for _ in range(count)]


def score(transcribe, sentences: list[str]) -> tuple[float, list[tuple[str, str]]]:  # noqa: ANN001
    errors = words = 0
    pairs = []
    for sentence in sentences:
        speech = narrate(sentence)
        track = mix([(0.5, speech)], duration=len(speech) / SAMPLE_RATE + 1.0)
        heard = " ".join(s.text for s in transcribe(AudioTrack(track, SAMPLE_RATE)))
        errors += word_errors(sentence.split(), heard.split())
        words += len(sentence.split())
        pairs.append((sentence, heard))
    return 1 - errors / words, pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=50, help="synthetic-world sentences (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=5, help="print this many sentences with what was heard")
    parser.add_argument("--sentences-file", type=Path, help="score these sentences (one a line) instead")
    args = parser.parse_args()
    if args.sentences_file:
        own = [" ".join(line.lower().split()) for line in args.sentences_file.read_text().splitlines() if line.strip()]
        vocabulary = tuple(sorted({w for s in own for w in s.split()}))
        runs = [("pocketsphinx, general language model", SpeechConfig(), [(args.sentences_file.name, own)]),
                ("pocketsphinx, limited to their words", SpeechConfig(vocabulary=vocabulary),
                 [(args.sentences_file.name, own)])]
    else:
        world = world_sentences(args.sentences, random.Random(args.seed))
        vocabulary = (*COLORS, *SHAPES, *DIRECTIONS, "the", "moves", "look", "at", "a", "is", "going")
        runs = [("pocketsphinx, general language model", SpeechConfig(), [("world", world), ("everyday", EVERYDAY)]),
                ("pocketsphinx, synthetic-world vocabulary", SpeechConfig(vocabulary=vocabulary), [("world", world)])]
    print("| recogniser | sentences | words | word accuracy | seconds |")
    print("|---|---|---:|---:|---:|")
    for name, config, sets in runs:
        transcriber = config.build()
        for label, sentences in sets:
            t0 = time.perf_counter()
            accuracy, pairs = score(transcriber, sentences)
            words = sum(len(s.split()) for s in sentences)
            print(f"| {name} | {label} ({len(sentences)}) | {words} | {100 * accuracy:.1f} % | "
                  f"{time.perf_counter() - t0:.1f} |", flush=True)
            for said, heard in pairs[: args.show]:
                print(f"  said {said!r} → heard {heard!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
