"""The chat page (Gradio): upload videos or pick an example, talk with the model, watch the videos and see the
images it makes.

It works with no internet: analytics are off, the theme uses the system's fonts (no Google Fonts), and
every asset comes from the installed gradio package. The page talks to the same engine as the API, so
its requests share the model's queue: when that is full, the page says so instead of waiting.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from ..errors import InputError  # noqa: E402
from ..modeling import GenerationParams  # noqa: E402
from .config import ServeConfig  # noqa: E402
from .engine import ChatResult, ChatTurn, Delta, Done, Engine  # noqa: E402
from .errors import Busy  # noqa: E402
from .inputs import VideoInputs  # noqa: E402

SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica", "Arial",
                "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
#: Videos and images in the conversation at a watchable size instead of the chat's full width.
CSS = "#chat video, #chat img { max-height: 280px; width: auto; max-width: 100%; }"


def theme() -> gr.themes.Theme:
    """Gradio's Soft theme with system fonts only (its defaults load Google Fonts from the internet)."""
    return gr.themes.Soft(font=SYSTEM_FONTS, font_mono=MONO_FONTS)


@dataclass
class Example:
    text: str
    files: list[str]


def make_examples(folder: str | os.PathLike[str]) -> list[Example]:
    """Two clips of the synthetic world the offline model knows (from seeds no split uses), their
    questions, a two-video question and a request for a new video."""
    from ..data.synthetic.qa import questions
    from ..data.synthetic.render import write_clip
    from ..data.synthetic.scenes import sample_scene, split_seeds

    folder = Path(folder)
    examples: list[Example] = []
    clips = []
    # Seeds past the test split's first 10,000 clips: never in a split this project trains or evaluates on.
    for seed in split_seeds("test", 10_002)[10_000:]:
        scene = sample_scene(seed)
        path = folder / f"example-{seed}.mp4"
        if not path.is_file():
            write_clip(scene, path)
        clips.append(str(path))
        examples.append(Example(questions(scene, seed)[0].question, [str(path)]))
    examples.append(Example("Describe this video.", clips[:1]))
    examples.append(Example("What is different between the two videos?", clips))
    examples.append(Example("Make a video of a red circle moving to the right.", []))
    examples.append(Example("Draw a picture of a green square.", []))
    return examples


def refusal_note(result: ChatResult) -> str:
    """Why a turn was refused: the reasons of the flagged safety verdicts, else the reply itself."""
    reasons = list(dict.fromkeys(str(v["reason"]) + (f" (the {v['source']})" if v.get("source") else "")
                                 for v in result.safety if v.get("flagged") and v.get("reason")))
    return "**Refused by the safety policy**" + (f": {'; '.join(reasons)}" if reasons else "")


def _file_path(item: Any) -> str:
    return item if isinstance(item, str) else str(item.get("path") or item.get("name"))


class ChatPage:
    """The page's event handlers, bound to the server's engine and its upload checks."""

    def __init__(self, engine: Engine, inputs: VideoInputs, config: ServeConfig, *, generators: Sequence[str],
                 default_generator: str, notes: Sequence[str] = (), examples: Sequence[Example] = (),
                 image_generators: Sequence[str] = (), default_image_generator: str = "none") -> None:
        self.engine = engine
        self.inputs = inputs
        self.config = config
        self.generators = list(generators)
        self.default_generator = default_generator
        self.image_generators = list(image_generators)
        self.default_image_generator = default_image_generator
        self.notes = list(notes)
        self.examples = list(examples)

    # -- handlers --------------------------------------------------------------------------------
    def add_user_turn(self, message: dict | None, chat: list, history: list[ChatTurn]):  # noqa: ANN201
        """Check the uploads and show the question. A problem (a broken upload, no question) is one clear
        warning; the conversation and the question box stay as they were, so it can be fixed and resent."""
        message = message or {}
        text = (message.get("text") or "").strip()
        files = [_file_path(f) for f in message.get("files") or []]
        try:
            if not text:
                raise InputError("type a question (about your videos, or asking for a new video)")
            if len(files) + sum(len(t.clips) for t in history) > self.config.max_videos:
                raise InputError(f"at most {self.config.max_videos} videos per conversation; start a new one")
            clips = [self.inputs.load_file(path, Path(path).name) for path in files]
        except InputError as e:
            gr.Warning(str(e)[:1].upper() + str(e)[1:], duration=None)
            return gr.skip(), gr.skip(), gr.skip()
        for path in files:
            chat.append({"role": "user", "content": {"path": path}})
        chat.append({"role": "user", "content": text})
        history = [*history, ChatTurn("user", text, clips)]
        return gr.MultimodalTextbox(value=None, interactive=False), chat, history

    async def answer(self, chat: list, history: list[ChatTurn], generator: str, max_tokens: float,  # noqa: ANN201
                     image_generator: str = "none"):
        """Stream the model's answer into the conversation, then show the videos and images it made."""
        if not history or history[-1].role != "user":
            yield chat, history
            return
        params = GenerationParams(max_new_tokens=int(max_tokens))
        try:
            job = self.engine.submit(history, params, None if generator == "none" else generator,
                                     asyncio.get_running_loop(), None if image_generator == "none" else image_generator)
        except Busy:
            chat.append({"role": "assistant",
                         "content": "**Busy:** the server has too many requests waiting; please send again shortly."})
            yield chat, history[:-1]
            return
        except InputError as e:
            chat.append({"role": "assistant", "content": f"**Error:** {e}"})
            yield chat, history[:-1]
            return
        chat.append({"role": "assistant", "content": ""})
        text = ""
        try:
            async for event in job.events(self.config.request_timeout):
                if isinstance(event, Delta):
                    text += event.text
                    chat[-1] = {"role": "assistant", "content": text}
                    yield chat, history
                elif isinstance(event, Done):
                    chat[-1] = {"role": "assistant", "content": event.result.text or "(no text)"}
                    chat.extend(self._result_messages(event.result))
                    yield chat, [*history, ChatTurn("assistant", event.result.text)]
        except InputError as e:
            chat[-1] = {"role": "assistant", "content": f"**Error:** {e}"}
            yield chat, history[:-1]
        except Exception as e:  # noqa: BLE001 - a broken turn must not break the page
            chat[-1] = {"role": "assistant",
                        "content": f"**Error:** internal error ({type(e).__name__}); please try again"}
            yield chat, history[:-1]

    def _result_messages(self, result: ChatResult) -> list[dict]:
        out: list[dict] = []
        if result.refused:
            out.append({"role": "assistant", "content": refusal_note(result)})
        for kind, files in (("video", result.videos), ("image", result.images)):
            for made in files:
                out.append({"role": "assistant", "content": {"path": made.file.path, "alt_text": made.prompt}})
                out.append({"role": "assistant", "content": f"Generated {kind} ({made.backend}): *{made.prompt}*"})
        for error in result.generation_errors:
            out.append({"role": "assistant", "content": f"**Not rendered:** {error}"})
        if not result.videos and not result.images and not result.generation_errors:
            for kind, prompts in (("Video", result.video_prompts), ("Image", result.image_prompts)):
                for prompt in prompts:
                    out.append({"role": "assistant", "content": f"{kind} prompt (no generator chosen): *{prompt}*"})
        return out

    # -- the page --------------------------------------------------------------------------------
    def build(self) -> gr.Blocks:
        ttl = int(self.config.file_ttl_seconds)
        with gr.Blocks(title="GPT4Video", analytics_enabled=False,
                       delete_cache=(max(60, ttl // 4), ttl)) as page:
            notes = "".join(f"\n\n> **Note:** {n}" for n in self.notes)
            gr.Markdown(f"## GPT4Video · `{self.config.model_name}`\nUpload one or more videos and ask about them, "
                        f"or ask for a new video or a picture.{notes}")
            chat = gr.Chatbot(label="Conversation", height=480, elem_id="chat", feedback_options=None,
                              placeholder="Your conversation appears here.")
            box = gr.MultimodalTextbox(
                file_types=["video", "image"], file_count="multiple", sources=["upload"], elem_id="ask",
                placeholder="Ask about your videos, or ask for a new one… (attach videos with the clip button)",
                show_label=False, autofocus=True,
            )
            with gr.Row():
                generator = gr.Dropdown([*self.generators, "none"], value=self.default_generator,
                                        label="Video generator", elem_id="generator", scale=2)
                image_generator = gr.Dropdown([*self.image_generators, "none"], value=self.default_image_generator,
                                              label="Image generator", elem_id="image-generator", scale=2)
                max_tokens = gr.Slider(8, self.config.max_tokens, value=self.config.default_max_tokens, step=8,
                                       label="Max new tokens", scale=2)
                new = gr.Button("New conversation", elem_id="new", scale=1)
            history = gr.State([])
            if self.examples:
                gr.Examples([[{"text": e.text, "files": e.files}] for e in self.examples], inputs=[box],
                            label="Examples (synthetic clips the offline model knows)")
            # The box is read-only while an answer is written, and takes the next question after it.
            box.submit(self.add_user_turn, [box, chat, history], [box, chat, history], show_progress="hidden",
                       concurrency_limit=4).success(
                self.answer, [chat, history, generator, max_tokens, image_generator], [chat, history],
                concurrency_limit=self.config.queue_size + 1,
            ).then(lambda: gr.MultimodalTextbox(interactive=True), None, [box], queue=False)
            new.click(lambda: ([], []), None, [chat, history], queue=False)
        page.queue(max_size=4 * (self.config.queue_size + 1))
        return page
