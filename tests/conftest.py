"""Shared fixtures: tiny models built from configs (no downloads), and offline settings."""

from __future__ import annotations

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
