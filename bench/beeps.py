"""How well the beep detector finds the synthetic world's beeps, and how often it hears one that is not there.

Each beep (a split's ``sound_qa.jsonl`` with ``--split-dir``, or drawn as
:func:`gpt4video.data.synthetic.sounds.sound_row` draws them) is rendered into a sound track the clip's length
(:func:`gpt4video.audio.synthesis.beep` and ``mix``): alone, over faint white noise, and over a spoken sentence.
:func:`gpt4video.audio.events.tone_regions` reads each track back. Reported: how often a beep is found, how
often the first frame it is heard at (``segment_frames`` over the ``--num-frames`` frames the model samples)
is the true one, how often the whole sounds line is the true line, the onset error in seconds (median, p95),
and tracks with more than one beep. Then false beeps: tone regions found in silent tracks, in faint noise,
and in speech alone (sentences of :func:`gpt4video.data.synthetic.narration.narration_text` spoken by eSpeak
NG; skipped when it is missing), also joined over speech's 0.3 s bridge instead of one frame, to show why a
tone is not bridged as speech is.

    python bench/beeps.py --clips 200
    python bench/beeps.py --split-dir data/synth/test --clips 200
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gpt4video.audio.decode import SAMPLE_RATE  # noqa: E402
from gpt4video.audio.events import format_sounds, tone_regions  # noqa: E402
from gpt4video.audio.subtitles import SpeechSegment, segment_frames  # noqa: E402
from gpt4video.audio.synthesis import beep, mix, narrate  # noqa: E402
from gpt4video.audio.vad import VoiceActivity, analyse_frames, join_frames  # noqa: E402
from gpt4video.data.phrasing import _pick  # noqa: E402
from gpt4video.data.synthetic.narration import narration_text  # noqa: E402
from gpt4video.data.synthetic.sounds import BEEP_FREQUENCIES, beep_timing  # noqa: E402
from gpt4video.errors import AudioError, InputError  # noqa: E402
from gpt4video.jsonl import read_jsonl  # noqa: E402
from gpt4video.video.sampling import uniform_timestamps  # noqa: E402


def split_beeps(split: Path, limit: int) -> list[dict]:
    """The first ``limit`` beeps of ``split/sound_qa.jsonl``, each with its clip's length (from ``scenes.jsonl``)."""
    scenes = {r["video"]: r["scene"] for r in read_jsonl(split / "scenes.jsonl", what="scene row")}
    beeps = []
    for row in read_jsonl(split / "sound_qa.jsonl", what="sound row"):
        if row["sound"] and len(beeps) < limit:
            scene = scenes[row["video"]]
            beeps.append({**row["sound"], "duration": scene["num_frames"] / scene["fps"]})
    return beeps


def drawn_beeps(count: int, duration: float, rng: np.random.Generator) -> list[dict]:
    """``count`` beeps drawn as ``sound_row`` draws them, in clips of ``duration`` seconds."""
    beeps = []
    for _ in range(count):
        start, end = beep_timing(duration, rng)
        beeps.append({"start": start, "end": end, "frequency": float(_pick(rng, BEEP_FREQUENCIES)),
                      "duration": duration})
    return beeps


def first_frame(start: float, end: float, frame_times: list[float]) -> int:
    """The first sampled frame (1-based) the sounds line names for a beep from ``start`` to ``end``."""
    return segment_frames(SpeechSegment(start, end, ""), frame_times)[0]


def noise(seconds: float, level_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise of ``level_db`` dBFS (RMS)."""
    return (rng.standard_normal(round(seconds * SAMPLE_RATE)) * 10 ** (level_db / 20)).astype(np.float32)


def spoken(sentences: list[str]) -> list[np.ndarray] | None:
    """``sentences`` spoken by eSpeak NG, or ``None`` when it cannot speak here (it is missing)."""
    try:
        return [narrate(text) for text in sentences]
    except (InputError, AudioError, OSError) as e:
        print(f"eSpeak NG cannot speak here ({e}); the speech tracks are skipped", file=sys.stderr)
        return None


def score_beeps(beeps: list[dict], background: Callable[[dict], list[tuple[float, np.ndarray]]], num_frames: int,
                volume: float) -> dict:
    """Detection figures of ``beeps`` at ``volume``, each mixed over the sounds ``background(beep)``."""
    found = frame_right = line_right = extra = 0
    errors = []
    for b in beeps:
        tone = beep(b["frequency"], b["end"] - b["start"], volume=volume)
        track = mix([*background(b), (b["start"], tone)], b["duration"])
        regions = tone_regions(track, SAMPLE_RATE)
        frame_times = uniform_timestamps(b["duration"], num_frames)
        if regions:
            found += 1
            start, end = regions[0]
            errors.append(abs(start - b["start"]))
            frame_right += first_frame(start, end, frame_times) == first_frame(b["start"], b["end"], frame_times)
        line_right += format_sounds(regions, frame_times) == format_sounds([(b["start"], b["end"])], frame_times)
        extra += len(regions) > 1
    return {"n": len(beeps), "found": found, "start_frame_right": frame_right, "line_right": line_right,
            "more_than_one": extra,
            "onset_error_median": float(np.median(errors)) if errors else None,
            "onset_error_p95": float(np.percentile(errors, 95)) if errors else None}


def bridged_as_speech(samples: np.ndarray, sample_rate: int) -> list[tuple[float, float]]:
    """``tone_regions`` with speech's bridge (``VoiceActivity().bridge_seconds``) instead of one frame."""
    frames = analyse_frames(samples, sample_rate)
    return join_frames(frames.loud & frames.tonal, frames, pad_seconds=0.0)


def false_beeps(tracks: list[np.ndarray],
                detect: Callable[[np.ndarray, int], list[tuple[float, float]]] = tone_regions) -> dict:
    """How many of ``tracks`` (holding no beep) have a tone region, and how many regions in all."""
    regions = [detect(t, SAMPLE_RATE) for t in tracks]
    return {"n": len(tracks), "tracks_with_a_beep": sum(bool(r) for r in regions),
            "regions": sum(len(r) for r in regions)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split-dir", type=Path, help="read the beeps of this split's sound_qa.jsonl")
    ap.add_argument("--clips", type=int, default=200, help="beeps, and tracks of each beep-less kind")
    ap.add_argument("--seconds", type=float, default=2.0,
                    help="clip length of drawn beeps (the default split: 16 frames at 8 fps)")
    ap.add_argument("--num-frames", type=int, default=4, help="frames the model samples (sound_row's default)")
    ap.add_argument("--noise-db", type=float, default=-35.0, help="level of the white noise tracks (dBFS)")
    ap.add_argument("--volume", type=float, default=0.5,
                    help="the beeps' amplitude (beep's default 0.5: -9 dBFS RMS; eSpeak's speech is about -20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    beeps = split_beeps(args.split_dir, args.clips) if args.split_dir else drawn_beeps(args.clips, args.seconds, rng)
    speech = spoken([narration_text(rng) for _ in range(args.clips)])
    can_speak = speech is not None

    results: dict = {"beeps": {}, "false": {}}
    results["beeps"]["alone"] = score_beeps(beeps, lambda b: [], args.num_frames, args.volume)
    results["beeps"][f"over noise ({args.noise_db:g} dBFS)"] = score_beeps(
        beeps, lambda b: [(0.0, noise(b["duration"], args.noise_db, rng))], args.num_frames, args.volume)
    if can_speak:
        # A sentence from the clip's start, cut at its end: the beep sounds while someone speaks.
        results["beeps"]["over speech"] = score_beeps(
            beeps, lambda b: [(0.0, speech[int(rng.integers(len(speech)))])], args.num_frames, args.volume)

    seconds = beeps[0]["duration"] if beeps else args.seconds  # the clips' length
    results["false"]["silence"] = false_beeps([np.zeros(round(seconds * SAMPLE_RATE), np.float32)] * args.clips)
    results["false"][f"noise ({args.noise_db:g} dBFS)"] = false_beeps(
        [noise(seconds, args.noise_db, rng) for _ in range(args.clips)])
    if can_speak:
        # Each sentence whole, between short silences.
        speech_tracks = [mix([(0.3, s)], len(s) / SAMPLE_RATE + 0.6) for s in speech]
        results["false"]["speech"] = false_beeps(speech_tracks)
        results["false"][f"speech, bridged as speech is ({VoiceActivity().bridge_seconds:g} s)"] = false_beeps(
            speech_tracks, bridged_as_speech)
    results["settings"] = {"source": str(args.split_dir or "drawn"), "clips": len(beeps), "num_frames": args.num_frames,
                           "volume": args.volume, "espeak": can_speak,
                           "elapsed_seconds": round(time.perf_counter() - t0, 1)}

    print(f"beeps: {len(beeps)} from {results['settings']['source']} at volume {args.volume:g}, "
          f"frames over {args.num_frames} sampled")
    print("| track | beeps | found | start frame right | sounds line right | onset error median / p95 (s) "
          "| more than one |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results["beeps"].items():
        onset = (f"{r['onset_error_median']:.3f} / {r['onset_error_p95']:.3f}"
                 if r["onset_error_median"] is not None else "-")
        print(f"| {name} | {r['n']} | {r['found']} | {r['start_frame_right']} | {r['line_right']} | {onset} | "
              f"{r['more_than_one']} |")
    print()
    print("| track without a beep | tracks | tracks with a false beep | false beeps |")
    print("|---|---:|---:|---:|")
    for name, r in results["false"].items():
        print(f"| {name} | {r['n']} | {r['tracks_with_a_beep']} | {r['regions']} |")
    if not can_speak:
        print("eSpeak NG is missing: the speech tracks were skipped")
    print(f"elapsed {results['settings']['elapsed_seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
