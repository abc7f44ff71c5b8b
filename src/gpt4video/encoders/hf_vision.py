"""Hugging Face vision towers as frozen frame encoders: the shared loading, preprocessing and layer selection.

Each family (``clip``, ``siglip``, ``siglip2``, ``dinov2``: one module each beside this one) is a subclass of
:class:`HFVisionEncoder` that says which ``model_type`` values its checkpoints have and which transformers
class loads each, how many tokens come before the patch tokens, and how images are prepared when the
checkpoint has no ``preprocessor_config.json``. This module does the rest once:

* loading a hub id or a local directory (a full text+image checkpoint gives its vision tower); a checkpoint
  of another family is refused with one :class:`ConfigError` naming the encoder that loads it;
* preprocessing in torch (no torchvision), from the checkpoint's ``preprocessor_config.json`` (``size``,
  ``do_center_crop``, ``crop_size``, ``resample``, ``do_normalize``, ``image_mean``, ``image_std``) over the
  family's defaults: resize (the shorter side to a length, or the whole frame to a fixed size), an optional
  center crop, scaling to [0, 1], normalisation;
* layer selection: ``select_layer`` -1 is the model's ``last_hidden_state`` (after the final norm where the
  family has one: SigLIP, DINOv2), any other value indexes ``hidden_states`` (0 is the embeddings).

Every frame gives the same number of tokens (the abstractor needs a fixed N), so a preprocessing that would
give frames of varying size (a shortest-edge resize with no crop) is refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ..config import EncoderConfig
from ..errors import ConfigError, ModelLoadError
from .base import ENCODERS, FrameEncoder

PREPROCESSOR_FILE = "preprocessor_config.json"
MODEL_CONFIG_FILE = "config.json"
#: PIL's resampling filter numbers (as stored in preprocessor configs) → torch's interpolation mode. Lanczos,
#: box and Hamming (1, 4, 5) have no torch equivalent: antialiased bicubic stands in for them.
RESAMPLE_MODES = {0: "nearest", 2: "bilinear", 3: "bicubic"}


@dataclass(frozen=True)
class ImagePreprocessing:
    """How a frame becomes pixel values: resize, optional center crop, scale to [0, 1], normalise.

    resize: ``("shortest_edge", n)`` scales the shorter side to n keeping the aspect ratio;
    ``("exact", h, w)`` scales the frame to h × w. crop: the (h, w) center crop, or None.
    """

    resize: tuple
    crop: tuple[int, int] | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resample: str = "bicubic"

    @property
    def output_size(self) -> tuple[int, int]:
        """(H, W) of the pixel values of every frame."""
        if self.crop is not None:
            return self.crop
        if self.resize[0] == "exact":
            return int(self.resize[1]), int(self.resize[2])
        raise ModelLoadError("a shortest-edge resize with no center crop gives frames of varying size; "
                             "the encoder needs one size (set do_center_crop and crop_size)")

    def describe(self) -> str:
        resize = (f"shorter side to {self.resize[1]}" if self.resize[0] == "shortest_edge"
                  else f"to {self.resize[1]}x{self.resize[2]}")
        crop = f", center crop {self.crop[0]}x{self.crop[1]}" if self.crop else ", no crop"
        return f"resize {resize} ({self.resample}){crop}, mean {list(self.mean)}, std {list(self.std)}"

    def apply(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, H, W, 3) → float32 pixel values (B, 3, H', W') of :attr:`output_size`."""
        x = frames.permute(0, 3, 1, 2).float()  # (B, 3, H, W)
        h, w = x.shape[-2:]
        if self.resize[0] == "shortest_edge":
            side = int(self.resize[1])
            # the longer side as transformers computes it (int of the scaled length)
            new_h, new_w = (side, max(side, int(side * w / h))) if h <= w else (max(side, int(side * h / w)), side)
        else:
            new_h, new_w = int(self.resize[1]), int(self.resize[2])
        if (new_h, new_w) != (h, w):
            if self.resample == "nearest":
                x = F.interpolate(x, size=(new_h, new_w), mode="nearest")
            else:
                x = F.interpolate(x, size=(new_h, new_w), mode=self.resample, antialias=True,
                                  align_corners=False).clamp_(0.0, 255.0)  # (B, 3, new_h, new_w)
        if self.crop is not None:
            ch, cw = self.crop
            if ch > new_h or cw > new_w:  # a crop larger than the frame: pad with zeros around it
                pad_h, pad_w = max(ch - new_h, 0), max(cw - new_w, 0)
                x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
                new_h, new_w = x.shape[-2:]
            top, left = (new_h - ch) // 2, (new_w - cw) // 2
            x = x[:, :, top:top + ch, left:left + cw]  # (B, 3, ch, cw)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x / 255.0 - mean) / std


def looks_local(name: str) -> bool:
    """True when ``name`` can only be a filesystem path (not an ``org/model`` hub id)."""
    return (os.path.exists(name) or name.startswith(("/", ".", "~")) or name.count("/") > 1
            or (os.sep != "/" and os.sep in name))


def _short(reason: object) -> str:
    reason = " ".join(str(reason).split()) or "unknown error"
    return reason if len(reason) <= 300 else reason[:297] + "..."


def checkpoint_file(name: str, filename: str) -> Path | None:
    """A file of a checkpoint (local directory, or a hub id in the cache or reachable), None if it has none."""
    local = Path(name).expanduser()
    if local.is_dir():
        return local / filename if (local / filename).is_file() else None
    try:
        from transformers.utils import cached_file

        path = cached_file(name, filename, _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False)
    except Exception:  # noqa: BLE001 - a file we cannot reach is a file we do not have
        return None
    return Path(path) if path is not None else None


def read_checkpoint_json(name: str, filename: str) -> dict[str, Any] | None:
    """A JSON file of a checkpoint (see :func:`checkpoint_file`) as a dict, None if it has none."""
    path = checkpoint_file(name, filename)
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{name}: unreadable {filename} ({_short(e)})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{name}: {filename} is not a JSON object")
    return data


def check_mean_std(mean: Sequence[float], std: Sequence[float],
                   where: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    if isinstance(mean, (int, float)):
        mean = [mean] * 3
    if isinstance(std, (int, float)):
        std = [std] * 3
    try:
        mean_t, std_t = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    except (TypeError, ValueError):
        raise ModelLoadError(f"{where}: image_mean and image_std must be lists of 3 numbers") from None
    if len(mean_t) != 3 or len(std_t) != 3 or any(s <= 0 for s in std_t):
        raise ModelLoadError(f"{where}: image_mean and image_std must be 3 numbers each, std > 0; "
                             f"got {list(mean_t)} and {list(std_t)}")
    return mean_t, std_t  # type: ignore[return-value]


def _size_pair(value: Any, where: str) -> tuple[int, int]:
    if isinstance(value, int) and value > 0:
        return value, value
    if isinstance(value, dict) and isinstance(value.get("height"), int) and isinstance(value.get("width"), int):
        return int(value["height"]), int(value["width"])
    raise ModelLoadError(f"{where}: expected a size {{height, width}} or a number, got {value!r}")


def preprocessing_from_config(data: dict[str, Any], default: ImagePreprocessing, where: str) -> ImagePreprocessing:
    """``default`` with what an image processor config (``preprocessor_config.json``) says instead."""
    pre = default
    size = data.get("size")
    if isinstance(size, dict) and "shortest_edge" in size:
        pre = replace(pre, resize=("shortest_edge", int(size["shortest_edge"])))
    elif isinstance(size, int):  # old configs: a number is the shorter side
        pre = replace(pre, resize=("shortest_edge", size))
    elif size is not None:
        pre = replace(pre, resize=("exact", *_size_pair(size, f"{where} size")))
    if data.get("do_center_crop") is False:
        pre = replace(pre, crop=None)
    elif data.get("crop_size") is not None and (data.get("do_center_crop") or pre.crop is not None):
        pre = replace(pre, crop=_size_pair(data["crop_size"], f"{where} crop_size"))
    if "resample" in data and data["resample"] is not None:
        pre = replace(pre, resample=RESAMPLE_MODES.get(data["resample"], "bicubic"))
    if data.get("do_normalize") is False:
        pre = replace(pre, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    elif data.get("image_mean") is not None and data.get("image_std") is not None:
        mean, std = check_mean_std(data["image_mean"], data["image_std"], where)
        pre = replace(pre, mean=mean, std=std)
    pre.output_size  # noqa: B018 - refuses a preprocessing of varying frame size
    return pre


def encoder_for_model_type(model_type: str) -> str | None:
    """The registered encoder that loads checkpoints of ``model_type``, if one does."""
    for name in ENCODERS.names():
        cls = ENCODERS.get(name)
        if isinstance(cls, type) and issubclass(cls, HFVisionEncoder) and model_type in cls.model_classes:
            return name
    return None


class HFVisionEncoder(FrameEncoder):
    """A frozen Hugging Face vision model applied to every frame: frames → (T, N, D) tokens of one hidden state.

    Subclasses set :attr:`family`, :attr:`model_classes` and :attr:`default_preprocessing`; a family whose
    model takes other inputs than ``pixel_values`` overrides :meth:`_model_inputs` (SigLIP 2 NaFlex).
    """

    #: The family's name in messages ("SigLIP").
    family: ClassVar[str] = ""
    #: ``model_type`` of a checkpoint's config.json → the transformers class that loads its vision tower.
    model_classes: ClassVar[dict[str, str]] = {}
    #: Whether the model itself resizes its position embeddings to any input size (DINOv2 does).
    always_interpolates: ClassVar[bool] = False

    def __init__(self, config: EncoderConfig, *, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, model: Any = None,
                 image_mean: Sequence[float] | None = None, image_std: Sequence[float] | None = None) -> None:
        super().__init__(config, device=device, dtype=dtype)
        data = None
        if model is None:
            model = self._load(config, dtype).to(device)
            data = read_checkpoint_json(str(config.model), PREPROCESSOR_FILE)
        self.model = model
        vision = model.config
        self.patch_size = int(vision.patch_size)
        self.image_size = int(getattr(vision, "image_size", 0) or 0)
        where = f"{config.model}/{PREPROCESSOR_FILE}" if config.model else f"{self.family} encoder"
        pre = self.default_preprocessing(vision, data or {})
        if data is not None:
            pre = preprocessing_from_config(data, pre, where)
        if image_mean is not None or image_std is not None:
            mean, std = check_mean_std(image_mean or pre.mean, image_std or pre.std, f"{config.name} encoder")
            pre = replace(pre, mean=mean, std=std)
        self.preprocessing = pre
        num_states = int(vision.num_hidden_layers) + 1  # embeddings + one per layer
        if not -num_states <= config.select_layer < num_states:
            raise ConfigError(f"encoder.select_layer {config.select_layer} is out of range for a {self.family} "
                              f"vision model with {num_states - 1} layers (use -{num_states}..{num_states - 1})")
        self._freeze()

    # --- what a family provides ---------------------------------------------------------------
    def default_preprocessing(self, vision: Any, data: dict[str, Any]) -> ImagePreprocessing:
        """How frames are prepared unless the preprocessor config ``data`` (empty if none) says otherwise."""
        raise NotImplementedError

    def prefix_tokens(self, vision: Any) -> int:
        """Tokens before the patch tokens (CLS, registers)."""
        return 0

    def _model_inputs(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pixel values (B, 3, H, W) as the model's keyword arguments."""
        inputs = {"pixel_values": pixels}
        if not self.always_interpolates and self.image_size and self.preprocessing.output_size != (
                self.image_size, self.image_size):
            inputs["interpolate_pos_encoding"] = True  # a checkpoint run at another size than it was built for
        return inputs

    # --- loading ------------------------------------------------------------------------------
    @classmethod
    def _load(cls, config: EncoderConfig, dtype: torch.dtype) -> Any:
        name = config.model
        if not name:
            raise ConfigError(f"encoder.model must be a hub id or a local directory for the {config.name!r} encoder")
        if looks_local(name) and not Path(name).expanduser().is_dir():
            raise cls._load_error(name, "no such directory")
        path = str(Path(name).expanduser()) if looks_local(name) else name
        checkpoint = read_checkpoint_json(path, MODEL_CONFIG_FILE)
        model_type = (checkpoint or {}).get("model_type")
        if checkpoint is not None and model_type not in cls.model_classes:
            other = encoder_for_model_type(str(model_type))
            accepted = ", ".join(sorted(cls.model_classes))
            if other is not None:
                raise ConfigError(f"encoder.model {name!r} is a {ENCODERS.get(other).family} checkpoint (model_type "
                                  f"{model_type!r}), not {cls.family}: set encoder.name to {other!r}")
            raise ConfigError(f"encoder.model {name!r} has model_type {model_type!r}; the {config.name!r} encoder "
                              f"loads {accepted}")
        import transformers

        model_class = getattr(transformers, cls.model_classes.get(model_type, next(iter(cls.model_classes.values()))))
        try:
            return model_class.from_pretrained(path, dtype=dtype)
        except Exception as e:  # noqa: BLE001 - OSError, ValueError, hub errors: one clear message
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise cls._load_error(name, first) from None

    @classmethod
    def _load_error(cls, name: str, reason: str) -> ModelLoadError:
        return ModelLoadError(f"cannot load {cls.family} vision model {name!r}: {_short(reason)}; "
                              "pass a local directory or a hub id available offline")

    @classmethod
    def from_model(cls, model: Any, config: EncoderConfig | None = None, *,
                   image_mean: Sequence[float] | None = None,
                   image_std: Sequence[float] | None = None) -> HFVisionEncoder:
        """Wrap an already-built vision model (kept on its device and dtype; frozen in place)."""
        name = next(n for n in ENCODERS.names() if ENCODERS.get(n) is cls)
        config = config or EncoderConfig(name=name)
        return cls(config, device=model.device, dtype=model.dtype, model=model,
                   image_mean=image_mean, image_std=image_std)

    # --- the FrameEncoder interface -----------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def tokens_per_frame(self) -> int:
        h, w = self.preprocessing.output_size
        return self.prefix_tokens(self.model.config) + (h // self.patch_size) * (w // self.patch_size)

    def _preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        # frames: (B, H, W, 3) uint8 RGB → pixel values (B, 3, H', W'), normalised
        return self.preprocessing.apply(frames.to(self.device)).to(self.dtype)

    def _encode(self, batch: torch.Tensor) -> torch.Tensor:
        # batch: (B, ...) → (B, N, D)
        inputs = self._model_inputs(batch)
        if self.config.select_layer == -1:
            return self.model(**inputs).last_hidden_state
        out: Any = self.model(**inputs, output_hidden_states=True)
        return out.hidden_states[self.config.select_layer]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, preprocessing={self.preprocessing.describe()!r}"
