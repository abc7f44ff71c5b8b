"""The command line on a tiny model: output formats, exit statuses, and one clear line for every bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from gpt4video.cli import main
from gpt4video.video import write_video


@pytest.fixture(scope="module")
def tiny_model_dir(tiny_saved_model_dir):
    return tiny_saved_model_dir


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    return write_video(tmp_path_factory.mktemp("v") / "clip.mp4", rng.integers(0, 255, (8, 48, 64, 3), dtype=np.uint8))


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_one_turn_json(tiny_model_dir, clip_path, capsys):
    code, out, err = run(["chat", "--model", str(tiny_model_dir), "--video", str(clip_path), "--video",
                          str(clip_path), "--prompt", "Compare them.", "--max-new-tokens", "4", "--json"], capsys)
    assert code == 0, err
    obj = json.loads(out)
    assert isinstance(obj["text"], str) and obj["trained"] is True and len(obj["input_videos"]) == 2
    for key in ("decode", "encode", "abstract", "prefill", "generation", "tokens_per_second"):
        assert key in obj["timings"]


def test_streaming_text_and_timings(tiny_model_dir, clip_path, capsys):
    code, out, err = run(["chat", "--model", str(tiny_model_dir), "--video", str(clip_path), "--prompt", "Hi",
                          "--max-new-tokens", "3", "--show-timings"], capsys)
    assert code == 0 and out.endswith("\n") and "timings: decode" in err


def test_interactive_session_attaches_videos_and_keeps_going(tiny_model_dir, clip_path, capsys, monkeypatch):
    import io

    script = f"Hello\n/video {clip_path}\nWhat is in it?\n/video /no/such/file.mp4\n/bogus\n/reset\nBye\n/quit\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(script))
    code, out, err = run(["chat", "--model", str(tiny_model_dir), "--max-new-tokens", "2", "--json"], capsys)
    assert code == 0
    answers = [json.loads(line) for line in out.splitlines()]
    assert [len(a["input_videos"]) for a in answers] == [0, 1, 0]
    assert "file not found" in err and "unknown command" in err


def make_bad_files(tmp_path):
    files = {}
    files["missing"] = tmp_path / "missing.mp4"
    files["directory"] = tmp_path / "adir"
    files["directory"].mkdir()
    files["empty"] = tmp_path / "empty.mp4"
    files["empty"].write_bytes(b"")
    files["not a video"] = tmp_path / "notes.mp4"
    files["not a video"].write_text("this is text, not a video\n" * 20)
    good = write_video(tmp_path / "good.mp4", np.zeros((30, 64, 64, 3), dtype=np.uint8))
    data = good.read_bytes()
    files["truncated"] = tmp_path / "truncated.mp4"
    files["truncated"].write_bytes(data[: len(data) // 3])
    return files


def test_every_bad_video_exits_2_with_one_line(tiny_model_dir, tmp_path, capsys):
    for kind, path in make_bad_files(tmp_path).items():
        code, out, err = run(["chat", "--model", str(tiny_model_dir), "--video", str(path), "--prompt", "x"], capsys)
        assert code == 2, (kind, err)
        assert str(path.name) in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (kind, err)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["chat", "--model", "no-such-preset", "--prompt", "x"], "neither a preset"),
        (["chat", "--prompt", "  "], "empty"),
        (["chat", "--max-new-tokens", "0", "--prompt", "x"], "max-new-tokens"),
        (["chat", "--dtype", "int3", "--prompt", "x"], "dtype"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2(argv, needle, capsys):
    code = None
    try:
        code, out, err = run(argv, capsys)
    except SystemExit as e:  # argparse exits by itself
        code = e.code
        err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err


def test_console_script_exit_status_without_traceback(tmp_path):
    """The installed entry point, as a user runs it: a missing file → status 2, one line, no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "gpt4video.cli", "chat", "--video", str(tmp_path / "nope.mp4"), "--prompt", "x"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "nope.mp4" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_demo_asks_about_fresh_synthetic_clips(tiny_model_dir, clip_path, tmp_path, capsys):
    code, out, err = run(["demo", "--model", str(tiny_model_dir), "--clips", "1", "--questions", "2",
                          "--out", str(tmp_path / "demo"), "--video", str(clip_path)], capsys)
    assert code == 0, err
    assert "truth:" in out and "answers right on clips the model has never seen" in out
    assert len(list((tmp_path / "demo").glob("test-*.mp4"))) == 1
    assert "timings: decode" in out


def test_generate_direct_renders_with_the_offline_backend(tmp_path, capsys):
    code, out, err = run(["generate", "A purple square grows on a black background.", "--direct", "--json",
                          "--output-dir", str(tmp_path), "--video-frames", "8", "--video-size", "64"], capsys)
    assert code == 0, err
    obj = json.loads(out)
    video = obj["generated_videos"][0]["path"]
    sidecar = json.loads(open(video[:-4] + ".json").read())
    assert sidecar["backend"] == "synthetic" and sidecar["prompt"].startswith("A purple square")
    from gpt4video.video import load_video

    assert load_video(video, num_frames=8).frames.shape == (8, 64, 64, 3)


def test_generate_direct_out_of_vocabulary_is_a_clear_error(tmp_path, capsys):
    code, out, err = run(["generate", "a dog surfing a wave", "--direct", "--output-dir", str(tmp_path)], capsys)
    assert code == 2 and "synthetic" in err and "diffusers" in err


def test_model_prompts_are_routed_and_rendered(tiny_model_dir, tmp_path):
    """The assistant splits a reply into text and prompts and renders each prompt (reply text fixed by a stub)."""
    from gpt4video.generators import build_generator
    from gpt4video.engines import TextStream
    from gpt4video.modeling import GPT4Video
    from gpt4video.pipeline import Assistant, GenerationSettings

    model = GPT4Video.from_pretrained(tiny_model_dir)
    reply_text = "Sure. <video_prompt>A red circle moves left on a gray background.</video_prompt> Done."

    def fake_stream(turns, videos=(), params=None, *, features=None, cancel=None, engine=None):  # noqa: ANN001
        pieces = [reply_text[i : i + 3] for i in range(0, len(reply_text), 3)]
        return TextStream.of_text(pieces)

    model.generate_stream = fake_stream
    settings = GenerationSettings(build_generator("synthetic"), num_frames=8,
                                  height=64, width=64, seed=1)
    assistant = Assistant(model, settings)
    shown = "".join(assistant.ask("Make me a video of a red circle going left."))
    reply = assistant.turns  # the history keeps the raw reply, tags included
    assert shown == "Sure. Done." and "<video_prompt>" in reply[-1].text
    second = assistant.ask("Again please.")
    second.consume()
    assert second.video_prompts == ["A red circle moves left on a gray background."]
    assert len(second.generated) == 1 and second.generated[0].frames.shape == (8, 64, 64, 3)
    assert second.generated[0].path is None  # nothing is written until the caller saves it
    assert second.generated[0].save(tmp_path).path.endswith(".mp4")
    assert "video_generation" in second.timings


def test_predict_with_generate_keeps_input_fields(tiny_model_dir, clip_path, tmp_path, capsys):
    rows = [{"question": "What is in the video?", "video": str(clip_path), "id": 7}, {"question": ""}]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out.jsonl"
    code, _, err = run(["predict", "--input", str(src), "--output", str(out), "--model", str(tiny_model_dir),
                        "--max-new-tokens", "3", "--generate", "--output-dir", str(tmp_path / "gen"),
                        "--no-progress"], capsys)
    assert code == 0, err
    first, second = [json.loads(line) for line in out.read_text().splitlines()]
    assert first["id"] == 7 and "text" in first and isinstance(first["video_prompts"], list)
    assert "error" in second


def test_serve_options_are_the_serve_config_fields():
    """Each ServeConfig field declared with ``option`` is a serve option: given ones reach the config, the rest keep
    the field's default."""
    from gpt4video.cli import _config_from_options, build_parser
    from gpt4video.config import VideoConfig
    from gpt4video.serving import ServeConfig

    parser = build_parser()
    args = parser.parse_args(["serve", "--max-upload-mb", "2", "--file-ttl", "60", "--no-web", "--allow-url-fetch",
                              "--served-model-name", "m", "--queue-size", "3", "--video-frames", "8"])
    config = _config_from_options(ServeConfig, args, model_name="fallback",
                                  video=_config_from_options(VideoConfig, args))
    assert config == ServeConfig(max_upload_mb=2.0, file_ttl_seconds=60.0, web=False, allow_url_fetch=True,
                                 model_name="m", queue_size=3, video=VideoConfig(frames=8))
    assert ServeConfig.from_dict(config.to_dict()) == config
    help_text = parser._subparsers._group_actions[0].choices["serve"].format_help()
    assert "largest video accepted" in help_text and "(default: 64)" in help_text


def test_a_config_field_declared_as_an_option_is_one_declaration():
    import argparse

    from gpt4video.cli import _add_config_options, _config_from_options
    from gpt4video.config import ConfigBase, Count, config_class, option

    @config_class
    class Settings(ConfigBase):
        max_batch: Count = option(1, "requests decoded together")
        not_an_option: int = 0

    parser = argparse.ArgumentParser()
    _add_config_options(parser, Settings)
    assert "requests decoded together (default: 1)" in " ".join(parser.format_help().split())
    assert "--not-an-option" not in parser.format_help()
    assert _config_from_options(Settings, parser.parse_args(["--max-batch", "4"])).max_batch == 4
    assert _config_from_options(Settings, parser.parse_args([])).max_batch == 1


@pytest.mark.parametrize("argv, needle", [
    (["serve", "--port", "70000"], "argument --port: must be less than or equal to 65535, got 70000"),
    (["serve", "--max-upload-mb", "0"], "argument --max-upload-mb: must be greater than 0, got 0.0"),
    (["serve", "--queue-size", "two"], "argument --queue-size: expected a whole number, got 'two'"),
    (["chat", "--top-p", "1.5", "--prompt", "x"], "argument --top-p: must be less than or equal to 1, got 1.5"),
    (["chat", "--dtype", "int3"], "argument --dtype: invalid choice: 'int3'"),
    (["serve", "--engine", "tensorrt"], "argument --engine: invalid choice: 'tensorrt'"),
    (["chat", "--device", "gpu"], "argument --device: must be a torch device such as cpu, cuda or cuda:1, got 'gpu'"),
    (["predict", "--model", ""], "argument --model: must not be empty, got ''"),
    (["generate", "x", "--video-frames", "0"], "argument --video-frames: must be greater than or equal to 1, got 0"),
    (["chat", "--video-seed", "1.5"], "argument --video-seed: expected a whole number, got '1.5'"),
])
def test_option_values_are_checked_as_their_fields(argv, needle, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_generator_options_are_the_generator_config_fields():
    """--generator* are GeneratorConfig's fields; its model/device/dtype do not clash with --model/--device/--dtype."""
    from gpt4video.cli import _config_from_options, _generator_config, build_parser
    from gpt4video.config import LoadConfig
    from gpt4video.generators import GeneratorConfig

    args = build_parser().parse_args(["chat", "--model", "smol", "--dtype", "bfloat16", "--generator", "zeroscope",
                                      "--generator-model", "/m", "--generator-dtype", "fp16", "--steps", "3",
                                      "--cpu-offload"])
    assert _config_from_options(LoadConfig, args) == LoadConfig(model="smol", dtype="bfloat16")
    assert _generator_config(args) == GeneratorConfig(name="zeroscope", model="/m", dtype="fp16",
                                                      num_inference_steps=3, cpu_offload=True)
    assert _generator_config(build_parser().parse_args(["chat", "--generator", "none"])) is None
    assert _generator_config(build_parser().parse_args(["chat"])) == GeneratorConfig()


def test_model_and_video_options_are_config_fields():
    """--model/--device/--dtype/--engine are LoadConfig's fields, --video-frames/--video-size/--video-seed
    VideoConfig's; an option not given keeps the field's default."""
    import torch

    from gpt4video.cli import _config_from_options, _generation_settings, build_parser
    from gpt4video.config import LoadConfig

    parser = build_parser()
    args = parser.parse_args(["generate", "x", "--engine", "llamacpp", "--video-frames", "8", "--video-size", "64",
                              "--video-seed", "3"])
    assert _config_from_options(LoadConfig, args) == LoadConfig(engine="llamacpp")
    settings = _generation_settings(args)
    assert (settings.num_frames, settings.height, settings.width, settings.seed) == (8, 64, 64, 3)
    settings = _generation_settings(parser.parse_args(["predict", "--input", "in.jsonl", "--output", "out.jsonl"]))
    assert (settings.num_frames, settings.height, settings.width, settings.seed) == (16, 256, 256, None)
    options = LoadConfig(dtype="float16").load_options()
    assert options == {"device": "cpu", "dtype": torch.float16, "engine": "transformers", "engine_options": {}}
