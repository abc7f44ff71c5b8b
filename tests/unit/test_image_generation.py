"""Images out: the model's <image_prompt>s drawn by the image gallery, saved as PNGs by the assistant and the
command line, and read back by the pixel analyser (the model's reply is scripted; the model itself is tiny)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from gpt4video.cli import main
from gpt4video.engines import TextStream
from gpt4video.errors import InputError
from gpt4video.evaluation.pixels import analyze_clip, matches
from gpt4video.generators import build_generator, build_image_generator
from gpt4video.pipeline import (Assistant, GenerationSettings, ImageGenerated, ReplyOutput, VideoGenerated,
                                render_image_prompt)
from gpt4video.routing import ImagePrompt, VideoPrompt
from gpt4video.video import write_image

GREEN_SQUARE = "A green square on a white background."
REPLY = f"Here is your picture. <image_prompt>{GREEN_SQUARE}</image_prompt>"


def scripted(reply: str):
    """Stands in for ``model.generate_stream``: the reply in pieces of 3 characters."""

    def stream(turns, videos=(), params=None, *, features=None, cancel=None, engine=None):  # noqa: ANN001
        return TextStream.of_text([reply[i:i + 3] for i in range(0, len(reply), 3)])

    return stream


@pytest.fixture(scope="module")
def model(tiny_saved_model_dir):
    from gpt4video.modeling import GPT4Video

    return GPT4Video.from_pretrained(tiny_saved_model_dir)


def images_only(size: int = 128) -> GenerationSettings:
    return GenerationSettings(None, image_generator=build_image_generator("synthetic"), image_size=size, image_seed=0)


def read_png(path: str) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def test_an_image_prompt_becomes_a_png_the_pixel_analyser_confirms(model, tmp_path) -> None:
    model.generate_stream = scripted(REPLY)
    reply = Assistant(model, images_only()).ask("Draw a picture of a green square.")
    events = list(reply.events())
    assert [type(e) for e in events if isinstance(e, (ImagePrompt, VideoPrompt, ImageGenerated, VideoGenerated))] == [
        ImagePrompt, ImageGenerated]
    out = reply.output
    assert out.text == "Here is your picture." and out.image_prompts == [GREEN_SQUARE] and out.video_prompts == []
    (image,) = out.generated_images
    assert image.image.shape == (128, 128, 3) and image.path is None  # nothing written until saved
    image.save(tmp_path)
    assert image.path.endswith("-a-green-square-on-a-white-background.png")
    sidecar = json.loads(open(image.sidecar).read())
    assert sidecar["backend"] == "synthetic" and sidecar["prompt"] == GREEN_SQUARE and sidecar["height"] == 128
    assert matches(analyze_clip(read_png(image.path)), color="green", shape="square")
    row = out.to_dict()
    assert row["image_prompts"] == [GREEN_SQUARE] and row["generated_images"][0]["image"] == sidecar["image"]
    assert "image_generation" in out.timings and "video_generation" not in out.timings


def test_videos_and_images_in_one_reply_go_to_their_own_backends(model) -> None:
    model.generate_stream = scripted("Both. <video_prompt>A red circle moves left on a black background.</video_prompt>"
                                     f" <image_prompt>{GREEN_SQUARE}</image_prompt>")
    settings = GenerationSettings(build_generator("synthetic"), num_frames=8, height=64, width=64, seed=0,
                                  image_generator=build_image_generator("synthetic"), image_size=96)
    out = Assistant(model, settings).ask("A video and a picture, please.").consume().output
    assert out.video_prompts == ["A red circle moves left on a black background."]
    assert out.image_prompts == [GREEN_SQUARE]
    assert out.generated[0].frames.shape == (8, 64, 64, 3) and out.generated_images[0].image.shape == (96, 96, 3)


def test_without_an_image_backend_the_prompt_is_only_reported(model) -> None:
    model.generate_stream = scripted(REPLY)
    settings = GenerationSettings(build_generator("synthetic"), num_frames=8, height=64, width=64)
    out = Assistant(model, settings).ask("Draw a green square.").consume().output
    assert out.image_prompts == [GREEN_SQUARE] and out.generated_images == [] and out.generation_errors == []


def test_an_image_prompt_outside_the_world_is_a_generation_error(model) -> None:
    model.generate_stream = scripted("Sure. <image_prompt>A dog on a beach.</image_prompt>")
    out = Assistant(model, images_only()).ask("Draw a dog.").consume().output
    assert out.generated_images == [] and out.image_prompts == ["A dog on a beach."]
    (error,) = out.generation_errors
    assert "synthetic' image renderer" in error and "--image-generator" in error


def test_render_image_prompt_without_settings_checks_only() -> None:
    rendered = render_image_prompt(GREEN_SQUARE, None, None)
    assert rendered.image is None and rendered.video is None and rendered.decisions == [] and rendered.error is None


def test_write_image_checks_its_input(tmp_path) -> None:
    image = np.zeros((4, 6, 3), np.uint8)
    assert read_png(str(write_image(tmp_path / "a" / "x.png", image))).shape == (4, 6, 3)
    with pytest.raises(InputError, match="use a name ending in .png"):
        write_image(tmp_path / "x.jpg", image)
    with pytest.raises(InputError, match="one \\(H, W, 3\\) array"):
        write_image(tmp_path / "y.png", np.zeros((2, 4, 6, 3), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        write_image(tmp_path / "z.png", image.astype(np.float32))
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["x.png"]  # nothing half-written


# ------------------------------------------------------------------------------------ command line
def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def replying(monkeypatch):
    """Every model the command line loads replies with the given text."""
    from gpt4video.modeling import GPT4Video

    def reply_with(text: str) -> None:
        monkeypatch.setattr(GPT4Video, "generate_stream", lambda self, *a, **k: scripted(text)(*a, **k))

    return reply_with


def test_chat_writes_a_png_where_it_writes_mp4s(replying, tiny_saved_model_dir, tmp_path, capsys) -> None:
    replying(REPLY)
    code, out, err = run(["chat", "--model", str(tiny_saved_model_dir), "--prompt", "Draw a green square.",
                          "--output-dir", str(tmp_path), "--image-size", "96", "--image-seed", "4", "--no-safety"],
                         capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "Here is your picture." and lines[1].startswith("[image: ") and "(synthetic: " in lines[1]
    (png,) = tmp_path.glob("*.png")
    assert str(png) in lines[1] and png.with_suffix(".json").is_file()
    pixels = read_png(str(png))
    assert pixels.shape == (96, 96, 3) and matches(analyze_clip(pixels), color="green", shape="square")

    code, out, err = run(["chat", "--model", str(tiny_saved_model_dir), "--prompt", "Draw a green square.", "--json",
                          "--output-dir", str(tmp_path / "j"), "--no-safety"], capsys)
    obj = json.loads(out)
    assert code == 0 and obj["image_prompts"] == [GREEN_SQUARE]
    assert obj["generated_images"][0]["path"].endswith(".png") and obj["generated_images"][0]["width"] == 256


def test_chat_with_image_generator_none_reports_the_prompt(replying, tiny_saved_model_dir, tmp_path, capsys) -> None:
    replying(REPLY)
    code, out, err = run(["chat", "--model", str(tiny_saved_model_dir), "--prompt", "Draw a green square.",
                          "--output-dir", str(tmp_path), "--image-generator", "none", "--no-safety"], capsys)
    assert code == 0, err
    assert f"[image prompt: {GREEN_SQUARE}]" in out and not list(tmp_path.glob("*.png"))


def test_chat_reports_an_image_prompt_it_cannot_draw(replying, tiny_saved_model_dir, tmp_path, capsys) -> None:
    replying("Sure. <image_prompt>A dog on a beach.</image_prompt>")
    code, out, err = run(["chat", "--model", str(tiny_saved_model_dir), "--prompt", "Draw a dog.",
                          "--output-dir", str(tmp_path), "--no-safety"], capsys)
    assert code == 0, err
    assert "[not rendered: cannot render 'A dog on a beach.'" in out and not list(tmp_path.glob("*.png"))


def test_predict_with_generate_writes_the_rows_images(replying, tiny_saved_model_dir, tmp_path, capsys) -> None:
    replying(REPLY)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": 1, "question": "Draw a green square."}) + "\n")
    code, _, err = run(["predict", "--input", str(src), "--output", str(out), "--model", str(tiny_saved_model_dir),
                        "--generate", "--output-dir", str(tmp_path / "gen"), "--no-progress", "--no-safety"], capsys)
    assert code == 0, err
    row = json.loads(out.read_text())
    (image,) = row["generated_images"]
    assert row["image_prompts"] == [GREEN_SQUARE] and image["path"].endswith(".png")
    assert matches(analyze_clip(read_png(image["path"])), color="green", shape="square")


def test_image_generator_options_are_its_config_fields() -> None:
    from gpt4video.cli import _generation_settings, _image_generator_config, build_parser
    from gpt4video.generators import ImageGeneratorConfig

    parser = build_parser()
    args = parser.parse_args(["chat", "--image-generator", "flux", "--image-generator-model", "/m", "--image-steps",
                              "4", "--image-generator-dtype", "bf16", "--image-size", "512", "--image-seed", "2",
                              "--generator", "none"])
    assert _image_generator_config(args) == ImageGeneratorConfig(name="flux", model="/m", num_inference_steps=4,
                                                                 dtype="bf16", size=512, seed=2)
    settings = _generation_settings(args)
    assert settings.generator is None and settings.image_generator.name == "flux"
    assert (settings.image_size, settings.image_seed) == (512, 2)
    assert _generation_settings(parser.parse_args(["chat", "--generator", "none", "--image-generator", "none"])) is None
    assert _generation_settings(parser.parse_args(["chat"])).image_generator.name == "synthetic"


@pytest.mark.parametrize("argv, needle", [
    (["--image-size", "0"], "argument --image-size: must be greater than or equal to 1, got 0"),
    (["--image-generator", "dalle"], "unknown image generator 'dalle'"),
])
def test_bad_image_options_exit_2(argv, needle, tiny_saved_model_dir, capsys) -> None:
    try:
        code = main(["chat", "--model", str(tiny_saved_model_dir), "--prompt", "x", *argv])
    except SystemExit as e:  # argparse's own check of the value
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_reply_output_keys_include_the_image_fields() -> None:
    assert {"image_prompts", "generated_images"} <= set(ReplyOutput().to_dict())
