"""Shared fixtures: tiny models built from configs (no downloads), and offline settings."""

from __future__ import annotations

import contextlib
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

TINY_CORPUS = [
    "###Human: What color is the square?\n###AI: red",
    "###Human: Describe this video.\n###AI: A red circle moves to the right on a gray background.",
    "<video></video> <video1></video1> <video2></video2> <video_prompt></video_prompt>",
    "How many objects are there? Which way does the green circle move? left right up down still grows shrinks",
    "triangle square circle blue yellow purple orange white black",
]


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory):
    """A byte-level BPE tokenizer trained on a few lines, saved as a Hugging Face tokenizer directory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(TINY_CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    path = tmp_path_factory.mktemp("tiny_tokenizer")
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llm_dir(tiny_tokenizer_dir, tmp_path_factory):
    """A 2-layer Llama with hidden size 32, saved with the tiny tokenizer: loadable as a local LLM directory."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
        initializer_range=0.3,  # large enough that the output head can express confident predictions
    )
    model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("tiny_llm")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    """A tiny CLIP vision tower: 32 px images, 8 px patches → 17 tokens of width 32 per frame."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    config = CLIPVisionConfig(
        image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4,
    )
    path = tmp_path_factory.mktemp("tiny_clip")
    CLIPVisionModel(config).save_pretrained(path)
    return path


@pytest.fixture
def tiny_model_config(tiny_llm_dir, tiny_clip_dir):
    """A whole GPT4Video config made of tiny parts."""
    from gpt4video.config import AbstractorConfig, EncoderConfig, LLMConfig, LoraConfig, ModelConfig

    return ModelConfig(
        encoder=EncoderConfig(name="clip", model=str(tiny_clip_dir)),
        abstractor=AbstractorConfig(
            encoder_dim=32, tokens_per_frame=17, max_frames=4, hidden_size=32, num_layers=2, num_heads=4,
            num_queries=8, output_dim=32,
        ),
        llm=LLMConfig(model=str(tiny_llm_dir), lora=LoraConfig(r=4, alpha=8, dropout=0.0)),
        num_frames=4,
        frame_size=64,
    )


def _small_model(llm_dir, clip_dir):
    """A GPT4Video of tiny parts (1-layer abstractor, 4 video tokens, LoRA r=2), seeded."""
    from gpt4video.config import AbstractorConfig, EncoderConfig, LLMConfig, LoraConfig, ModelConfig
    from gpt4video.modeling import GPT4Video

    config = ModelConfig(
        encoder=EncoderConfig(name="clip", model=str(clip_dir)),
        abstractor=AbstractorConfig(encoder_dim=32, tokens_per_frame=17, max_frames=4, hidden_size=32,
                                    num_layers=1, num_heads=4, num_queries=4, output_dim=32),
        llm=LLMConfig(model=str(llm_dir), lora=LoraConfig(r=2, alpha=4, dropout=0.0)),
        num_frames=4,
        frame_size=64,
    )
    torch.manual_seed(0)
    return GPT4Video.from_config(config)


@pytest.fixture(scope="module")
def tiny_model(tiny_llm_dir, tiny_clip_dir):
    """A small GPT4Video of tiny parts, one per test module."""
    return _small_model(tiny_llm_dir, tiny_clip_dir)


@pytest.fixture(scope="session")
def tiny_saved_model_dir(tmp_path_factory, tiny_llm_dir, tiny_clip_dir):
    """A saved GPT4Video of tiny parts (1-layer abstractor, 4 video tokens, LoRA r=2), loadable by path."""
    return _small_model(tiny_llm_dir, tiny_clip_dir).save_pretrained(tmp_path_factory.mktemp("saved") / "model")


@pytest.fixture(scope="module")
def tiny_server(tiny_model):
    """`gpt4video serve` of the tiny model (uvicorn on a thread, 127.0.0.1, API key "k", 6-token replies): an
    OpenAI-compatible endpoint whose replies are arbitrary text. Yields its /v1 URL."""
    pytest.importorskip("uvicorn")
    from gpt4video.serving import ServeConfig
    from gpt4video.serving.app import create_app
    from gpt4video.serving.process import free_port

    config = ServeConfig(port=free_port(), model_name="tiny", api_key="k", default_max_tokens=6, queue_size=4)
    with serving(create_app(config, tiny_model, generators={}, web=False), config) as url:
        yield url


@contextlib.contextmanager
def serving(app, config):
    """Serve ``app`` (uvicorn on a thread, 127.0.0.1:config.port) while the block runs; yields its /v1 URL."""
    import threading
    import time

    from gpt4video.serving.app import make_server

    server = make_server(app, config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{config.port}/v1"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="session")
def serve_app():
    """``serve_app(app, config)``: a context manager serving the app on loopback, yielding its /v1 URL."""
    return serving


class FixedWords:
    """A speech recogniser that hears "the red ball" in every stretch of sound it is given."""

    name = "fixed"

    def transcribe(self, samples):
        return "the red ball"


@pytest.fixture(scope="session")
def hears_red_ball():
    """A Transcriber (real voice-activity detection) whose recogniser hears "the red ball" in any speech."""
    from gpt4video.audio import Transcriber

    return Transcriber(FixedWords())


class ChatStub:
    """An OpenAI-compatible ``/v1/chat/completions`` on 127.0.0.1 (a thread). ``reply(body)`` gives ``(status,
    content)``: with 200 the content is sent as a chat completion's message, with another status as the raw
    body; bytes are sent as they are. Every request is recorded (``requests``: the body, plus ``path`` and
    ``auth``)."""

    def __init__(self, reply):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
                status, content = reply(body)
                if isinstance(content, str) and status == 200:
                    content = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
                data = content if isinstance(content, bytes) else content.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def chat_stub():
    """``start(reply)`` starts a :class:`ChatStub`; all are stopped after the test."""
    made = []

    def start(reply):
        made.append(ChatStub(reply))
        made[-1].seen = getattr(reply, "seen", None)  # what the reply function counts, if it does
        return made[-1]

    yield start
    for stub in made:
        stub.close()


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A synthetic training split of 6 clips (64 px, 8 frames): captions, QA and generation dialogues."""
    from gpt4video.data.synthetic import build_split

    root = tmp_path_factory.mktemp("tiny_world")
    build_split(root, "train", 6, width=64, height=64, num_frames=8, progress=False)
    return root


@pytest.fixture
def cli(capsys):
    """Runs ``gpt4video ARGS`` in this process: ``cli([...])`` → (exit status, stdout, stderr)."""
    from gpt4video.cli import main

    def run(argv: list[str]) -> tuple[int, str, str]:
        code = main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    return run
