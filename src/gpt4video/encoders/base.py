"""Frozen frame encoders: uint8 RGB frames (T, H, W, 3) → frame features F_v (T, N, D_enc).

Every encoder is a :class:`FrameEncoder` registered in :data:`ENCODERS` under a name, and built from
an :class:`~gpt4video.config.EncoderConfig` by :func:`build_encoder`. Encoders are frozen: their
parameters never require gradients, they stay in eval mode, and ``forward`` runs under
``torch.no_grad()`` (not ``inference_mode``: its tensors could not be saved for backward by the
trainable abstractor that consumes F_v).

A subclass implements two steps, and the base class does the input checks and the batching:

* ``_preprocess(frames)``: one run of same-size frames, a uint8 tensor (B, H, W, 3), → model input (B, ...)
  of a fixed size, so runs of different sizes can be concatenated into one batch;
* ``_encode(batch)``: model input (B, ...) → features (B, N, D).

An encoder whose network also scores frames (the Open-NSFW trunk computes P(nsfw) in the same run)
overrides ``_encode_with_scores`` and sets :attr:`FrameEncoder.frame_score_source`. A caller that
wants those scores wraps its encoding in :meth:`FrameEncoder.recording_frame_scores`: the scores of
every frame encoded by that thread inside the ``with`` block are collected, in order, at no extra
cost, and the features are exactly what they are without recording.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from ..config import EncoderConfig
from ..errors import InputError
from ..registry import Registry

ENCODERS: Registry[type[FrameEncoder]] = Registry("frame encoder")

#: What ``FrameEncoder.forward`` accepts: one (T, H, W, 3) uint8 array/tensor, or a list of
#: (H, W, 3) / (T, H, W, 3) arrays/tensors (or PIL images) whose sizes may differ.
Frames = Union[np.ndarray, torch.Tensor, Sequence[Any]]


def _describe(x: Any) -> str:
    shape = tuple(x.shape) if hasattr(x, "shape") else None
    return f"{type(x).__name__} of shape {shape}" if shape is not None else type(x).__name__


def _as_uint8_tensor(x: Any, where: str, allowed_ndim: tuple[int, ...]) -> torch.Tensor:
    """One array/tensor/PIL image → a uint8 tensor (T, H, W, 3), checking ndim, channels and dtype."""
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        try:  # a PIL image, without importing PIL for everyone
            from PIL import Image
        except ImportError:  # pragma: no cover - pillow is a dependency
            Image = None  # type: ignore[assignment]
        if Image is not None and isinstance(x, Image.Image):
            x = np.asarray(x.convert("RGB"))
        else:
            raise InputError(f"{where}: expected a uint8 array or tensor of RGB frames, got {_describe(x)}")
    shape = tuple(x.shape)
    if x.ndim not in allowed_ndim:
        expected = " or ".join({3: "(H, W, 3)", 4: "(T, H, W, 3)"}[n] for n in allowed_ndim)
        raise InputError(f"{where}: expected frames of shape {expected}, got {x.ndim}-D shape {shape}")
    if shape[-1] != 3:
        raise InputError(f"{where}: expected 3 RGB channels in the last dimension, got shape {shape}")
    if x.dtype not in (np.uint8, torch.uint8):
        raise InputError(f"{where}: expected uint8 RGB frames (0-255), got dtype {x.dtype}")
    if shape[-3] == 0 or shape[-2] == 0:
        raise InputError(f"{where}: frames have zero height or width, shape {shape}")
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    return x if x.ndim == 4 else x.unsqueeze(0)  # (T, H, W, 3)


def as_frame_clips(frames: Frames) -> list[torch.Tensor]:
    """Check ``frames`` and return it as a list of uint8 tensors (T_i, H_i, W_i, 3), one per size run.

    Raises :class:`InputError` naming the problem (wrong type, ndim, channel count or dtype).
    """
    if isinstance(frames, (np.ndarray, torch.Tensor)):
        clip = _as_uint8_tensor(frames, "frames", (4,))
        return [clip] if len(clip) else []
    if isinstance(frames, (list, tuple)):
        clips = [_as_uint8_tensor(x, f"frames[{i}]", (3, 4)) for i, x in enumerate(frames)]
        return [c for c in clips if len(c)]
    return [_as_uint8_tensor(frames, "frames", (4,))]  # PIL image or unknown type: a clear error


def _chunks(clips: list[torch.Tensor], batch_size: int) -> Iterator[list[torch.Tensor]]:
    """Split clips into batches of at most ``batch_size`` frames; each batch is a list of same-size runs."""
    batch: list[torch.Tensor] = []
    room = batch_size
    for clip in clips:
        start = 0
        while start < len(clip):
            take = min(room, len(clip) - start)
            batch.append(clip[start:start + take])
            start += take
            room -= take
            if room == 0:
                yield batch
                batch, room = [], batch_size
    if batch:
        yield batch


@dataclass
class FrameScoreRecord:
    """Per-frame scores an encoder computed while encoding (see :meth:`FrameEncoder.recording_frame_scores`).

    ``kind``: what the scores are (``"open_nsfw"``: P(nsfw) of each frame), None when the encoder
    computes none. ``model_path``: the network that computed them. ``preprocessing``: how frames were
    prepared for it (a scorer with other preprocessing may disagree slightly). ``scores``: one float
    per encoded frame, in encoding order.
    """

    kind: str | None = None
    model_path: Path | None = None
    preprocessing: str = ""
    scores: list[float] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return self.kind is not None

    def array(self) -> np.ndarray:
        return np.asarray(self.scores, dtype=np.float64)  # (frames,)


class FrameEncoder(torch.nn.Module, abc.ABC):
    """A frozen image model applied to every frame: frames (T, H, W, 3) uint8 → features (T, N, D).

    ``hidden_size`` is D (D_enc) and ``tokens_per_frame`` is N. The output is on :attr:`device`, in
    :attr:`dtype` (float32 unless another dtype was given). Frames are processed ``config.batch_size``
    at a time; frames of any size are accepted (each encoder resizes them itself).
    """

    def __init__(self, config: EncoderConfig, *, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.config = config
        self._device = torch.device(device)
        self._dtype = dtype
        self._recording = threading.local()  # per thread: the FrameScoreRecords being filled
        super().train(False)

    # --- what a subclass provides -------------------------------------------------------------
    @property
    @abc.abstractmethod
    def hidden_size(self) -> int:
        """D_enc, the width of each token."""

    @property
    @abc.abstractmethod
    def tokens_per_frame(self) -> int:
        """N, the number of tokens per frame."""

    @abc.abstractmethod
    def _preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """Same-size uint8 frames (B, H, W, 3) → model input (B, ...) of a fixed shape."""

    @abc.abstractmethod
    def _encode(self, batch: torch.Tensor) -> torch.Tensor:
        """Model input (B, ...) → features (B, N, D)."""

    #: What :meth:`_encode_with_scores` scores (e.g. ``"open_nsfw"``), None if it scores nothing.
    frame_score_kind: str | None = None

    def _encode_with_scores(self, batch: torch.Tensor) -> tuple[torch.Tensor, np.ndarray | None]:
        """Model input (B, ...) → (features (B, N, D), per-frame scores (B,) or None). The features must
        equal :meth:`_encode`'s; encoders whose network scores frames override this."""
        return self._encode(batch), None

    def _score_record(self) -> FrameScoreRecord:
        """An empty record describing this encoder's scores (subclasses add model path and preprocessing)."""
        return FrameScoreRecord(kind=self.frame_score_kind)

    # --- shared behaviour ---------------------------------------------------------------------
    @contextmanager
    def recording_frame_scores(self) -> Iterator[FrameScoreRecord]:
        """Collect the per-frame scores of everything this thread encodes inside the ``with`` block.

        >>> with encoder.recording_frame_scores() as record:
        ...     features = encoder(frames)          # (T, N, D), unchanged
        >>> record.array()                           # (T,) P(nsfw) for the Open-NSFW encoder

        ``record.available`` is False for an encoder that scores nothing. Other threads encoding at
        the same time are not recorded; nested blocks each get every score.
        """
        record = self._score_record()
        active = getattr(self._recording, "records", None)
        if active is None:
            active = self._recording.records = []
        active.append(record)
        try:
            yield record
        finally:
            active.remove(record)

    @property
    def device(self) -> torch.device:
        param = next(self.parameters(), None)
        return param.device if param is not None else self._device

    @property
    def dtype(self) -> torch.dtype:
        param = next(self.parameters(), None)
        return param.dtype if param is not None else self._dtype

    def __getstate__(self) -> dict[str, Any]:  # a threading.local cannot be pickled or deep-copied
        state = dict(self.__dict__)
        state.pop("_recording", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._recording = threading.local()

    def _freeze(self) -> None:
        """Make every parameter non-trainable; subclasses call this after building their model."""
        for param in self.parameters():
            param.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrameEncoder:
        """Frozen: always stays in eval mode, whatever ``mode`` is."""
        return super().train(False)

    def forward(self, frames: Frames) -> torch.Tensor:
        """frames (T, H, W, 3) uint8 RGB, or a list of (H, W, 3) / (T, H, W, 3) → features (T_total, N, D)."""
        clips = as_frame_clips(frames)
        device, dtype = self.device, self.dtype
        if not clips:
            return torch.empty(0, self.tokens_per_frame, self.hidden_size, device=device, dtype=dtype)
        outputs = []
        records = [r for r in getattr(self._recording, "records", None) or () if r.available]
        with torch.no_grad():
            for runs in _chunks(clips, self.config.batch_size):
                batch = torch.cat([self._preprocess(run) for run in runs])  # (B, ...) B <= batch_size
                if records:
                    feats, scores = self._encode_with_scores(batch)  # (B, N, D), (B,)
                    for record in records:
                        record.scores.extend(float(x) for x in np.asarray(scores).reshape(-1))
                else:
                    feats = self._encode(batch)  # (B, N, D)
                outputs.append(feats.to(device=device, dtype=dtype))
        return torch.cat(outputs)  # (T_total, N, D)

    def extra_repr(self) -> str:
        return (f"name={self.config.name!r}, tokens_per_frame={self.tokens_per_frame}, "
                f"hidden_size={self.hidden_size}, batch_size={self.config.batch_size}")


def build_encoder(config: EncoderConfig, *, device: str | torch.device = "cpu",
                  dtype: torch.dtype = torch.float32) -> FrameEncoder:
    """Build the frame encoder named ``config.name`` (see ``ENCODERS.names()``)."""
    cls = ENCODERS.get(config.name)
    return cls(config, device=device, dtype=dtype)
