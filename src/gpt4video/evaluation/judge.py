"""The GPT judge of zero-shot video QA (the Video-ChatGPT protocol), over any OpenAI-compatible endpoint.

Each (question, correct answer, predicted answer) goes to ``POST {base_url}/chat/completions`` with the
protocol's system and user prompts (:data:`SYSTEM_PROMPT`, :func:`user_prompt`; these texts are the
evaluation standard, kept as published so figures compare) at temperature 0. The reply must be a Python
dict string such as ``{'pred': 'yes', 'score': 4}``, read with ``ast.literal_eval`` as the published
scripts read it; ``pred`` counts as yes if it contains "yes", else as no if it contains "no", and
``score`` is ``int(score)``. Accuracy is yes / (yes + no), the score is the mean over the judged questions.

A reply that cannot be read, an HTTP error or a timeout is retried (``retries`` times, with a short
back-off); a judgment still failing then counts as no with score 0, and is reported. A judge that cannot
be reached at all (connection refused, unknown host, HTTP 401/403/404) stops the run with one
:class:`~gpt4video.errors.InputError`. Judgments are cached in a JSONL file, keyed by a hash of the
model and the prompts, so a rerun asks only for what is not there yet (failed judgments are not cached).
"""

from __future__ import annotations

import ast
import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpt4video import endpoint
from gpt4video.config import JudgeConfig
from gpt4video.endpoint import AttemptFailed, ChatEndpoint
from gpt4video.errors import InputError
from gpt4video.jsonl import append_jsonl, parsed_lines

__all__ = ["SYSTEM_PROMPT", "Judge", "JudgeConfig", "Judgment", "check_reachable", "parse_judgment", "summarize",
           "user_prompt"]

#: The protocol's system prompt (Video-ChatGPT's zero-shot QA evaluation).
SYSTEM_PROMPT = (
    "You are an intelligent chatbot designed for evaluating the correctness of generative outputs for "
    "question-answer pairs. Your task is to compare the predicted answer with the correct answer and determine "
    "if they match meaningfully. Here's how you can accomplish the task:------##INSTRUCTIONS: - Focus on the "
    "meaningful match between the predicted answer and the correct answer.\n- Consider synonyms or paraphrases "
    "as valid matches.\n- Evaluate the correctness of the prediction compared to the answer."
)


def user_prompt(question: str, answer: str, prediction: str) -> str:
    """The protocol's user prompt for one question."""
    return (
        "Please evaluate the following video-based question-answer pair:\n\n"
        f"Question: {question}\nCorrect Answer: {answer}\nPredicted Answer: {prediction}\n\n"
        "Provide your evaluation only as a yes/no and score where the score is an integer value between 0 and 5, "
        "with 5 indicating the highest meaningful match. Please generate the response in the form of a Python "
        "dictionary string with keys 'pred' and 'score', where value of 'pred' is  a string of 'yes' or 'no' and "
        "value of 'score' is in INTEGER, not STRING.DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only "
        "provide the Python dictionary string. For example, your response should look like this: "
        "{'pred': 'yes', 'score': 4.8}."
    )


@dataclass
class Judgment:
    """One judged question: ``yes`` and ``score`` as counted; ``error`` says why a failed one counts as no / 0."""

    yes: bool
    score: int
    reply: str | None = None
    error: str | None = None
    cached: bool = False


def parse_judgment(text: str) -> tuple[bool, int]:
    """(yes, score) from a judge's reply, read as the published scripts read it; ValueError if it cannot be."""
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        raise ValueError(f"not a Python dict string ({type(e).__name__})") from None
    if not isinstance(value, dict) or "pred" not in value or "score" not in value:
        raise ValueError("not a dict with 'pred' and 'score'")
    pred, score = value["pred"], value["score"]
    if not isinstance(pred, str):
        raise ValueError(f"'pred' is not a string ({pred!r})")
    lowered = pred.lower()
    if "yes" in lowered:
        yes = True
    elif "no" in lowered:
        yes = False
    else:
        raise ValueError(f"'pred' is neither yes nor no ({pred!r})")
    try:
        return yes, int(score)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"'score' is not a number ({score!r})") from None


def _readable(reply: str) -> bool:
    try:
        parse_judgment(reply)
    except ValueError:
        return False
    return True


class Judge:
    """Judges answers through ``config``'s endpoint, caching each judgment in ``cache`` (a JSONL file)."""

    def __init__(self, config: JudgeConfig, cache: str | Path | None = None, *, backoff: float = 1.0) -> None:
        if config.base_url is None or config.model is None:
            raise InputError("the judge needs --judge-base-url and --judge-model")
        self.config = config
        self.endpoint = ChatEndpoint(config.base_url, config.model, api_key=config.api_key, timeout=config.timeout,
                                     what="the judge")
        self.cache_path = Path(cache) if cache is not None else None
        self.backoff = backoff
        self._lock = threading.Lock()
        self._cache: dict[str, dict[str, Any]] = {}
        if self.cache_path is not None and self.cache_path.is_file():
            for _, row in parsed_lines(self.cache_path):
                # a torn last line (a crash) or an edited reply that no longer reads is left out and asked again
                if isinstance(row, dict) and isinstance(row.get("key"), str) and isinstance(row.get("reply"), str) \
                        and _readable(row["reply"]):
                    self._cache[row["key"]] = row

    def _key(self, system: str, user: str) -> str:
        return hashlib.sha256(json.dumps([self.config.model, system, user]).encode("utf-8")).hexdigest()

    def judge(self, question: str, answer: str, prediction: str) -> Judgment:
        """The judgment of one answer (from the cache if it is there). Raises InputError if the judge is unreachable."""
        system, user = SYSTEM_PROMPT, user_prompt(question, answer, prediction)
        key = self._key(system, user)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            yes, score = parse_judgment(hit["reply"])
            return Judgment(yes, score, hit["reply"], cached=True)
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        error = ""
        reply = None
        for attempt in range(self.config.retries + 1):
            if attempt and self.backoff:
                time.sleep(self.backoff * attempt)
            try:
                reply = self.endpoint.complete(messages, temperature=0)  # Unreachable stops the run
            except AttemptFailed as e:
                error = str(e)
                continue
            try:
                yes, score = parse_judgment(reply)
            except ValueError as e:
                error = f"unreadable judgment {reply[:80]!r}: {e}"
                continue
            row = {"key": key, "model": self.config.model, "question": question, "answer": answer,
                   "prediction": prediction, "reply": reply}
            with self._lock:
                self._cache[key] = row
                if self.cache_path is not None:
                    append_jsonl(self.cache_path, [row])
            return Judgment(yes, score, reply)
        return Judgment(False, 0, reply, error=f"after {self.config.retries + 1} attempts: {error}")

    def judge_all(self, items: Sequence[tuple[str, str, str]], *, progress: bool = True,
                  on_done: Callable[[int, Judgment], None] | None = None) -> list[Judgment]:
        """Judge every (question, answer, prediction), ``concurrency`` at a time, in order."""
        from tqdm.auto import tqdm

        results: list[Judgment | None] = [None] * len(items)
        with tqdm(total=len(items), desc="judge", unit="answer", disable=not progress) as bar, \
                ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            futures = {pool.submit(self.judge, *item): i for i, item in enumerate(items)}
            try:
                for future in as_completed(futures):
                    i = futures[future]
                    results[i] = future.result()
                    if on_done is not None:
                        on_done(i, results[i])
                    bar.update(1)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return [r for r in results if r is not None]


def check_reachable(config: JudgeConfig) -> None:
    """InputError unless something listens at the judge's host and port (checked before the predictions)."""
    endpoint.check_reachable(config.base_url or "", config.timeout, "the judge", "--judge-base-url")


def summarize(judgments: Sequence[Judgment]) -> dict[str, Any]:
    """accuracy = yes / (yes + no), score = mean score, and the counts (failed judgments count as no / 0)."""
    yes = sum(j.yes for j in judgments)
    no = len(judgments) - yes
    return {
        "accuracy": yes / (yes + no) if judgments else None,
        "score": sum(j.score for j in judgments) / len(judgments) if judgments else None,
        "judged": len(judgments), "yes": yes, "no": no,
        "failed_judgments": sum(j.error is not None for j in judgments),
        "cached_judgments": sum(j.cached for j in judgments),
    }
