"""The tokenizer's own chat template (``llm.chat_template: native``) beside the paper's: the videos spliced into
the template's output, labels on the assistant's turns and their end-of-turn token, the template's own ids,
the errors; and the default (paper) prompt of the packaged SmolLM2 tokenizer unchanged to the token."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from gpt4video.errors import ConfigError, InputError
from gpt4video.processing import IGNORE_INDEX, VIDEO_TOKEN, GPT4VideoProcessor, Turn

# Written here in the formats of each family's template (simplified: no system prompt, no tools).
CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3 = ("{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n'"
          " + m['content'] | trim + '<|eot_id|>' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
GEMMA = ("{{ bos_token }}{% for m in messages %}"
         "{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
         "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
         "{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
         "{{ '<start_of_turn>' + role + '\n' + m['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
         "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}")
TEMPLATES = {"chatml": (CHATML, "<|im_end|>"), "llama3": (LLAMA3, "<|eot_id|>"), "gemma": (GEMMA, "<end_of_turn>")}
SPECIAL = ["<|im_start|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<start_of_turn>",
           "<end_of_turn>", "<bos>"]

CONVERSATION = [Turn("user", "What color is the square?", videos=[0]), Turn("assistant", "red"),
                Turn("user", "And which way does it move?", videos=[1]), Turn("assistant", "left right")]


def tokenizer_with(tiny_tokenizer_dir, template: str | None):
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    tok.add_special_tokens({"additional_special_tokens": SPECIAL, "bos_token": "<bos>"})
    tok.chat_template = template
    return tok


def save_llama3_style(tiny_llm_dir, out):  # noqa: ANN001
    """The tiny Llama with a tokenizer in the Llama-3 template's format, saved to ``out`` (returned)."""
    from transformers import AutoModelForCausalLM

    tok = tokenizer_with(tiny_llm_dir, LLAMA3)
    llm = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    llm.resize_token_embeddings(len(tok), mean_resizing=False)
    llm.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def template_ids(tok, turns: list[Turn], n: int, *, add_generation_prompt: bool) -> list[int]:
    """What ``apply_chat_template`` itself gives for ``turns``, each video written as our placeholders."""
    total = sum(len(t.videos) for t in turns)
    messages = []
    for t in turns:
        videos = "".join(f"<{'video' if total == 1 else f'video{v + 1}'}>{VIDEO_TOKEN * n}"
                         f"</{'video' if total == 1 else f'video{v + 1}'}>\n" for v in t.videos)
        messages.append({"role": t.role, "content": videos + t.text})
    out = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


@pytest.mark.parametrize("family", sorted(TEMPLATES))
def test_native_template_ids_are_the_templates_own(tiny_tokenizer_dir, family):
    template, end = TEMPLATES[family]
    tok = tokenizer_with(tiny_tokenizer_dir, template)
    proc = GPT4VideoProcessor(tok, num_video_tokens=3, chat_template="native")
    assert proc.eos_token_id == tok.convert_tokens_to_ids(end)
    for turns, gen in ((CONVERSATION[:1], True), (CONVERSATION, False), (CONVERSATION[:3], True)):
        enc = proc.encode(turns, add_generation_prompt=gen)
        assert enc.input_ids.tolist() == template_ids(tok, turns, 3, add_generation_prompt=gen)
        assert int((enc.input_ids == proc.video_token_id).sum()) == 3 * sum(len(t.videos) for t in turns)
    text = tok.decode(proc.encode(CONVERSATION[:1]).input_ids.tolist())
    assert "<video>" + VIDEO_TOKEN * 3 + "</video>\nWhat color is the square?" in text
    assert "###" not in text


@pytest.mark.parametrize("family", sorted(TEMPLATES))
def test_native_labels_are_the_replies_and_their_end_of_turn(tiny_tokenizer_dir, family):
    template, end = TEMPLATES[family]
    tok = tokenizer_with(tiny_tokenizer_dir, template)
    proc = GPT4VideoProcessor(tok, num_video_tokens=3, chat_template="native")
    enc = proc.encode(CONVERSATION, add_generation_prompt=False)
    ids, labels = enc.input_ids.tolist(), enc.labels.tolist()
    assert all(lab in (IGNORE_INDEX, i) for i, lab in zip(ids, labels))
    learned = tok.decode([i for i, lab in zip(ids, labels) if lab != IGNORE_INDEX])
    assert learned == f"red{end}left right{end}"
    # generation sees exactly the training prefix: the prompt up to a reply is the start of the training ids
    prompt = proc.encode(CONVERSATION[:3]).input_ids.tolist()
    assert ids[:len(prompt)] == prompt
    assert tok.decode(ids[len(prompt):]).startswith("left right" + end)


def test_paper_template_is_still_the_default_and_unchanged(tiny_tokenizer_dir):
    tok = tokenizer_with(tiny_tokenizer_dir, CHATML)  # a chat template the paper template ignores
    proc = GPT4VideoProcessor(tok, num_video_tokens=3)
    assert proc.chat_template == "paper" and proc.eos_token_id == tok.eos_token_id
    text = tok.decode(proc.encode(CONVERSATION[:1]).input_ids.tolist())
    assert text == "###Human: <video>" + VIDEO_TOKEN * 3 + "</video>\n###Human: What color is the square?\n###AI: "


def test_native_template_errors(tiny_tokenizer_dir):
    with pytest.raises(ConfigError, match="chat_template is 'native' but the LLM's tokenizer has no chat template"):
        GPT4VideoProcessor(tokenizer_with(tiny_tokenizer_dir, None), 3, chat_template="native")
    with pytest.raises(ConfigError, match="must be one of paper, native, got 'llama'"):
        GPT4VideoProcessor(tokenizer_with(tiny_tokenizer_dir, CHATML), 3, chat_template="llama")
    gemma = GPT4VideoProcessor(tokenizer_with(tiny_tokenizer_dir, GEMMA), 3, chat_template="native")
    with pytest.raises(InputError, match="refuses a conversation of turns \\['user', 'user'\\]: Conversation roles "
                                         "must alternate"):
        gemma.encode([Turn("user", "hi"), Turn("user", "again")])
    drops = "{% for m in messages[-1:] %}{{ m['content'] + '<|im_end|>' }}{% endfor %}"
    with pytest.raises(InputError, match=r"does not write each message once and in order \(it wrote messages \[1\] of 2\)"):
        GPT4VideoProcessor(tokenizer_with(tiny_tokenizer_dir, drops), 3, chat_template="native")  # checked at once
    plain = "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
    with pytest.raises(ConfigError, match="ends an assistant turn with no special token"):
        GPT4VideoProcessor(tokenizer_with(tiny_tokenizer_dir, plain), 3, chat_template="native")


def test_a_native_model_learns_and_answers_in_its_template(tiny_llm_dir, tiny_clip_dir, tmp_path):
    """A tiny Llama whose tokenizer has a Llama-3-style template: the loss covers only the replies, generation
    stops at <|eot_id|>, and save/load keeps the template choice."""
    import numpy as np

    from gpt4video.config import AbstractorConfig, EncoderConfig, LLMConfig, LoraConfig, ModelConfig
    from gpt4video.modeling import GPT4Video

    llm_dir = save_llama3_style(tiny_llm_dir, tmp_path / "llama3-style")
    config = ModelConfig(
        encoder=EncoderConfig(name="clip", model=str(tiny_clip_dir)),
        abstractor=AbstractorConfig(encoder_dim=32, tokens_per_frame=17, max_frames=4, hidden_size=32, num_layers=1,
                                    num_heads=4, num_queries=4, output_dim=32),
        llm=LLMConfig(model=str(llm_dir), lora=LoraConfig(r=2, alpha=4, dropout=0.0), chat_template="native"),
        frame_size=64)
    torch.manual_seed(0)
    model = GPT4Video.from_config(config)
    eot = model.tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert model.processor.eos_token_id == eot and eot in model.eos_token_ids
    video = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    enc = model.processor.encode(CONVERSATION[:2], add_generation_prompt=False)
    out = model(input_ids=enc.input_ids[None], labels=enc.labels[None], features=model.encode_frames([video]))
    learned = enc.input_ids[enc.labels != IGNORE_INDEX].tolist()
    assert model.tokenizer.decode(learned) == "red<|eot_id|>"
    assert out.num_tokens == len(learned) and torch.isfinite(out.loss)
    reply = model.generate(CONVERSATION[:1], [video])
    assert isinstance(reply.text, str)
    # "###" ends a reply of the paper template only: a native reply may write a Markdown heading
    from gpt4video.config import GenerationParams

    assert model.prompt_request(CONVERSATION[:1], [video], GenerationParams()).params.stop == ()
    assert model.prompt_request(CONVERSATION[:1], [video], GenerationParams(stop=("END",))).params.stop == ("END",)
    paper = GPT4VideoProcessor(tokenizer_with(tiny_llm_dir, LLAMA3), 3)
    assert paper.stop_strings == ("###",) and model.processor.stop_strings == ()
    saved = model.save_pretrained(tmp_path / "saved")
    again = GPT4Video.from_pretrained(saved)
    assert again.config.llm.chat_template == "native"
    assert again.processor.encode(CONVERSATION[:1]).input_ids.tolist() == model.processor.encode(
        CONVERSATION[:1]).input_ids.tolist()


# ------------------------------------------------------------------- the packaged SmolLM2 tokenizer
# Token ids and labels of the default (paper) prompt with the packaged SmolLM2 tokenizer, recorded with the code
# before the native template existed (3 video tokens per video). They must never change: the shipped weights
# were trained on exactly these prompts.
PACKAGED_ONE = [3757, 14917, 42, 2067, 16810, 46, 49152, 49152, 49152, 9617, 16810, 46, 198, 3757, 14917, 42,
                1812, 2380, 314, 260, 5222, 47, 198, 3757, 13701, 42, 216]
PACKAGED_MULTI = [
    3757, 14917, 42, 2067, 16810, 33, 46, 49152, 49152, 49152, 9617, 16810, 33, 46, 198, 3757, 14917, 42, 20263,
    260, 808, 30, 198, 3757, 13701, 42, 216, 49, 2382, 7842, 7488, 2049, 30, 2, 198, 3757, 14917, 42, 2067, 16810,
    34, 46, 49152, 49152, 49152, 9617, 16810, 34, 46, 198, 3757, 14917, 42, 2067, 16810, 35, 46, 49152, 49152, 49152,
    9617, 16810, 35, 46, 198, 3757, 14917, 42, 1350, 623, 827, 47, 198, 3757, 13701, 42, 216, 44, 16810, 79, 41253,
    46, 49, 2644, 30, 9617, 16810, 79, 41253, 46, 38063, 2, 198]
PACKAGED_MULTI_LEARNED = [(27, 34), (77, 92)]  # [start, end) spans whose labels are the ids
MULTI = [Turn("user", "Describe the first.", videos=[0]), Turn("assistant", "A red circle moves left."),
         Turn("user", "And these two?", videos=[1, 2]), Turn("assistant", "<video_prompt>A cat.</video_prompt> Done")]


@pytest.fixture(scope="module")
def packaged_tokenizer():
    from gpt4video.errors import ModelLoadError
    from gpt4video.llm.loading import packaged_gguf

    try:
        gguf = packaged_gguf("smollm2-135m")
    except ModelLoadError as e:
        pytest.skip(str(e))
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def test_the_default_prompt_of_the_packaged_model_is_unchanged(packaged_tokenizer):
    from gpt4video.modeling import resolve_config

    for preset in ("smol", "paper"):
        assert resolve_config(preset).llm.chat_template == "paper"
    proc = GPT4VideoProcessor(packaged_tokenizer, num_video_tokens=3)
    one = proc.encode([Turn("user", "What color is the square?", videos=[0])])
    assert one.input_ids.tolist() == PACKAGED_ONE and (one.labels == IGNORE_INDEX).all()
    multi = proc.encode(MULTI, add_generation_prompt=False)
    assert multi.input_ids.tolist() == PACKAGED_MULTI
    expected = torch.full((len(PACKAGED_MULTI),), IGNORE_INDEX)
    for start, end in PACKAGED_MULTI_LEARNED:
        expected[start:end] = torch.tensor(PACKAGED_MULTI[start:end])
    assert multi.labels.tolist() == expected.tolist()


def test_the_packaged_smollm2_template_natively(packaged_tokenizer):
    proc = GPT4VideoProcessor(packaged_tokenizer, num_video_tokens=3, chat_template="native")
    assert proc.eos_token_id == packaged_tokenizer.convert_tokens_to_ids("<|im_end|>")
    enc = proc.encode(MULTI, add_generation_prompt=False)
    assert enc.input_ids.tolist() == template_ids(packaged_tokenizer, MULTI, 3, add_generation_prompt=False)
    learned = packaged_tokenizer.decode([i for i, lab in zip(enc.input_ids.tolist(), enc.labels.tolist())
                                         if lab != IGNORE_INDEX])
    assert learned == "A red circle moves left.<|im_end|><video_prompt>A cat.</video_prompt> Done<|im_end|>"
    text = packaged_tokenizer.decode(proc.encode(MULTI[:1]).input_ids.tolist())
    assert text.startswith("<|im_start|>system\n") and text.endswith(
        "<|im_start|>user\n<video>" + VIDEO_TOKEN * 3 + "</video>\nDescribe the first.<|im_end|>\n<|im_start|>assistant\n")


def test_template_options_reach_the_template(tiny_tokenizer_dir):
    """Qwen3's template writes an empty thinking block when told ``enable_thinking=False``; a variable of ours
    reaches the template the same way."""
    from gpt4video.config import LLMConfig

    thinking = CHATML.replace("{{ '<|im_start|>assistant\n' }}",
                              "{{ '<|im_start|>assistant\n' }}{% if enable_thinking is defined and not enable_thinking %}"
                              "{{ '<think>\n\n</think>\n\n' }}{% endif %}")
    tok = tokenizer_with(tiny_tokenizer_dir, thinking)
    plain = GPT4VideoProcessor(tok, 3, chat_template="native")
    quiet = GPT4VideoProcessor(tok, 3, chat_template="native", template_options={"enable_thinking": False})
    assert not tok.decode(plain.encode(CONVERSATION[:1]).input_ids.tolist()).endswith("</think>\n\n")
    assert tok.decode(quiet.encode(CONVERSATION[:1]).input_ids.tolist()).endswith(
        "<|im_start|>assistant\n<think>\n\n</think>\n\n")
    with pytest.raises(ConfigError, match="chat_template_options are for chat_template: native"):
        LLMConfig(chat_template_options={"enable_thinking": False})
