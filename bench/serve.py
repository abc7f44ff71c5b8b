"""Throughput and latency of ``gpt4video serve`` (the shipped smol model) at 1, 4 and 16 concurrent clients.

Starts the server as a child process on loopback (its queue large enough that no request is turned away,
unless ``--queue-size`` says otherwise), then for each concurrency level runs that many client threads,
each sending streamed video questions with the official openai client, one after another. Every request
asks about a synthetic clip sent as a data: URL and may write up to ``--max-tokens`` tokens. The requests of a
level each send a different clip (``--clips`` of them, rendered from consecutive scene seeds, used in turn), so
nothing a server could reuse between identical videos makes it look faster than a real workload would.

Prints a Markdown table per level: requests answered (and rejected with 429), throughput in requests/s and
generated tokens/s, and the p50/p95 of the whole request's latency and of the time to the first text.
``--json PATH`` also writes every request's figures. Progress goes to stderr. Not part of ``make test``.
``--text-bytes N`` sends text-only prompts of about N bytes instead (a long pasted text, different for every
request, then a question about it): the time to first text of a long prompt.

Usage::

    .venv/bin/python bench/serve.py [--levels 1 4 16] [--requests 16] [--max-tokens 32] [--engine llamacpp]
        [--max-batch N] [--clips N] [--text-bytes N] [--json PATH]
    .venv/bin/python bench/serve.py --levels 1 --requests 5 --text-bytes 6000 --max-tokens 4

The server decodes up to --max-batch requests together (continuous batching), so throughput grows with
clients until the batch is full or the work around the model (video decoding, encoding, safety checks, one
request at a time) is what limits it.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, log, machine_info, markdown_table  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def one_request(client, messages: list, max_tokens: int) -> dict:  # noqa: ANN001
    import openai

    start = time.perf_counter()
    first = None
    tokens = 0
    try:
        stream = client.chat.completions.create(model="smol", messages=messages, max_tokens=max_tokens, stream=True,
                                                stream_options={"include_usage": True})
        for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter() - start
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
    except openai.RateLimitError:
        return {"status": 429, "latency": time.perf_counter() - start}
    return {"status": 200, "latency": time.perf_counter() - start, "ttft": first, "tokens": tokens}


def long_text(seed: int, size: int) -> str:
    """About ``size`` bytes of plain sentences (scene descriptions of the synthetic world), different per seed."""
    from gpt4video.data.synthetic import sample_scene

    sentences = []
    i = 0
    while sum(len(x) + 1 for x in sentences) < size:
        scene = sample_scene(30_000_000 + 1000 * seed + i)
        sentences.append(f"In clip {i + 1}, " + "; ".join(
            f"a {o.color} {o.shape} {o.motion.replace('_', ' ')}" for o in scene.objects) + ".")
        i += 1
    return " ".join(sentences)[:size]


def run_level(url: str, clients: int, requests: int, conversations: list[list], max_tokens: int) -> dict:
    """``clients`` threads share ``requests`` requests, each thread sending its next one when the last ends;
    request ``i`` sends ``conversations[i % len(conversations)]``."""
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=600)
    todo = list(range(requests))
    lock = threading.Lock()
    results: list[dict] = []

    def worker() -> None:
        while True:
            with lock:
                if not todo:
                    return
                index = todo.pop()
            result = one_request(client, conversations[index % len(conversations)], max_tokens)
            with lock:
                results.append(result)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ok = [r for r in results if r["status"] == 200]
    latencies = [r["latency"] for r in ok]
    ttfts = [r["ttft"] for r in ok if r["ttft"] is not None]
    return {
        "clients": clients, "requests": requests, "answered": len(ok), "rejected_429": len(results) - len(ok),
        "wall_s": wall, "requests_per_s": len(ok) / wall, "tokens_per_s": sum(r["tokens"] for r in ok) / wall,
        "latency_p50_s": percentile(latencies, 50), "latency_p95_s": percentile(latencies, 95),
        "ttft_p50_s": percentile(ttfts, 50), "ttft_p95_s": percentile(ttfts, 95),
        "mean_tokens": statistics.mean(r["tokens"] for r in ok) if ok else 0.0, "results": results,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16], help="concurrent clients per level")
    parser.add_argument("--requests", type=int, default=16, help="requests per level (at least the level's clients)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--queue-size", type=int, default=32, help="the server's queue (default 32: nobody waits out)")
    parser.add_argument("--engine", default="transformers", help="the server's decoding engine (transformers, llamacpp, vllm)")
    parser.add_argument("--max-batch", type=int, default=None, help="the server's --max-batch (default: its own)")
    parser.add_argument("--gguf", default=None, help="with --engine llamacpp: the server's --gguf (adapter, q8_0, f16)")
    parser.add_argument("--clips", type=int, default=None,
                        help="distinct clips, sent in turn (default: one per request of the largest level)")
    parser.add_argument("--text-bytes", type=int, default=None,
                        help="send text-only prompts of about this many bytes instead of video questions")
    parser.add_argument("--json", metavar="PATH", help="also write every figure here")
    args = parser.parse_args()

    from gpt4video.data.synthetic import sample_scene, write_clip
    from gpt4video.serving.process import start_server

    with tempfile.TemporaryDirectory(prefix="gpt4video-bench-serve-") as tmp:
        folder = Path(tmp)
        count = args.clips or max(args.requests, *args.levels)
        conversations = []
        for i in range(count if args.text_bytes else 0):
            text = long_text(i, args.text_bytes) + "\n\nWhich clip above has the most objects?"
            conversations.append([{"role": "user", "content": text}])
        for i in range(0 if args.text_bytes else count):
            clip = write_clip(sample_scene(20_010_030 + i), folder / f"clip-{i}.mp4")
            url = "data:video/mp4;base64," + base64.b64encode(clip.read_bytes()).decode()
            conversations.append([{"role": "user", "content": [{"type": "text", "text": "Describe this video."},
                                                               {"type": "video_url", "video_url": {"url": url}}]}])
        log(f"starting gpt4video serve (smol, engine {args.engine})")
        batch = [] if args.max_batch is None else ["--max-batch", str(args.max_batch)]
        batch += [] if args.gguf is None else ["--gguf", args.gguf]
        server = start_server(folder, "--queue-size", str(args.queue_size), "--max-tokens", str(args.max_tokens),
                              "--no-web", "--engine", args.engine, *batch)
        try:
            log("warming up")
            run_level(server.url, 1, 2, conversations, args.max_tokens)
            levels = []
            for clients in args.levels:
                requests = max(args.requests, clients)
                log(f"{clients} concurrent client(s), {requests} requests")
                levels.append(run_level(server.url, clients, requests, conversations, args.max_tokens))
        finally:
            status = server.stop()
        log(f"server stopped (status {status})")

    rows = [[lv["clients"], f"{lv['answered']} / {lv['requests']}", lv["rejected_429"], f"{lv['requests_per_s']:.2f}",
             f"{lv['tokens_per_s']:.1f}", f"{lv['latency_p50_s']:.2f}", f"{lv['latency_p95_s']:.2f}",
             f"{lv['ttft_p50_s']:.2f}", f"{lv['ttft_p95_s']:.2f}"] for lv in levels]
    print(markdown_table(["clients", "answered", "429", "requests/s", "tokens/s", "latency p50 (s)",
                          "latency p95 (s)", "first text p50 (s)", "first text p95 (s)"], rows))
    mean_tokens = statistics.mean(lv["mean_tokens"] for lv in levels)
    asked = (f"text prompts of {args.text_bytes} bytes ({len(conversations)} different ones in turn)" if args.text_bytes
             else f"video questions ({len(conversations)} different synthetic clips in turn, as data: URLs)")
    print(f"\nstreamed {asked}, up to "
          f"{args.max_tokens} tokens "
          f"({mean_tokens:.1f} written on average); server queue {args.queue_size}, --max-batch "
          f"{args.max_batch or 'default'}; load average after: "
          f"{load_average()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_info(), "args": vars(args), "levels": levels},
                                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
