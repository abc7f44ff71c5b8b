"""The gallery: one call for every text-to-video backend (paper §3.4), and one for every text-to-image backend.

Every video backend is a :class:`VideoGenerator` registered in :data:`GENERATORS` under a short name::

    gen = build_generator("synthetic")                       # the offline default
    gen = build_generator("zeroscope", model="/models/zeroscope_v2_576w", device="cuda")
    frames = gen("A red circle moves to the right.", num_frames=16, height=256, width=256, seed=0)
    frames.shape, frames.dtype                               # (16, 256, 256, 3) uint8

Swapping the backend needs no retraining: the LLM only writes the prompt. A backend that cannot draw
a prompt raises :class:`PromptNotSupported` (an :class:`InputError`) saying what to do instead.
:class:`GeneratorConfig` is the typed config.

Pictures the model asks for (``<image_prompt>``) go to an :class:`ImageGenerator` of
:data:`IMAGE_GENERATORS` the same way, one ``(H, W, 3)`` uint8 image per call::

    gen = build_image_generator("synthetic")                 # a still of the synthetic world
    gen = build_image_generator("flux", model="/models/FLUX.1-schnell", device="cuda")
    image = gen("A green square on a white background.", height=256, width=256, seed=0)

:class:`ImageGeneratorConfig` is its typed config.
"""

from __future__ import annotations

import abc
import inspect
import numbers
from dataclasses import field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import AfterValidator, BeforeValidator, Field

from gpt4video.config import ConfigBase, Count, Flag, Name, Whole, config_class, option
from gpt4video.errors import ConfigError, InputError
from gpt4video.registry import Registry

if TYPE_CHECKING:  # numpy loads when a clip is first checked: building the command line needs none
    import numpy as np

__all__ = [
    "DTYPES",
    "GENERATORS",
    "IMAGE_GENERATORS",
    "GeneratorConfig",
    "ImageGenerator",
    "ImageGeneratorConfig",
    "PromptNotSupported",
    "VideoGenerator",
    "build_generator",
    "build_image_generator",
    "normalize_dtype",
]

#: Registry of backends: name → VideoGenerator subclass.
GENERATORS: Registry[type[VideoGenerator]] = Registry("video generator")
#: Registry of text-to-image backends: name → ImageGenerator subclass.
IMAGE_GENERATORS: Registry[type[ImageGenerator]] = Registry("image generator")

#: dtype names a config may use (``None``/"auto": the backend's default for its device).
DTYPES: tuple[str, ...] = ("auto", "float32", "float16", "bfloat16")
_DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}


class PromptNotSupported(InputError):
    """A prompt outside what a backend can draw. The message tells the user what to do instead."""

    def __init__(self, message: str, *, prompt: str | None = None, generator: str | None = None) -> None:
        super().__init__(message)
        self.prompt = prompt
        self.generator = generator


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class VideoGenerator(abc.ABC):
    """A text-to-video backend: ``generator(prompt, ...) -> (T, H, W, 3) uint8`` frames.

    Subclasses set :attr:`name` and implement :meth:`_generate`; :meth:`__call__` checks the
    arguments first (one clear :class:`InputError` each) and the result after (exactly
    ``(num_frames, height, width, 3)`` uint8). Class attributes give the limits a backend supports.
    """

    #: Registry name.
    name: ClassVar[str] = ""
    #: Smallest and largest frame side, in pixels.
    min_size: ClassVar[int] = 8
    max_size: ClassVar[int] = 4096
    #: Fewest and most frames per clip.
    min_frames: ClassVar[int] = 1
    max_frames: ClassVar[int] = 1024
    #: The frame rate the backend's clips are meant to play at (for writing them to files).
    fps: ClassVar[float] = 8.0

    def __call__(
        self,
        prompt: str,
        *,
        num_frames: int = 16,
        height: int = 256,
        width: int = 256,
        seed: int | None = None,
        negative_prompt: str | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Generate a clip for ``prompt``.

        Args:
            prompt: What to show (non-empty text).
            num_frames, height, width: The clip's shape (within the backend's limits).
            seed: Makes the result reproducible; ``None`` draws a fresh one.
            negative_prompt: What to avoid (backends without the notion ignore it).
            progress: Show a progress bar (diffusion steps) on stderr.

        Returns:
            ``(num_frames, height, width, 3)`` uint8 RGB frames.

        Raises:
            InputError: an argument out of range; :class:`PromptNotSupported` for a prompt the
                backend cannot draw.
        """
        prompt = self._check_args(prompt, num_frames, height, width, seed, negative_prompt, progress)
        frames = self._generate(
            prompt, num_frames=int(num_frames), height=int(height), width=int(width),
            seed=None if seed is None else int(seed), negative_prompt=negative_prompt, progress=progress,
        )
        return _checked_result(f"video generator {self.name!r}", frames, (int(num_frames), int(height), int(width), 3))

    @abc.abstractmethod
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
        """Produce ``(num_frames, height, width, 3)`` uint8 frames; arguments are already checked."""

    def _check_args(
        self,
        prompt: object,
        num_frames: object,
        height: object,
        width: object,
        seed: object,
        negative_prompt: object,
        progress: object,
    ) -> str:
        who = f"video generator {self.name!r}"
        if not _is_int(num_frames) or not self.min_frames <= num_frames <= self.max_frames:  # type: ignore[operator]
            raise InputError(
                f"{who}: num_frames must be an integer from {self.min_frames} to {self.max_frames}, got {num_frames!r}"
            )
        return _check_request(who, self.min_size, self.max_size, prompt, height, width, seed, negative_prompt, progress)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class ImageGenerator(abc.ABC):
    """A text-to-image backend: ``generator(prompt, ...) -> (H, W, 3)`` uint8 RGB.

    Subclasses set :attr:`name` and implement :meth:`_generate`; :meth:`__call__` checks the arguments first
    (one clear :class:`InputError` each, as :class:`VideoGenerator` does) and the result after.
    """

    #: Registry name.
    name: ClassVar[str] = ""
    #: Smallest and largest image side, in pixels.
    min_size: ClassVar[int] = 8
    max_size: ClassVar[int] = 4096

    def __call__(
        self,
        prompt: str,
        *,
        height: int = 256,
        width: int = 256,
        seed: int | None = None,
        negative_prompt: str | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Draw ``prompt`` (non-empty text) as one ``(height, width, 3)`` uint8 image; the arguments mean what
        they mean for :meth:`VideoGenerator.__call__`.

        Raises:
            InputError: an argument out of range; :class:`PromptNotSupported` for a prompt the
                backend cannot draw.
        """
        who = f"image generator {self.name!r}"
        prompt = _check_request(who, self.min_size, self.max_size, prompt, height, width, seed, negative_prompt, progress)
        image = self._generate(prompt, height=int(height), width=int(width), seed=None if seed is None else int(seed),
                               negative_prompt=negative_prompt, progress=progress)
        return _checked_result(who, image, (int(height), int(width), 3))

    @abc.abstractmethod
    def _generate(
        self,
        prompt: str,
        *,
        height: int,
        width: int,
        seed: int | None,
        negative_prompt: str | None,
        progress: bool,
    ) -> np.ndarray:
        """Produce one ``(height, width, 3)`` uint8 image; arguments are already checked."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _checked_result(who: str, array: object, expected: tuple[int, ...]) -> np.ndarray:
    """``array`` if it is uint8 of shape ``expected``; otherwise a RuntimeError (a backend's bug, not the user's)."""
    import numpy as np

    if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.shape != expected:
        got = f"{type(array).__name__} {getattr(array, 'shape', '')} {getattr(array, 'dtype', '')}"
        raise RuntimeError(f"{who} returned {got.strip()}, expected uint8 {expected}")
    return array


def _check_request(
    who: str,
    min_size: int,
    max_size: int,
    prompt: object,
    height: object,
    width: object,
    seed: object,
    negative_prompt: object,
    progress: object,
) -> str:
    """The arguments every backend call shares, checked (one InputError each); returns the stripped prompt."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f"{who}: the prompt must be non-empty text, got {prompt!r}")
    for label, value in (("height", height), ("width", width)):
        if not _is_int(value) or not min_size <= value <= max_size:  # type: ignore[operator]
            raise InputError(f"{who}: {label} must be an integer from {min_size} to {max_size} pixels, got {value!r}")
    if seed is not None and (not _is_int(seed) or not 0 <= seed < 2**63):  # type: ignore[operator]
        raise InputError(f"{who}: seed must be an integer >= 0 or None, got {seed!r}")
    if negative_prompt is not None and not isinstance(negative_prompt, str):
        raise InputError(f"{who}: negative_prompt must be text or None, got {negative_prompt!r}")
    if not isinstance(progress, bool):
        raise InputError(f"{who}: progress must be True or False, got {progress!r}")
    return prompt.strip()


def normalize_dtype(dtype: str | None, where: str = "dtype") -> str:
    """Canonical dtype name (see :data:`DTYPES`; ``None`` → "auto"); ConfigError if unknown."""
    if dtype is None:
        return "auto"
    if not isinstance(dtype, str):
        raise ConfigError(f"{where} must be one of {', '.join(DTYPES)}, got {dtype!r}")
    name = _DTYPE_ALIASES.get(dtype.lower(), dtype.lower()).removeprefix("torch.")
    if name not in DTYPES:
        raise ConfigError(f"{where} must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return name


def build_generator(name: str, **options: Any) -> VideoGenerator:
    """Make the backend registered as ``name`` with ``options`` (its constructor's keyword arguments).

    Raises:
        ConfigError: an unknown name (the message lists the known ones) or an option the backend
            does not take (the message lists the ones it does).
    """
    return _build(GENERATORS, name, options)


def build_image_generator(name: str, **options: Any) -> ImageGenerator:
    """Make the text-to-image backend registered as ``name`` (errors as :func:`build_generator`'s)."""
    return _build(IMAGE_GENERATORS, name, options)


def _build(registry: Registry[type[Any]], name: str, options: dict[str, Any]) -> Any:
    import gpt4video.generators  # noqa: F401  (registers the built-in backends)

    cls = registry.get(name)
    params = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    accepted = [p for p in params if params[p].kind is not inspect.Parameter.VAR_KEYWORD]
    unknown = sorted(set(options) - set(accepted))
    if unknown and not takes_any:
        takes = ", ".join(accepted) or "no options"
        raise ConfigError(f"{registry.kind} {name!r} does not take {', '.join(unknown)}; it takes: {takes}")
    return cls(**options)


def _known_dtype(dtype: str) -> str:
    """``dtype`` as given, if :func:`normalize_dtype` knows it (GeneratorConfig's check of its field)."""
    try:
        normalize_dtype(dtype)
    except ConfigError:
        raise ValueError(f"must be one of {', '.join(DTYPES)}, got {dtype!r}") from None
    return dtype


@config_class
class GeneratorConfig(ConfigBase):
    """Which text-to-video backend to use and how (the commands that render videos take the ``option`` fields as
    options). Only the values that differ from these defaults are passed to the backend, so a backend that has
    no use for one (the synthetic renderer takes no model) rejects it with a clear error."""

    name: Name = option("synthetic", "the backend: synthetic (the offline default), zeroscope, modelscope, "
                        "animatediff, cogvideox, ltx, wan, text2video-zero (see GENERATORS), or on the command line "
                        "none to only report the prompts", flag="--generator")
    model: Name | None = option(None, "a diffusers backend's weights: hub id or local directory (default: the "
                                "backend's own checkpoint)", flag="--generator-model")
    dtype: Annotated[str, AfterValidator(_known_dtype)] | None = option(
        None, "auto, float32, float16 or bfloat16 (default auto: float32 on a CPU, the family's usual half precision "
        "on a GPU)", flag="--generator-dtype")
    device: Name | None = option(None, "cpu, cuda, cuda:1, mps, ... (default: the backend's, cpu)",
                                 flag="--generator-device")
    cpu_offload: Flag = option(False, "keep idle sub-models on the CPU and move each to the device only while it runs "
                               "(diffusers' model CPU offload): much less GPU memory, a little slower")
    num_inference_steps: Count | None = option(None, "diffusion steps (default: the backend's)", flag="--steps")
    #: classifier-free guidance of a diffusers backend (None: the backend's default)
    guidance_scale: Annotated[float, Field(ge=0)] | None = None
    #: backend-specific options, e.g. ``{motion_adapter: PATH}`` for animatediff, ``{scheduler:
    #: DPMSolverMultistepScheduler}``, ``{vae_tiling: true}``, ``{call_kwargs: {...}}`` passed to the pipeline call
    extra: Annotated[dict[str, Any], BeforeValidator(lambda v: {} if v is None else v)] = field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        """The constructor options this config sets (the fields that differ from their defaults)."""
        return _changed_options(self, GeneratorConfig())

    def build(self) -> VideoGenerator:
        """The backend this config describes (weights load lazily, on first use or ``load()``)."""
        return build_generator(self.name, **self.options())


@config_class
class ImageGeneratorConfig(ConfigBase):
    """Which text-to-image backend draws the model's ``<image_prompt>``s, how, and at what size and seed (the
    commands that render them take the ``option`` fields as options). Only the backend options that differ from
    these defaults are passed to the backend, as with :class:`GeneratorConfig`."""

    name: Name = option("synthetic", "the text-to-image backend: synthetic (the offline default: a still of the "
                        "synthetic world), sd15, sdxl, sd3, flux, sana, auto (any diffusers text-to-image checkpoint; "
                        "see IMAGE_GENERATORS), or on the command line none to only report the prompts",
                        flag="--image-generator")
    model: Name | None = option(None, "a diffusers image backend's weights: hub id or local directory (default: the "
                                "backend's own checkpoint)", flag="--image-generator-model")
    dtype: Annotated[str, AfterValidator(_known_dtype)] | None = option(
        None, "auto, float32, float16 or bfloat16 for the image backend (default auto)", flag="--image-generator-dtype")
    device: Name | None = option(None, "where the image backend runs: cpu, cuda, ... (default: cpu)",
                                 flag="--image-generator-device")
    cpu_offload: Flag = option(False, "the image backend's model CPU offload (as --cpu-offload)",
                               flag="--image-cpu-offload")
    num_inference_steps: Count | None = option(None, "the image backend's diffusion steps (default: the backend's)",
                                               flag="--image-steps")
    size: Count = option(256, "width and height of generated images", flag="--image-size")
    seed: Whole | None = option(None, "seed of the text-to-image backend", flag="--image-seed")
    #: classifier-free guidance of a diffusers image backend (None: the backend's default)
    guidance_scale: Annotated[float, Field(ge=0)] | None = None
    #: backend-specific options (``variant``, ``scheduler``, ``vae_tiling``, ``call_kwargs``, ...)
    extra: Annotated[dict[str, Any], BeforeValidator(lambda v: {} if v is None else v)] = field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        """The constructor options this config sets (the backend fields that differ from their defaults)."""
        return _changed_options(self, ImageGeneratorConfig())

    def build(self) -> ImageGenerator:
        """The backend this config describes (weights load lazily, on first use or ``load()``)."""
        return build_image_generator(self.name, **self.options())


def _changed_options(config: GeneratorConfig | ImageGeneratorConfig, defaults: Any) -> dict[str, Any]:
    """The backend constructor options ``config`` sets to other values than ``defaults`` has."""
    out: dict[str, Any] = {}
    for key in ("model", "dtype", "device", "cpu_offload", "num_inference_steps", "guidance_scale", "extra"):
        value = getattr(config, key)
        if value != getattr(defaults, key):
            out[key] = value
    return out
