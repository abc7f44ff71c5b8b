"""The generator gallery: registries, configs, argument checks and the offline synthetic backends (video and image)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from gpt4video.data.synthetic import BACKGROUND_RGB, COLOR_RGB
from gpt4video.errors import ConfigError, InputError
from gpt4video.evaluation.pixels import analyze_clip, matches
from gpt4video.generators import (
    GENERATORS,
    IMAGE_GENERATORS,
    UNSUPPORTED_IMAGE_PROMPT_HELP,
    UNSUPPORTED_PROMPT_HELP,
    GeneratorConfig,
    ImageGenerator,
    ImageGeneratorConfig,
    PromptNotSupported,
    SyntheticGenerator,
    SyntheticImageGenerator,
    VideoGenerator,
    build_generator,
    build_image_generator,
)

ALL_NAMES = {"synthetic", "zeroscope", "modelscope", "animatediff", "cogvideox", "ltx", "wan", "text2video-zero"}
IMAGE_NAMES = {"synthetic", "sd15", "sdxl", "sd3", "flux", "sana", "auto"}


def _object_pixels(frame: np.ndarray, color: str, background: str = "black") -> np.ndarray:
    """Boolean (H, W) mask of the pixels mostly covered by an object of ``color``."""
    bg = np.asarray(BACKGROUND_RGB[background], dtype=np.float32)
    target = np.asarray(COLOR_RGB[color], dtype=np.float32)
    distance = np.linalg.norm(frame.astype(np.float32) - bg, axis=-1)
    return distance > 0.75 * np.linalg.norm(target - bg)


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def test_registry_lists_every_backend() -> None:
    assert set(GENERATORS.names()) == ALL_NAMES
    for name in ALL_NAMES:
        cls = GENERATORS.get(name)
        assert issubclass(cls, VideoGenerator) and cls.name == name


def test_build_generator_errors() -> None:
    with pytest.raises(ConfigError, match="known: .*synthetic"):
        build_generator("sora")
    with pytest.raises(ConfigError, match="does not take model"):
        build_generator("synthetic", model="/some/path")
    with pytest.raises(ConfigError, match="takes: no options"):
        build_generator("synthetic", fps=12)
    assert isinstance(build_generator("synthetic"), SyntheticGenerator)


def test_generator_config() -> None:
    config = GeneratorConfig()
    assert config.options() == {}
    assert isinstance(config.build(), SyntheticGenerator)
    config = GeneratorConfig.from_dict(
        {"name": "zeroscope", "model": "/models/zs", "dtype": "fp16", "device": "cuda", "num_inference_steps": 20,
         "extra": {"vae_slicing": True}}
    )
    assert config.options() == {
        "model": "/models/zs", "dtype": "fp16", "device": "cuda", "num_inference_steps": 20, "extra": {"vae_slicing": True}
    }
    gen = config.build()  # nothing loads yet
    assert gen.name == "zeroscope" and gen.dtype == "float16" and not gen.loaded
    assert GeneratorConfig.from_dict(config.to_dict()) == config
    for bad in ({"nmae": "x"}, {"dtype": "int8"}, {"num_inference_steps": 0}, {"guidance_scale": -1},
                {"cpu_offload": "yes"}, {"extra": [1]}, {"name": ""}):
        with pytest.raises(ConfigError):
            GeneratorConfig.from_dict(bad)


def test_generator_config_yaml_round_trip(tmp_path) -> None:
    config = GeneratorConfig(name="animatediff", extra={"motion_adapter": "guoyww/animatediff-motion-adapter-v1-5-2"})
    path = tmp_path / "gen.yaml"
    config.to_yaml(path)
    assert GeneratorConfig.from_yaml(path) == config


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_frames": 0}, {"num_frames": 1}, {"num_frames": 2.5}, {"num_frames": True}, {"num_frames": 5000},
        {"height": 8}, {"width": 15}, {"height": 64.0}, {"width": 10_000},
        {"seed": -1}, {"seed": 1.5}, {"negative_prompt": 3}, {"progress": "yes"},
    ],
)
def test_bad_arguments_raise_input_error(kwargs) -> None:
    gen = SyntheticGenerator()
    with pytest.raises(InputError):
        gen("A red circle.", **kwargs)


@pytest.mark.parametrize("prompt", ["", "   ", None, 42])
def test_bad_prompt_raises_input_error(prompt) -> None:
    with pytest.raises(InputError, match="prompt"):
        SyntheticGenerator()(prompt)


@pytest.mark.parametrize("prompt", ["A dog runs on the beach.", "a yellow star moves left", "five red circles"])
def test_prompt_outside_the_world_is_not_supported(prompt: str) -> None:
    with pytest.raises(PromptNotSupported) as info:
        SyntheticGenerator()(prompt, num_frames=8, height=64, width=64, seed=0)
    assert isinstance(info.value, InputError)
    assert UNSUPPORTED_PROMPT_HELP in str(info.value)
    assert "--generator zeroscope --generator-model PATH_OR_HUB_ID" in str(info.value)
    assert info.value.prompt == prompt and info.value.generator == "synthetic"


@pytest.mark.parametrize(
    ("color", "shape", "motion", "axis", "sign"),
    [
        ("red", "circle", "moves to the right", 0, +1),
        ("blue", "square", "moves to the left", 0, -1),
        ("yellow", "triangle", "moves up", 1, -1),
        ("green", "circle", "moves down", 1, +1),
    ],
)
def test_synthetic_draws_the_requested_colour_and_motion(color, shape, motion, axis, sign) -> None:
    prompt = f"A {color} {shape} {motion} on a black background."
    frames = SyntheticGenerator()(prompt, num_frames=8, height=64, width=96, seed=3)
    assert frames.shape == (8, 64, 96, 3) and frames.dtype == np.uint8
    first, last = _object_pixels(frames[0], color), _object_pixels(frames[-1], color)
    assert first.sum() > 20 and last.sum() > 20
    mean = frames[0][first].astype(np.float32).mean(axis=0)
    assert np.abs(mean - np.asarray(COLOR_RGB[color])).max() < 25, mean
    start, end = _centroid(first), _centroid(last)
    assert sign * (end[axis] - start[axis]) > 5, (start, end)
    assert abs(end[1 - axis] - start[1 - axis]) < 2  # no motion along the other axis


def test_synthetic_grows_and_shrinks() -> None:
    gen = SyntheticGenerator()
    grows = gen("A white square grows on a dark blue background.", num_frames=8, height=64, width=64, seed=1)
    shrinks = gen("A orange circle shrinks on a black background.", num_frames=8, height=64, width=64, seed=1)
    area = [_object_pixels(f, "white", "dark blue").sum() for f in grows]
    assert area[-1] > 1.5 * area[0]
    area = [_object_pixels(f, "orange").sum() for f in shrinks]
    assert area[0] > 1.5 * area[-1]


def test_synthetic_is_reproducible_and_accepts_tagged_prompts() -> None:
    gen = SyntheticGenerator()
    a = gen("Two purple triangles stay still.", num_frames=4, height=32, width=32, seed=5)
    b = gen("<video_prompt>Two purple triangles stay still.</video_prompt>", num_frames=4, height=32, width=32, seed=5)
    c = gen("Two purple triangles stay still.", num_frames=4, height=32, width=32, seed=6)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert gen("A red square.", num_frames=2, height=16, width=16).shape == (2, 16, 16, 3)  # the smallest size


def test_image_registry_lists_every_backend() -> None:
    assert set(IMAGE_GENERATORS.names()) == IMAGE_NAMES
    for name in IMAGE_NAMES:
        cls = IMAGE_GENERATORS.get(name)
        assert issubclass(cls, ImageGenerator) and cls.name == name


def test_image_generator_config() -> None:
    config = ImageGeneratorConfig()
    assert config.options() == {} and config.size == 256 and config.seed is None
    assert isinstance(config.build(), SyntheticImageGenerator)
    config = ImageGeneratorConfig.from_dict({"name": "flux", "model": "/models/flux", "dtype": "bf16",
                                             "num_inference_steps": 4, "size": 512, "seed": 1})
    assert config.options() == {"model": "/models/flux", "dtype": "bf16", "num_inference_steps": 4}
    gen = config.build()
    assert gen.name == "flux" and gen.dtype == "bfloat16" and not gen.loaded
    for bad in ({"size": 0}, {"dtype": "int8"}, {"name": ""}, {"seed": 1.5}, {"frames": 4}):
        with pytest.raises(ConfigError):
            ImageGeneratorConfig.from_dict(bad)
    with pytest.raises(ConfigError, match="image generator 'synthetic' does not take model"):
        build_image_generator("synthetic", model="/some/path")


@pytest.mark.parametrize(
    "prompt",
    [
        "A green square on a white background.",
        "a green square",  # background left open
        "An image of a green square moving left on a white background",  # motion words are ignored
        "A green square grows on a black background.",
    ],
)
def test_synthetic_still_shows_the_requested_object(prompt: str) -> None:
    image = SyntheticImageGenerator()(prompt, height=128, width=128, seed=2)
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    assert matches(analyze_clip(image), color="green", shape="square", motion="still")


def test_synthetic_still_reads_counts_and_backgrounds() -> None:
    gen = SyntheticImageGenerator()
    image = gen("Two red circles and a blue triangle on a white background.", height=128, width=128, seed=0)
    found = sorted(o.triple for o in analyze_clip(image))
    assert found == [("blue", "triangle", "still"), ("red", "circle", "still"), ("red", "circle", "still")]
    corner = image[:4, :4].reshape(-1, 3).astype(np.float32).mean(axis=0)
    assert np.abs(corner - np.asarray(BACKGROUND_RGB["white"])).max() < 2


def test_synthetic_still_is_reproducible() -> None:
    gen = SyntheticImageGenerator()
    a = gen("A purple triangle.", height=64, width=64, seed=5)
    assert np.array_equal(a, gen("A purple triangle.", height=64, width=64, seed=5))
    assert not np.array_equal(a, gen("A purple triangle.", height=64, width=64, seed=6))
    assert gen("A red square.", height=16, width=16).shape == (16, 16, 3)  # the smallest size


@pytest.mark.parametrize("prompt", ["A dog on the beach.", "a yellow star", "an image of five red circles",
                                    "a white square on a white background"])
def test_image_prompt_outside_the_world_is_not_supported(prompt: str) -> None:
    with pytest.raises(PromptNotSupported) as info:
        SyntheticImageGenerator()(prompt, height=64, width=64, seed=0)
    assert UNSUPPORTED_IMAGE_PROMPT_HELP in str(info.value)
    assert info.value.prompt == prompt and info.value.generator == "synthetic"


@pytest.mark.parametrize("kwargs", [{"height": 8}, {"width": 10_000}, {"seed": -1}, {"progress": 1},
                                    {"negative_prompt": 3}])
def test_bad_image_arguments_raise_input_error(kwargs) -> None:
    with pytest.raises(InputError):
        SyntheticImageGenerator()("A red circle.", **kwargs)


def test_importing_generators_does_not_import_diffusers() -> None:
    code = "import sys, gpt4video.generators; assert 'diffusers' not in sys.modules, 'diffusers imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)
