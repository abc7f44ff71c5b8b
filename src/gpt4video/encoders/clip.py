"""A Hugging Face CLIP vision tower as a frozen frame encoder (the paper's choice: CLIP ViT-L/14).

No CLIP weights ship on PyPI, so this encoder loads a hub id (on connected machines, or when the
hub cache already holds it) or a local directory saved with ``save_pretrained``. A full ``CLIPModel``
checkpoint works too: only its vision tower is loaded.

Preprocessing runs in torch (no torchvision): the shorter side is resized to the model's
``image_size`` (bicubic, antialiased), the center ``image_size`` square is cropped, values are
scaled to [0, 1] and normalized with the mean/std of the checkpoint's ``preprocessor_config.json``
(OpenAI CLIP's values if it has none).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ..config import EncoderConfig
from ..errors import ConfigError, ModelLoadError
from .base import ENCODERS, FrameEncoder

if TYPE_CHECKING:
    from transformers import CLIPVisionModel

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PREPROCESSOR_FILE = "preprocessor_config.json"


def _looks_local(name: str) -> bool:
    """True when ``name`` can only be a filesystem path (not an ``org/model`` hub id)."""
    return (os.path.exists(name) or name.startswith(("/", ".", "~")) or name.count("/") > 1
            or (os.sep != "/" and os.sep in name))


def _load_error(name: str, reason: str) -> ModelLoadError:
    reason = " ".join(str(reason).split()) or "unknown error"
    if len(reason) > 300:
        reason = reason[:297] + "..."
    return ModelLoadError(f"cannot load CLIP vision model {name!r}: {reason}; "
                          "pass a local directory or a hub id available offline")


def _read_mean_std(name: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """image_mean / image_std from the checkpoint's preprocessor_config.json, or None if it has none."""
    path: str | os.PathLike[str] | None
    local = Path(name).expanduser()
    if local.is_dir():
        path = local / PREPROCESSOR_FILE
        if not path.is_file():
            return None
    else:
        try:
            from transformers.utils import cached_file

            path = cached_file(name, PREPROCESSOR_FILE, _raise_exceptions_for_missing_entries=False,
                               _raise_exceptions_for_connection_errors=False)
        except Exception:  # noqa: BLE001 - no preprocessor config is not an error: use the defaults
            return None
        if path is None:
            return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise _load_error(name, f"unreadable {PREPROCESSOR_FILE} ({e})") from None
    mean, std = data.get("image_mean"), data.get("image_std")
    if mean is None or std is None:
        return None
    return _check_mean_std(mean, std, f"{name}/{PREPROCESSOR_FILE}")


def _check_mean_std(mean: Sequence[float], std: Sequence[float], where: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    try:
        mean_t, std_t = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    except (TypeError, ValueError):
        raise ModelLoadError(f"{where}: image_mean and image_std must be lists of 3 numbers") from None
    if len(mean_t) != 3 or len(std_t) != 3 or any(s <= 0 for s in std_t):
        raise ModelLoadError(f"{where}: image_mean and image_std must be 3 numbers each, std > 0; "
                             f"got {list(mean_t)} and {list(std_t)}")
    return mean_t, std_t


def clip_pixels(frames: torch.Tensor, size: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """CLIP's preprocessing in torch: (B, H, W, 3) uint8 RGB → (B, 3, size, size) float32, the shorter side
    resized to ``size`` (bicubic, antialiased), the center square cropped, normalized by ``mean`` / ``std``
    ((1, 3, 1, 1) each, on the frames' device)."""
    x = frames.permute(0, 3, 1, 2).float()  # (B, 3, H, W)
    h, w = x.shape[-2:]
    short, long = min(h, w), max(h, w)
    new_long = max(size, int(size * long / short))
    new_h, new_w = (size, new_long) if h <= w else (new_long, size)
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", antialias=True,
                          align_corners=False).clamp_(0.0, 255.0)  # (B, 3, new_h, new_w)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    x = x[:, :, top:top + size, left:left + size]  # (B, 3, S, S)
    return (x / 255.0 - mean) / std


@ENCODERS.register("clip")
class CLIPFrameEncoder(FrameEncoder):
    """Frozen ``CLIPVisionModel``: frames → hidden_states[config.select_layer], all tokens (CLS + patches).

    ViT-L/14 at 224 px gives (T, 257, 1024). ``config.model`` is a hub id or a local directory;
    ``select_layer`` -1 is the last layer, -2 the penultimate (LLaVA's choice). Loaded with ``dtype``
    and moved to ``device``; outputs are in the model's dtype on its device.
    """

    def __init__(self, config: EncoderConfig, *, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, model: CLIPVisionModel | None = None,
                 image_mean: Sequence[float] | None = None, image_std: Sequence[float] | None = None) -> None:
        super().__init__(config, device=device, dtype=dtype)
        mean_std = None
        if model is None:
            model = self._load(config, dtype)
            model = model.to(device)
            if image_mean is None and image_std is None:
                mean_std = _read_mean_std(str(config.model))
        if image_mean is not None or image_std is not None:
            mean_std = _check_mean_std(image_mean or OPENAI_CLIP_MEAN, image_std or OPENAI_CLIP_STD, "clip encoder")
        mean, std = mean_std or (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)

        self.model = model
        vision = model.config
        self.image_size = int(vision.image_size)
        self.patch_size = int(vision.patch_size)
        num_states = int(vision.num_hidden_layers) + 1  # embeddings + one per layer
        if not -num_states <= config.select_layer < num_states:
            raise ConfigError(f"encoder.select_layer {config.select_layer} is out of range for a CLIP vision "
                              f"model with {num_states - 1} layers (use -{num_states}..{num_states - 1})")
        # (1, 3, 1, 1) each, float32 on the model's device; not saved (they come from the checkpoint)
        self.register_buffer("pixel_mean", torch.tensor(mean, device=self.device).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std, device=self.device).view(1, 3, 1, 1), persistent=False)
        self._freeze()

    @staticmethod
    def _load(config: EncoderConfig, dtype: torch.dtype) -> CLIPVisionModel:
        name = config.model
        if not name:
            raise ConfigError("encoder.model must be a hub id or a local directory for the 'clip' encoder")
        if _looks_local(name) and not Path(name).expanduser().is_dir():
            raise _load_error(name, "no such directory")
        from transformers import CLIPVisionModel

        path = str(Path(name).expanduser()) if _looks_local(name) else name
        try:
            return CLIPVisionModel.from_pretrained(path, dtype=dtype)
        except Exception as e:  # noqa: BLE001 - OSError, ValueError, hub errors: one clear message
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise _load_error(name, first) from None

    @classmethod
    def from_model(cls, model: CLIPVisionModel, config: EncoderConfig | None = None, *,
                   image_mean: Sequence[float] | None = None,
                   image_std: Sequence[float] | None = None) -> CLIPFrameEncoder:
        """Wrap an already-built ``CLIPVisionModel`` (kept on its device and dtype; frozen in place)."""
        config = config or EncoderConfig(name="clip")
        return cls(config, device=model.device, dtype=model.dtype, model=model,
                   image_mean=image_mean, image_std=image_std)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def tokens_per_frame(self) -> int:
        return (self.image_size // self.patch_size) ** 2 + 1

    def _preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        # frames: (B, H, W, 3) uint8 RGB → pixel_values (B, 3, S, S) normalized, S = image_size
        return clip_pixels(frames.to(self.device), self.image_size, self.pixel_mean, self.pixel_std).to(self.dtype)

    def _encode(self, batch: torch.Tensor) -> torch.Tensor:
        # batch: (B, 3, S, S) → (B, N, D), N = (S // patch)^2 + 1 (CLS first)
        if self.config.select_layer == -1:
            return self.model(pixel_values=batch).last_hidden_state
        out: Any = self.model(pixel_values=batch, output_hidden_states=True)
        return out.hidden_states[self.config.select_layer]
