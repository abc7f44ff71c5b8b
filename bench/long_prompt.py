"""Where a long text prompt's time to first token goes: the input safety check, then each engine's prefill.

In one process, no server: ``--prompts`` different text prompts of about ``--bytes`` bytes (scene descriptions
of the synthetic world, as ``bench/serve.py --text-bytes`` sends them) are checked by the default safety
policy's input stage, then answered with one token by each engine (cold KV cache every time). Prints the time
of each, and the prompt's length in tokens. Not part of ``make test``.

    python bench/long_prompt.py                                   # transformers; llamacpp too once built
    python bench/long_prompt.py --bytes 6000 --prompts 4 --gguf q8_0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import long_text  # noqa: E402

QUESTION = "\n\nWhich clip above has the most objects?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=6000, help="size of each prompt's text")
    parser.add_argument("--prompts", type=int, default=4, help="different prompts, each timed once")
    parser.add_argument("--gguf", default="q8_0", help="the llamacpp engine's weights (adapter, q8_0, f16)")
    args = parser.parse_args()

    from gpt4video.engines import GenerationParams
    from gpt4video.engines.llamacpp import is_available
    from gpt4video.modeling import GPT4Video
    from gpt4video.processing import Turn
    from gpt4video.safety.policy import SafetyConfig, SafetyPolicy

    texts = [long_text(i, args.bytes) + QUESTION for i in range(args.prompts)]
    policy = SafetyPolicy(SafetyConfig()).load()
    policy.check_input("warm up")
    checks = []
    for text in texts:
        start = time.perf_counter()
        policy.check_input(text)
        checks.append(time.perf_counter() - start)
    print(f"input safety check: {', '.join(f'{t:.2f}' for t in checks)} s")

    engines = {"transformers": {}} | ({"llamacpp": {"gguf": args.gguf}} if is_available() else {})
    for name, options in engines.items():
        model = GPT4Video.from_pretrained("smol", engine=name, engine_options=options)
        model.generate([Turn("user", "warm up")], (), GenerationParams(max_new_tokens=1))
        prefills = []
        for text in texts:
            if hasattr(model.engine, "clear_cache"):  # a cold prefill, not a cached prompt
                model.engine.clear_cache()
            reply = model.generate([Turn("user", text)], (), GenerationParams(max_new_tokens=1))
            prefills.append(reply.timings["time_to_first_token"])
        label = name + (f" --gguf {args.gguf}" if options else "")
        print(f"{label}: prompt of {reply.num_prompt_tokens} tokens, first token after "
              f"{', '.join(f'{t:.2f}' for t in prefills)} s")
    if not is_available():
        print("llama-cpp-python is not installed (make llamacpp): no llamacpp engine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
