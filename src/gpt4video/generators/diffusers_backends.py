"""Text-to-video backends on diffusers pipelines, loaded by hub id or local directory, and
:class:`DiffusersBackend`, the options and loading every diffusers backend shares (the text-to-image ones of
:mod:`.diffusers_images` too).

Install with ``pip install 'gpt4video[gen]'``. Nothing is imported or loaded until a backend is
first used (or :meth:`DiffusersGenerator.load` is called): importing this module does not import
diffusers or torch.

===================  =========================  ==================================================  ==========================  ==============================================  ======================
name                 diffusers pipeline         default checkpoint (``model``)                      licence of the checkpoint   memory, approximately                           native clip
===================  =========================  ==================================================  ==========================  ==============================================  ======================
``zeroscope``        TextToVideoSDPipeline      cerspense/zeroscope_v2_576w                         CC-BY-NC-4.0                ~8 GB GPU in fp16 at 576x320 x 24 frames        576x320, 24 frames
``modelscope``       TextToVideoSDPipeline      ali-vilab/text-to-video-ms-1.7b                     CC-BY-NC-4.0                ~16 GB RAM and ~16 GB GPU (model card);         256x256, 16 frames
                                                                                                                                much less with cpu_offload + vae_slicing
``animatediff``      AnimateDiffPipeline        stable-diffusion-v1-5/stable-diffusion-v1-5         SD 1.5: CreativeML          ~8-12 GB GPU in fp16 at 512x512 x 16 frames     512x512, 16 frames
                                                + ``extra.motion_adapter`` (default                 OpenRAIL-M; adapter:        (check the model card)                          (at most 32)
                                                guoyww/animatediff-motion-adapter-v1-5-2)           Apache-2.0 (check the
                                                                                                    model card)
``cogvideox``        CogVideoXPipeline          THUDM/CogVideoX-2b                                  Apache-2.0                  ~12.5 GB GPU in fp16; ~4 GB with cpu_offload    720x480, 49 frames
                                                                                                                                and vae_tiling (model card)
``ltx``              LTXPipeline                Lightricks/LTX-Video                                custom Lightricks licence,  2B transformer + T5-XXL text encoder: plan      704x480, 161 frames
                                                                                                    varies by version (check    for 16 GB+ GPU in bf16, less with cpu_offload
                                                                                                    the model card)             (check the model card)
``wan``              WanPipeline                Wan-AI/Wan2.1-T2V-1.3B-Diffusers                    Apache-2.0                  ~8 GB GPU (Wan-AI's figure, text encoder        832x480, 81 frames
                                                                                                                                offloaded); use cpu_offload on small GPUs
``text2video-zero``  TextToVideoZeroPipeline    stable-diffusion-v1-5/stable-diffusion-v1-5         CreativeML OpenRAIL-M       a Stable Diffusion 1.5 run over all frames at   512x512, 8 frames
                                                                                                                                once (check the model card)
===================  =========================  ==================================================  ==========================  ==============================================  ======================

Licences and memory figures are those published with the checkpoints when this was written; the
model cards are authoritative (several forbid commercial use). ``zeroscope``, ``modelscope`` and
``text2video-zero`` use pipelines that diffusers has deprecated (they still work, without fixes).

Every backend takes the same options (see :class:`~gpt4video.generators.base.GeneratorConfig`):
``model``, ``dtype`` ("auto": float32 on CPU, the family's half precision on a GPU), ``device``,
``cpu_offload`` (diffusers' ``enable_model_cpu_offload``), ``num_inference_steps``,
``guidance_scale`` and ``extra``:

- ``variant``: weight variant to download, e.g. "fp16".
- ``scheduler``: a diffusers scheduler class name (e.g. "DPMSolverMultistepScheduler") built from
  the checkpoint's scheduler config.
- ``vae_slicing`` / ``vae_tiling``: decode in slices / tiles (less memory).
- ``call_kwargs``: more keyword arguments for the pipeline call (e.g. ``frame_rate`` for ltx,
  ``t0``/``t1`` for text2video-zero).
- animatediff: ``motion_adapter`` (hub id or directory). wan: ``flow_shift`` (for flow-matching
  UniPC/DPM schedulers: 3.0 for 480p, 5.0 for 720p).

Output is always exactly ``(num_frames, height, width, 3)`` uint8. Families whose VAE compresses
time need particular frame counts (cogvideox and wan ``4k+1``, ltx ``8k+1``) and all need sizes
that are multiples of 8 to 32 pixels: the backend generates the next valid count and size up, then
keeps the first ``num_frames`` frames and the centre ``height`` x ``width``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from gpt4video.errors import ConfigError, InputError, ModelLoadError

from .base import GENERATORS, VideoGenerator, normalize_dtype

if TYPE_CHECKING:  # numpy loads when frames are first converted, not when the backends register
    import numpy as np

__all__ = [
    "AnimateDiffGenerator",
    "CogVideoXGenerator",
    "DiffusersBackend",
    "DiffusersGenerator",
    "LTXGenerator",
    "ModelScopeGenerator",
    "TextToVideoZeroGenerator",
    "WanGenerator",
    "ZeroscopeGenerator",
    "to_uint8_video",
]

_COMMON_EXTRA = frozenset({"variant", "scheduler", "vae_slicing", "vae_tiling", "call_kwargs"})
# Call arguments the backend sets itself (or that have their own option); call_kwargs may not set them.
_RESERVED_CALL_KWARGS = frozenset({
    "prompt", "negative_prompt", "height", "width", "num_frames", "video_length", "generator", "output_type",
    "return_dict", "num_inference_steps", "guidance_scale", "num_images_per_prompt",
})


def _first_line(error: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message`` (shortened), for one-line errors."""
    text = str(error).strip()
    line = text.splitlines()[0].strip() if text else ""
    if len(line) > limit:
        line = line[: limit - 1] + "…"
    return f"{type(error).__name__}: {line}" if line else type(error).__name__


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


# ==============================================================================================
# Output conversion


def _unwrap(output: Any) -> Any:
    """The frames inside a pipeline output object or tuple."""
    for attr in ("frames", "images", "videos"):
        value = getattr(output, attr, None)
        if value is not None:
            return value
    if isinstance(output, tuple) and output:
        return output[0]
    return output


def to_uint8_video(frames: Any) -> np.ndarray:
    """Convert what a video pipeline returns into one ``(T, H, W, 3)`` uint8 clip.

    Accepts a pipeline output (``.frames`` / ``.images``) or tuple; a numpy array or torch tensor
    (float in [0, 1] as diffusers' ``output_type="np"`` gives, or integers in [0, 255]) with or
    without leading batch dimensions (the first video is taken) and channels last or
    ``(T, C, H, W)``; or (nested) lists of PIL images / arrays. Grey frames are repeated to RGB,
    an alpha channel is dropped.
    """
    import numpy as np

    frames = _unwrap(frames)
    while isinstance(frames, (list, tuple)):  # a batch of videos, or one video as a list of frames
        if not frames:
            raise ValueError("the pipeline returned no frames")
        if isinstance(frames[0], (list, tuple)) or _ndim(frames[0]) >= 4:
            frames = frames[0]
            continue
        frames = np.stack([_as_array(f) for f in frames])
    array = _as_array(frames)
    while array.ndim > 4:  # (B, T, H, W, C) and similar: the first video
        array = array[0]
    if array.ndim == 3:
        array = array[None] if array.shape[-1] in (1, 3, 4) else array[..., None]  # one frame / grey frames
    if array.ndim != 4:
        raise ValueError(f"cannot read a video from an array of shape {array.shape}")
    if array.shape[-1] not in (1, 3, 4):
        if array.shape[1] in (1, 3, 4):  # (T, C, H, W)
            array = array.transpose(0, 2, 3, 1)
        elif array.shape[0] in (1, 3, 4):  # (C, T, H, W)
            array = array.transpose(1, 2, 3, 0)
        else:
            raise ValueError(f"cannot find the colour channels in frames of shape {array.shape}")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    elif array.shape[-1] == 4:
        array = array[..., :3]
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == np.bool_:
        return np.ascontiguousarray(array.astype(np.uint8) * 255)
    if np.issubdtype(array.dtype, np.integer):
        return np.ascontiguousarray(np.clip(array, 0, 255).astype(np.uint8))
    array = np.nan_to_num(array.astype(np.float32), nan=0.0)
    return np.ascontiguousarray(np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8))


def _ndim(item: Any) -> int:
    shape = getattr(item, "shape", None)
    return len(shape) if shape is not None else 0


def _as_array(item: Any) -> np.ndarray:
    import numpy as np

    if hasattr(item, "detach") and hasattr(item, "cpu"):  # a torch tensor
        item = item.detach().cpu()
        if str(item.dtype) in ("torch.bfloat16", "torch.float16"):
            item = item.float()
        return item.numpy()
    return np.asarray(item)


def _center_crop(video: np.ndarray, height: int, width: int) -> np.ndarray:
    import numpy as np

    top = (video.shape[1] - height) // 2
    left = (video.shape[2] - width) // 2
    return np.ascontiguousarray(video[:, top : top + height, left : left + width])


# ==============================================================================================
# Base class


class DiffusersBackend:
    """What every backend on a diffusers pipeline shares, video or image: its options, loading by hub id or
    directory, placement on a device, and the pipeline call. :class:`DiffusersGenerator` (text to video) and
    :class:`~gpt4video.generators.diffusers_images.DiffusersImageGenerator` (text to image) build on it.

    Args:
        model: Hub id or local directory (None: :attr:`default_model`).
        dtype: "auto", "float32", "float16" or "bfloat16".
        device: Where to run ("cpu", "cuda", "cuda:1", "mps", ...; None: "cpu").
        cpu_offload: Keep idle sub-models on the CPU (needs an accelerator ``device``).
        num_inference_steps, guidance_scale: Diffusion settings (None: the family's defaults).
        extra: Family-specific options (module docstring).

    The weights load on first use, or when :meth:`load` is called. :meth:`from_pipeline` wraps a
    pipeline object that is already built (tests build tiny ones from configs).
    """

    #: What the backend is, in messages ("video generator" or "image generator").
    kind: ClassVar[str] = "video generator"
    name: ClassVar[str] = ""
    #: Name of the diffusers pipeline class.
    pipeline_class: ClassVar[str] = ""
    #: Hub id used when no model is given.
    default_model: ClassVar[str] = ""
    #: Diffusion steps and guidance when none are given (None: the pipeline's own default).
    default_steps: ClassVar[int | None] = 50
    default_guidance: ClassVar[float | None] = 7.5
    #: dtype used on an accelerator when dtype is "auto".
    accelerator_dtype: ClassVar[str] = "float16"
    #: Options of ``extra`` beyond the common ones.
    family_extra: ClassVar[frozenset[str]] = frozenset()
    #: Fewest diffusion steps the family can run.
    min_steps: ClassVar[int] = 1

    def __init__(
        self,
        model: str | None = None,
        *,
        dtype: str | None = None,
        device: str | None = None,
        cpu_offload: bool = False,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        where = f"{self.kind} {self.name!r}"
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise ConfigError(f"{where}: model must be a hub id or a directory, got {model!r}")
        if device is not None and (not isinstance(device, str) or not device.strip()):
            raise ConfigError(f"{where}: device must be a device name such as 'cpu' or 'cuda', got {device!r}")
        if not isinstance(cpu_offload, bool):
            raise ConfigError(f"{where}: cpu_offload must be true or false, got {cpu_offload!r}")
        if num_inference_steps is not None and (
            isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < self.min_steps
        ):
            raise ConfigError(f"{where}: num_inference_steps must be an integer >= {self.min_steps}, got {num_inference_steps!r}")
        if guidance_scale is not None and (
            isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float)) or guidance_scale < 0
        ):
            raise ConfigError(f"{where}: guidance_scale must be a number >= 0, got {guidance_scale!r}")
        if extra is not None and not isinstance(extra, dict):
            raise ConfigError(f"{where}: extra must be a mapping of option names to values, got {type(extra).__name__}")
        self.model = model.strip() if model is not None else self.default_model
        self.dtype = normalize_dtype(dtype, f"{where}: dtype")
        self.device = device.strip() if device is not None else "cpu"
        self.cpu_offload = cpu_offload
        self.num_inference_steps = num_inference_steps if num_inference_steps is not None else self.default_steps
        self.guidance_scale = float(guidance_scale) if guidance_scale is not None else self.default_guidance
        self.extra = self._check_extra(dict(extra or {}))
        self._device_given = device is not None
        self._pipe: Any = None

    # -- construction -----------------------------------------------------------------------------

    def _check_extra(self, extra: dict[str, Any]) -> dict[str, Any]:
        where = f"{self.kind} {self.name!r}: extra"
        allowed = _COMMON_EXTRA | self.family_extra
        unknown = sorted(set(extra) - allowed)
        if unknown:
            raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        for key in ("variant", "scheduler", "motion_adapter"):
            if key in extra and (not isinstance(extra[key], str) or not extra[key]):
                raise ConfigError(f"{where}.{key} must be a non-empty string, got {extra[key]!r}")
        for key in ("vae_slicing", "vae_tiling"):
            if key in extra and not isinstance(extra[key], bool):
                raise ConfigError(f"{where}.{key} must be true or false, got {extra[key]!r}")
        if "flow_shift" in extra and (
            isinstance(extra["flow_shift"], bool) or not isinstance(extra["flow_shift"], (int, float)) or extra["flow_shift"] <= 0
        ):
            raise ConfigError(f"{where}.flow_shift must be a positive number, got {extra['flow_shift']!r}")
        call = extra.get("call_kwargs", {})
        if not isinstance(call, dict) or not all(isinstance(k, str) for k in call):
            raise ConfigError(f"{where}.call_kwargs must be a mapping of argument names to values")
        reserved = sorted(set(call) & _RESERVED_CALL_KWARGS)
        if reserved:
            raise ConfigError(f"{where}.call_kwargs cannot set {', '.join(reserved)} (the generator call sets them)")
        return extra

    @classmethod
    def from_pipeline(cls, pipe: Any, **options: Any) -> Self:
        """Wrap a pipeline object that is already built (and placed). ``options`` are the
        constructor's; ``device``/``cpu_offload`` move the pipeline only when given."""
        if not cls._wraps(pipe):
            raise ConfigError(f"{cls.kind} {cls.name!r} wraps {cls.pipeline_class} pipelines, got a {type(pipe).__name__}")
        generator = cls(**options)
        if "model" not in options:
            generator.model = str(getattr(getattr(pipe, "config", None), "_name_or_path", "") or "<pipeline object>")
        generator._configure(pipe, loaded=False)
        generator._pipe = pipe
        return generator

    @classmethod
    def _wraps(cls, pipe: Any) -> bool:
        """Whether ``pipe`` is a pipeline of this family (an instance of :attr:`pipeline_class`)."""
        return cls.pipeline_class in {c.__name__ for c in type(pipe).__mro__}

    # -- loading ----------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._pipe is not None

    @property
    def pipeline(self) -> Any:
        """The diffusers pipeline (loads it on first access)."""
        return self.load()

    def load(self) -> Any:
        """Load the weights now (otherwise the first call does). Returns the pipeline.

        Raises:
            ModelLoadError: diffusers missing, the directory or hub id not found, or unloadable weights.
            ConfigError: a bad device, dtype or option.
        """
        if self._pipe is not None:
            return self._pipe
        diffusers = self._import_diffusers()
        import torch

        self._check_device(torch)
        self._scheduler_cls(diffusers)  # a bad name fails before the (long) load
        source = self._source(self.model)
        try:
            pipe = self._load_pipeline(diffusers, source, self._torch_dtype(torch))
        except (ConfigError, ModelLoadError):
            raise
        except Exception as e:  # from_pretrained raises many types (OSError, ValueError, hub errors, ...)
            raise ModelLoadError(self._load_failure(self.model, e)) from e
        self._configure(pipe, loaded=True)
        self._pipe = pipe
        return pipe

    def _import_diffusers(self) -> Any:
        try:
            import diffusers
        except ImportError as e:
            raise ModelLoadError(
                f"{self.kind} {self.name!r} needs diffusers ({_first_line(e)}); install it with: pip install 'gpt4video[gen]'"
            ) from None
        if not hasattr(diffusers, self.pipeline_class):
            raise ModelLoadError(
                f"{self.kind} {self.name!r} needs diffusers' {self.pipeline_class}, which the installed "
                f"diffusers {diffusers.__version__} lacks; install it with: pip install 'gpt4video[gen]'"
            )
        return diffusers

    def _pipeline_cls(self, diffusers: Any) -> Any:
        return getattr(diffusers, self.pipeline_class)

    def _variant(self) -> dict[str, Any]:
        return {"variant": self.extra["variant"]} if "variant" in self.extra else {}

    def _load_pipeline(self, diffusers: Any, source: str, torch_dtype: Any) -> Any:
        """Build the pipeline from ``source`` (a hub id or directory); families override."""
        return self._pipeline_cls(diffusers).from_pretrained(source, dtype=torch_dtype, **self._variant())

    def _source(self, model: str, what: str = "model") -> str:
        """A local directory (checked) or a hub id."""
        path = Path(model).expanduser()
        if path.exists():
            if not path.is_dir():
                raise ModelLoadError(f"{self.kind} {self.name!r}: {what} {model!r} is a file; pass the model's directory")
            return str(path)
        if model.startswith(("/", "./", "../", "~", ".\\")) or model.count("/") > 1 or "\\" in model:
            raise ModelLoadError(f"{self.kind} {self.name!r}: {what} directory {model!r} does not exist")
        return model

    def _load_failure(self, model: str, error: BaseException, what: str = "model") -> str:
        message = f"{self.kind} {self.name!r}: cannot load {what} {model!r} ({_first_line(error)})"
        if not Path(model).expanduser().exists() and os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
            message += "; the Hugging Face hub is offline here (HF_HUB_OFFLINE) - pass a local directory"
        return message

    def _check_device(self, torch: Any) -> None:
        where = f"{self.kind} {self.name!r}"
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as e:
            raise ConfigError(f"{where}: unknown device {self.device!r} ({_first_line(e)})") from None
        if self.cpu_offload and device.type == "cpu":
            raise ConfigError(
                f"{where}: cpu_offload keeps idle parts on the CPU while an accelerator runs the rest; "
                f"set device to 'cuda' (or another accelerator), not 'cpu'"
            )

    def _torch_dtype(self, torch: Any) -> Any:
        name = self.dtype
        if name == "auto":
            name = "float32" if torch.device(self.device).type == "cpu" else self.accelerator_dtype
        return getattr(torch, name)

    def _configure(self, pipe: Any, *, loaded: bool) -> None:
        """Apply the options to a pipeline: family defaults (``loaded``: fresh from the hub or a
        directory), scheduler, VAE slicing/tiling, then placement on the device."""
        if loaded:
            self._family_defaults(pipe)
        if "scheduler" in self.extra:
            import diffusers

            pipe.scheduler = self._scheduler_cls(diffusers).from_config(pipe.scheduler.config)
        if "flow_shift" in self.extra:
            pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, flow_shift=float(self.extra["flow_shift"]))
        for key, method in (("vae_slicing", "enable_slicing"), ("vae_tiling", "enable_tiling")):
            if self.extra.get(key):
                enable = getattr(getattr(pipe, "vae", None), method, None)
                if enable is None:
                    raise ConfigError(f"{self.kind} {self.name!r}: this model's VAE does not support {key}")
                enable()
        if loaded or self._device_given or self.cpu_offload:
            import torch

            self._check_device(torch)
            if self.cpu_offload:
                pipe.enable_model_cpu_offload(device=self.device)
            else:
                pipe.to(self.device)

    def _family_defaults(self, pipe: Any) -> None:
        """Settings the family's documentation recommends after loading (override)."""

    def _scheduler_cls(self, diffusers: Any) -> Any:
        """The scheduler class named by ``extra.scheduler`` (None if not set)."""
        name = self.extra.get("scheduler")
        if name is None:
            return None
        scheduler_cls = getattr(diffusers, name, None)
        if not isinstance(scheduler_cls, type) or not name.endswith("Scheduler") or not hasattr(scheduler_cls, "from_config"):
            raise ConfigError(f"{self.kind} {self.name!r}: extra.scheduler {name!r} is not a diffusers scheduler class")
        return scheduler_cls

    # -- the pipeline call ------------------------------------------------------------------------

    def _call_pipeline(self, pipe: Any, kwargs: dict[str, Any], *, seed: int | None, progress: bool,
                       making: str, smaller: str) -> Any:
        """Run ``pipe`` on ``kwargs`` plus the diffusion settings, the seed and ``extra.call_kwargs``. Running out of
        memory is an InputError saying what was being made (``making``) and how to need less (``smaller``)."""
        import torch

        settings = {"num_inference_steps": self.num_inference_steps, "guidance_scale": self.guidance_scale}
        kwargs = {**kwargs, **{k: v for k, v in settings.items() if v is not None}, "output_type": "np"}
        if seed is not None:
            kwargs["generator"] = torch.Generator(device="cpu").manual_seed(seed)
        kwargs.update(self.extra.get("call_kwargs", {}))
        pipe.set_progress_bar_config(disable=not progress)
        out_of_memory = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
        try:
            return pipe(**kwargs)
        except out_of_memory:
            raise InputError(
                f"{self.kind} {self.name!r} ran out of memory making {making}; "
                f"try {smaller}, cpu_offload: true or extra.vae_tiling: true"
            ) from None

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "not loaded"
        return f"{type(self).__name__}(model={self.model!r}, device={self.device!r}, dtype={self.dtype!r}, {state})"


class DiffusersGenerator(DiffusersBackend, VideoGenerator):
    """A text-to-video backend on a diffusers pipeline (one subclass per model family); its options are
    :class:`DiffusersBackend`'s."""

    #: The pipeline call's argument for the number of frames.
    frames_argument: ClassVar[str] = "num_frames"

    def _frame_step(self, pipe: Any) -> int:
        """Valid frame counts are ``step * k + 1`` (1: any count)."""
        return 1

    def _size_multiple(self, pipe: Any) -> int:
        return 8

    def _family_call_kwargs(self, pipe: Any, num_frames: int) -> dict[str, Any]:
        return {}

    def _check_request(self, pipe: Any, num_frames: int, height: int, width: int) -> None:
        """Raise InputError for a request the loaded model cannot serve (override)."""

    def _run_frames(self, pipe: Any, num_frames: int) -> int:
        step = self._frame_step(pipe)
        if step <= 1:
            return num_frames
        return _round_up(max(num_frames - 1, 0), step) + 1

    def _generate(
        self,
        prompt: str,
        *,
        num_frames: int,
        height: int,
        width: int,
        seed: int | None,
        negative_prompt: str | None,
        progress: bool,
    ) -> np.ndarray:
        pipe = self.load()
        self._check_request(pipe, num_frames, height, width)
        multiple = self._size_multiple(pipe)
        kwargs: dict[str, Any] = {
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "height": _round_up(height, multiple),
            "width": _round_up(width, multiple),
            self.frames_argument: self._run_frames(pipe, num_frames),
            **self._family_call_kwargs(pipe, num_frames),
        }
        output = self._call_pipeline(pipe, kwargs, seed=seed, progress=progress,
                                     making=f"{num_frames} frames of {width}x{height}", smaller="fewer frames, a smaller size")
        video = to_uint8_video(output)
        if video.shape[0] < num_frames or video.shape[1] < height or video.shape[2] < width:
            raise RuntimeError(
                f"{self.kind} {self.name!r}: the pipeline returned {video.shape[:3]} (T, H, W) for a request of "
                f"{(num_frames, height, width)}"
            )
        return _center_crop(video[:num_frames], height, width)


# ==============================================================================================
# Families


@GENERATORS.register("zeroscope")
class ZeroscopeGenerator(DiffusersGenerator):
    """ZeroScope v2 (a fine-tuned ModelScope UNet3D) through ``TextToVideoSDPipeline``; best at 576x320, 24 frames."""

    name = "zeroscope"
    pipeline_class = "TextToVideoSDPipeline"
    default_model = "cerspense/zeroscope_v2_576w"
    default_steps = 40
    default_guidance = 9.0

    def _size_multiple(self, pipe: Any) -> int:
        return math.lcm(8, int(getattr(pipe, "vae_scale_factor", 8)))


@GENERATORS.register("modelscope")
class ModelScopeGenerator(ZeroscopeGenerator):
    """ModelScope text-to-video 1.7B through ``TextToVideoSDPipeline``; best at 256x256, 16 frames."""

    name = "modelscope"
    default_model = "ali-vilab/text-to-video-ms-1.7b"
    default_steps = 25


@GENERATORS.register("animatediff")
class AnimateDiffGenerator(DiffusersGenerator):
    """AnimateDiff: a Stable Diffusion 1.5 model (``model``) animated by a motion adapter
    (``extra.motion_adapter``). At most as many frames as the adapter's motion length (32)."""

    name = "animatediff"
    pipeline_class = "AnimateDiffPipeline"
    default_model = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    default_motion_adapter: ClassVar[str] = "guoyww/animatediff-motion-adapter-v1-5-2"
    default_steps = 25
    default_guidance = 7.5
    family_extra = frozenset({"motion_adapter"})

    def _load_pipeline(self, diffusers: Any, source: str, torch_dtype: Any) -> Any:
        adapter_id = self.extra.get("motion_adapter", self.default_motion_adapter)
        adapter_source = self._source(adapter_id, "motion adapter")
        try:
            adapter = diffusers.MotionAdapter.from_pretrained(adapter_source, dtype=torch_dtype)
        except Exception as e:
            raise ModelLoadError(self._load_failure(adapter_id, e, "motion adapter")) from e
        return self._pipeline_cls(diffusers).from_pretrained(
            source, motion_adapter=adapter, dtype=torch_dtype, **self._variant()
        )

    def _family_defaults(self, pipe: Any) -> None:
        # AnimateDiff's recommended sampler: DDIM with a linear beta schedule, no sample clipping.
        if "scheduler" not in self.extra:
            import diffusers

            pipe.scheduler = diffusers.DDIMScheduler.from_config(
                pipe.scheduler.config, beta_schedule="linear", clip_sample=False, timestep_spacing="linspace", steps_offset=1
            )

    def _check_request(self, pipe: Any, num_frames: int, height: int, width: int) -> None:
        limit = getattr(getattr(getattr(pipe, "unet", None), "config", None), "motion_max_seq_length", None)
        if isinstance(limit, int) and num_frames > limit:
            raise InputError(f"video generator 'animatediff': this motion adapter makes at most {limit} frames, got num_frames={num_frames}")


@GENERATORS.register("cogvideox")
class CogVideoXGenerator(DiffusersGenerator):
    """CogVideoX (2B: fp16; 5B: use dtype bfloat16); best at 720x480, 49 frames, 8 fps."""

    name = "cogvideox"
    pipeline_class = "CogVideoXPipeline"
    default_model = "THUDM/CogVideoX-2b"
    fps = 8.0
    default_steps = 50
    default_guidance = 6.0

    def _frame_step(self, pipe: Any) -> int:
        return int(getattr(pipe, "vae_scale_factor_temporal", 4))

    def _size_multiple(self, pipe: Any) -> int:
        patch = int(getattr(pipe.transformer.config, "patch_size", 2) or 1)
        return math.lcm(8, int(getattr(pipe, "vae_scale_factor_spatial", 8)) * patch)

    def _family_call_kwargs(self, pipe: Any, num_frames: int) -> dict[str, Any]:
        # The transformer's text length is fixed (226 for the released models).
        return {"max_sequence_length": int(pipe.transformer.config.max_text_seq_length)}


@GENERATORS.register("ltx")
class LTXGenerator(DiffusersGenerator):
    """LTX-Video (2B DiT, T5 text encoder); best at 704x480, 8k+1 frames at 25 fps."""

    name = "ltx"
    pipeline_class = "LTXPipeline"
    default_model = "Lightricks/LTX-Video"
    fps = 25.0
    default_steps = 50
    default_guidance = 3.0
    accelerator_dtype = "bfloat16"

    def _frame_step(self, pipe: Any) -> int:
        return int(getattr(pipe, "vae_temporal_compression_ratio", 8))

    def _size_multiple(self, pipe: Any) -> int:
        spatial = int(getattr(pipe, "vae_spatial_compression_ratio", 32)) * int(getattr(pipe, "transformer_spatial_patch_size", 1))
        return math.lcm(32, spatial)


@GENERATORS.register("wan")
class WanGenerator(DiffusersGenerator):
    """Wan 2.1 text-to-video (1.3B or 14B); best at 832x480, 81 frames, 16 fps. The VAE stays in float32."""

    name = "wan"
    pipeline_class = "WanPipeline"
    default_model = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    fps = 16.0
    default_steps = 50
    default_guidance = 5.0
    accelerator_dtype = "bfloat16"
    family_extra = frozenset({"flow_shift"})

    def _load_pipeline(self, diffusers: Any, source: str, torch_dtype: Any) -> Any:
        import torch

        # Wan's model card loads the VAE in float32 whatever the rest uses.
        vae = diffusers.AutoencoderKLWan.from_pretrained(source, subfolder="vae", dtype=torch.float32)
        return self._pipeline_cls(diffusers).from_pretrained(source, vae=vae, dtype=torch_dtype, **self._variant())

    def _frame_step(self, pipe: Any) -> int:
        return int(getattr(pipe, "vae_scale_factor_temporal", 4))

    def _size_multiple(self, pipe: Any) -> int:
        transformer = pipe.transformer if getattr(pipe, "transformer", None) is not None else pipe.transformer_2
        patch = transformer.config.patch_size
        spatial = int(getattr(pipe, "vae_scale_factor_spatial", 8))
        return math.lcm(spatial * int(patch[1]), spatial * int(patch[2]))


@GENERATORS.register("text2video-zero")
class TextToVideoZeroGenerator(DiffusersGenerator):
    """Text2Video-Zero: a Stable Diffusion 1.5 model made temporally consistent without training
    (cross-frame attention, latent motion). Needs at least 2 diffusion steps; the paper's
    ``t0``/``t1`` (44/47 of 50 steps) scale with ``num_inference_steps`` unless ``call_kwargs`` sets them."""

    name = "text2video-zero"
    pipeline_class = "TextToVideoZeroPipeline"
    default_model = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    default_steps = 50
    default_guidance = 7.5
    frames_argument = "video_length"
    min_steps = 2

    def _size_multiple(self, pipe: Any) -> int:
        return math.lcm(8, int(getattr(pipe, "vae_scale_factor", 8)))

    def _family_call_kwargs(self, pipe: Any, num_frames: int) -> dict[str, Any]:
        steps = self.num_inference_steps
        t1 = min(steps - 1, max(1, round(steps * 47 / 50)))
        t0 = min(t1 - 1, round(steps * 44 / 50))
        return {"t0": t0, "t1": t1}
