"""Optional guard models for connected machines: Llama Guard 3 (text) and ShieldGemma 2 (frames).

Neither ships on PyPI: both are loaded by hub id or local directory with transformers, and raise
:class:`~gpt4video.errors.ModelLoadError` when they cannot be (offline, gated, wrong folder).
Tests build tiny models of the same classes from configs.

- ``llama_guard``: Llama Guard 3 (``meta-llama/Llama-Guard-3-1B`` or ``-8B``) is a causal LM whose
  chat template wraps a conversation in its safety policy; it answers ``safe``, or ``unsafe`` and a
  line of hazard codes (``S1,S10``). The score is P(unsafe) from the first generated token's logits
  (``unsafe`` against ``safe``), the codes map to our categories (:data:`LLAMA_GUARD_CATEGORIES`).
- ``shieldgemma``: ShieldGemma 2 (``google/shieldgemma-2-4b-it``) is an image classifier
  (``ShieldGemma2ForImageClassification``): for each image and policy (dangerous, sexual, violence)
  it gives P(Yes = the image violates the policy). Frames are sampled like the open_nsfw checker's
  and a policy flags the video when k of n frames reach the threshold.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelLoadError
from .base import CATEGORIES, CHECKERS, SafetyChecker, Verdict, as_frames, check_probability, check_thresholds
from .frames import default_k, k_of_n, sample_indices

#: Llama Guard 3's hazard codes (MLCommons taxonomy) → our categories.
LLAMA_GUARD_CATEGORIES: dict[str, str] = {
    "S1": "violence",    # violent crimes
    "S2": "illegal",     # non-violent crimes
    "S3": "sexual",      # sex-related crimes
    "S4": "sexual",      # child sexual exploitation
    "S5": "deception",   # defamation
    "S6": "illegal",     # specialized advice (dangerous medical/legal/financial advice)
    "S7": "illegal",     # privacy
    "S8": "illegal",     # intellectual property
    "S9": "weapons",     # indiscriminate weapons
    "S10": "hate",       # hate
    "S11": "self_harm",  # suicide and self-harm
    "S12": "sexual",     # sexual content
    "S13": "deception",  # elections (misinformation about voting)
    "S14": "illegal",    # code interpreter abuse
}

#: ShieldGemma 2's built-in policies → our categories.
SHIELDGEMMA_CATEGORIES: dict[str, str] = {"dangerous": "weapons", "sexual": "sexual", "violence": "violence"}

_CODE = re.compile(r"\bS(\d{1,2})\b")


def _torch_dtype(dtype: Any) -> Any:
    import torch

    if dtype is None or dtype == "auto":
        return dtype
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ConfigError(f"unknown dtype {dtype!r} (use float32, bfloat16, float16 or auto)")
    return value


def _load_error(kind: str, source: str, e: Exception) -> ModelLoadError:
    offline = "" if Path(source).exists() else (
        " (a hub id needs network access and, for gated models, an accepted licence and a token; "
        "offline, pass a local directory)")
    return ModelLoadError(f"cannot load {kind} from {source!r}: {type(e).__name__}: {e}{offline}")


def parse_llama_guard(output: str) -> tuple[bool | None, list[str]]:
    """Llama Guard's answer → (unsafe?, hazard codes). ``(None, [])`` when it is neither safe nor unsafe.

    ``"safe"`` → (False, []); ``"unsafe\\nS1,S10"`` → (True, ["S1", "S10"]).
    """
    text = output.strip()
    first, _, rest = text.partition("\n")
    word = first.strip().lower().rstrip(".")
    if word == "safe":
        return False, []
    if word == "unsafe" or word.startswith("unsafe"):
        codes = [f"S{int(n)}" for n in _CODE.findall(rest or first)]
        return True, list(dict.fromkeys(codes))
    return None, []


@CHECKERS.register("llama_guard")
class LlamaGuardChecker(SafetyChecker):
    """Llama Guard 3 over a user message (or a video prompt), by hub id or local directory.

    model: hub id or directory (default ``meta-llama/Llama-Guard-3-1B``). threshold: P(unsafe) cut
    (default 0.5, the model's own decision); thresholds: per-category cuts used when the answer names
    that category. content_format: how a message is given to the chat template: ``"list"``
    (``[{"type": "text", "text": ...}]``, the 1B model's template), ``"string"`` (the 8B's), or
    ``"auto"`` (list when the template reads ``['text']``). on_unparsed: ``"flag"`` (fail closed, the
    default) or ``"allow"`` when the answer is neither safe nor unsafe.
    """

    name = "llama_guard"
    kind = "text"
    categories = tuple(dict.fromkeys(LLAMA_GUARD_CATEGORIES.values()))

    def __init__(
        self,
        *,
        model: str = "meta-llama/Llama-Guard-3-1B",
        threshold: float = 0.5,
        thresholds: Mapping[str, float] | None = None,
        device: str = "cpu",
        dtype: Any = "float32",
        max_new_tokens: int = 20,
        content_format: str = "auto",
        on_unparsed: str = "flag",
        local_files_only: bool | None = None,
    ) -> None:
        self.threshold = check_probability(self.name, "threshold", threshold)
        self.thresholds = check_thresholds(self.name, thresholds, CATEGORIES)
        if content_format not in ("auto", "list", "string"):
            raise ConfigError(f"llama_guard: content_format must be auto, list or string, got {content_format!r}")
        if on_unparsed not in ("flag", "allow"):
            raise ConfigError(f"llama_guard: on_unparsed must be flag or allow, got {on_unparsed!r}")
        self.model_id = str(model)
        self.device = device
        self.dtype = dtype
        self.max_new_tokens = int(max_new_tokens)
        self.content_format = content_format
        self.on_unparsed = on_unparsed
        self.local_files_only = local_files_only
        self.model: Any = None
        self.tokenizer: Any = None
        self._verdict_ids: tuple[int, int] | None = None  # (safe, unsafe) first-token ids
        self._lock = threading.Lock()

    def load(self) -> LlamaGuardChecker:
        if self.model is not None:
            return self
        with self._lock:
            if self.model is not None:
                return self
            from transformers import AutoModelForCausalLM, AutoTokenizer

            kwargs: dict[str, Any] = {}
            if self.local_files_only is not None:
                kwargs["local_files_only"] = self.local_files_only
            try:
                tokenizer = AutoTokenizer.from_pretrained(self.model_id, **kwargs)
                model = AutoModelForCausalLM.from_pretrained(self.model_id, dtype=_torch_dtype(self.dtype), **kwargs)
            except Exception as e:  # noqa: BLE001 - offline, gated, missing files, wrong architecture
                raise _load_error("the Llama Guard model", self.model_id, e) from None
            if not getattr(tokenizer, "chat_template", None):
                raise ModelLoadError(
                    f"cannot use {self.model_id!r} as Llama Guard: its tokenizer has no chat template "
                    "(Llama Guard's template holds the safety policy)")
            self._verdict_ids = self._first_token_ids(tokenizer)
            self.tokenizer = tokenizer
            self.model = model.to(self.device).eval()
        return self

    @staticmethod
    def _first_token_ids(tokenizer: Any) -> tuple[int, int] | None:
        """Ids of the single tokens ``safe`` and ``unsafe``, if the vocabulary has them."""
        safe = tokenizer.encode("safe", add_special_tokens=False)
        unsafe = tokenizer.encode("unsafe", add_special_tokens=False)
        if len(safe) == 1 and len(unsafe) == 1 and safe[0] != unsafe[0]:
            return int(safe[0]), int(unsafe[0])
        return None

    def _conversation(self, text: str) -> list[dict[str, Any]]:
        fmt = self.content_format
        if fmt == "auto":
            template = str(self.tokenizer.chat_template)
            fmt = "list" if re.search(r"\[\s*['\"]text['\"]\s*\]", template) else "string"
        content: Any = [{"type": "text", "text": text}] if fmt == "list" else text
        return [{"role": "user", "content": content}]

    def _generate(self, input_ids: Any, attention_mask: Any) -> Any:
        """The model's greedy answer (``generate`` output with scores); tests may replace it."""
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        return self.model.generate(
            input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=self.max_new_tokens,
            do_sample=False, pad_token_id=pad, return_dict_in_generate=True, output_scores=True,
        )

    def check_text(self, text: str) -> Verdict:
        import torch

        self.load()
        encoded = self.tokenizer.apply_chat_template(
            self._conversation(text or ""), tokenize=True, return_tensors="pt", return_dict=True)
        input_ids = encoded["input_ids"].to(self.model.device)  # (1, L)
        attention_mask = encoded.get("attention_mask")
        if attention_mask is not None:
            attention_mask = attention_mask.to(self.model.device)
        with torch.inference_mode():
            out = self._generate(input_ids, attention_mask)
        sequences = out.sequences if hasattr(out, "sequences") else out
        answer = self.tokenizer.decode(sequences[0, input_ids.shape[1]:], skip_special_tokens=True)
        unsafe, codes = parse_llama_guard(answer)
        score = None
        scores = getattr(out, "scores", None)
        if self._verdict_ids is not None and scores:
            first = scores[0][0].float()  # (V,) logits of the first answer token
            pair = first[list(self._verdict_ids)]
            score = float(torch.softmax(pair, dim=-1)[1])  # P(unsafe | unsafe or safe)
        details: dict[str, Any] = {"output": answer.strip(), "codes": codes,
                                   "categories": [LLAMA_GUARD_CATEGORIES.get(c) for c in codes]}
        if unsafe is None:
            flagged = self.on_unparsed == "flag"
            reason = f"{self.name}: answer not understood ({answer.strip()[:60]!r}); {'flagged' if flagged else 'allowed'}"
            return Verdict(flagged, None, 1.0 if flagged else 0.0, self.threshold, self.name, reason, details)
        if score is None:
            score = 1.0 if unsafe else 0.0
        category = next((LLAMA_GUARD_CATEGORIES[c] for c in codes if c in LLAMA_GUARD_CATEGORIES), None)
        threshold = self.thresholds.get(category, self.threshold) if category else self.threshold
        flagged = score >= threshold
        codes_text = f" ({','.join(codes)})" if codes else ""
        reason = (f"{self.name}: {'unsafe' if unsafe else 'safe'}{codes_text}, P(unsafe) {score:.2f} "
                  f"{'≥' if flagged else '<'} {threshold:.2f}")
        return Verdict(flagged, category, score, threshold, self.name, reason, details)


@CHECKERS.register("shieldgemma")
class ShieldGemmaChecker(SafetyChecker):
    """ShieldGemma 2 over sampled frames, by hub id or local directory.

    model: hub id or directory (default ``google/shieldgemma-2-4b-it``). policies: which policies to
    ask about (default: the processor's built-in dangerous, sexual, violence). custom_policies:
    ``{name: description}`` added to them; policy_categories: ``{policy: category}`` for custom ones.
    threshold / thresholds: P(violation) cut, overall / per category (default 0.5). k, max_frames:
    as for open_nsfw (default k = max(2, ceil(n/4)) capped at n; n = 4 frames, each frame costs one
    4B-model pass per policy).
    """

    name = "shieldgemma"
    kind = "frames"
    categories = tuple(dict.fromkeys(SHIELDGEMMA_CATEGORIES.values()))

    def __init__(
        self,
        *,
        model: str = "google/shieldgemma-2-4b-it",
        policies: Sequence[str] | None = None,
        custom_policies: Mapping[str, str] | None = None,
        policy_categories: Mapping[str, str] | None = None,
        threshold: float = 0.5,
        thresholds: Mapping[str, float] | None = None,
        k: int | None = None,
        max_frames: int = 4,
        device: str = "cpu",
        dtype: Any = "float32",
        local_files_only: bool | None = None,
    ) -> None:
        self.model_id = str(model)
        self.policies = list(policies) if policies is not None else None
        self.custom_policies = dict(custom_policies or {})
        self.policy_categories = {**SHIELDGEMMA_CATEGORIES, **dict(policy_categories or {})}
        for policy, category in self.policy_categories.items():
            if category not in CATEGORIES:
                raise ConfigError(f"shieldgemma: policy {policy!r} maps to unknown category {category!r}")
        self.threshold = check_probability(self.name, "threshold", threshold)
        self.thresholds = check_thresholds(self.name, thresholds, CATEGORIES)
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ConfigError(f"shieldgemma: k must be an integer >= 1 or null, got {k!r}")
        if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
            raise ConfigError(f"shieldgemma: max_frames must be an integer >= 1, got {max_frames!r}")
        self.k = k
        self.max_frames = max_frames
        self.device = device
        self.dtype = dtype
        self.local_files_only = local_files_only
        self.model: Any = None
        self.processor: Any = None
        self._lock = threading.Lock()

    def load(self) -> ShieldGemmaChecker:
        if self.model is not None:
            return self
        with self._lock:
            if self.model is not None:
                return self
            try:
                from transformers import AutoProcessor, ShieldGemma2ForImageClassification
            except ImportError as e:
                raise ModelLoadError(f"shieldgemma needs a transformers release with ShieldGemma 2 ({e})") from None
            kwargs: dict[str, Any] = {}
            if self.local_files_only is not None:
                kwargs["local_files_only"] = self.local_files_only
            try:
                processor = AutoProcessor.from_pretrained(self.model_id, **kwargs)
                model = ShieldGemma2ForImageClassification.from_pretrained(
                    self.model_id, dtype=_torch_dtype(self.dtype), **kwargs)
            except Exception as e:  # noqa: BLE001
                raise _load_error("the ShieldGemma 2 model", self.model_id, e) from None
            known = {**getattr(processor, "policy_definitions", {}), **self.custom_policies}
            for policy in self.policies or list(known):
                if policy not in known:
                    raise ConfigError(f"shieldgemma: unknown policy {policy!r}; known: {', '.join(sorted(known))}")
                if policy not in self.policy_categories:
                    raise ConfigError(
                        f"shieldgemma: policy {policy!r} has no category; give it one in policy_categories")
            self.processor = processor
            self.model = model.to(self.device).eval()
        return self

    def policy_scores(self, frames: Any) -> tuple[list[int], list[str], np.ndarray]:
        """(sampled frame indices, policies, P(violation) of shape (n_frames, n_policies))."""
        import torch
        from PIL import Image

        array = as_frames(frames)
        indices = sample_indices(array.shape[0], self.max_frames)
        self.load()
        policies = self.policies or list({**self.processor.policy_definitions, **self.custom_policies})
        images = [Image.fromarray(array[i]) for i in indices]
        kwargs: dict[str, Any] = {"policies": policies, "return_tensors": "pt"}
        if self.custom_policies:
            kwargs["custom_policies"] = self.custom_policies
        inputs = self.processor(images=images, **kwargs).to(self.model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        with torch.inference_mode():
            out = self.model(**inputs)
        # Row order: image 1 × every policy, then image 2 × every policy, ... Column 0 is P(Yes), and
        # Yes means "the image violates the policy".
        probs = out.probabilities[:, 0].float().cpu().numpy()  # (n_frames * n_policies,)
        return indices, policies, probs.reshape(len(images), len(policies))  # (n_frames, n_policies)

    def check_frames(self, frames: Any) -> Verdict:
        indices, policies, probs = self.policy_scores(frames)
        n = len(indices)
        k = min(self.k, n) if self.k is not None else default_k(n)
        best: tuple[float, str, bool, float, int] | None = None  # (margin, policy, flagged, kth, over)
        per_policy: dict[str, Any] = {}
        for j, policy in enumerate(policies):
            category = self.policy_categories[policy]
            threshold = self.thresholds.get(category, self.threshold)
            flagged, kth, over = k_of_n(probs[:, j], threshold, k)
            per_policy[policy] = {"category": category, "frame_scores": probs[:, j].round(6).tolist(),
                                  "score": kth, "threshold": threshold, "frames_over": over}
            margin = kth - threshold
            if best is None or (flagged, margin) > (best[2], best[0]):
                best = (margin, policy, flagged, kth, over)
        assert best is not None
        _, policy, flagged, kth, over = best
        category = self.policy_categories[policy]
        threshold = per_policy[policy]["threshold"]
        reason = (f"{self.name}: {policy} on {over} of {n} frames ≥ {threshold:.2f} "
                  f"({'flagged' if flagged else 'allowed'}: {k} needed)")
        return Verdict(flagged, category, kth, threshold, self.name, reason,
                       details={"frame_indices": indices, "k": k, "n": n, "policies": per_policy})
