"""Pretrained video LLMs as backbones (gpt4video.vlm), each family as a tiny random checkpoint built from its
config and saved with its processor and tokenizer: chat about a video from the CLI, a reply that routes a
<video_prompt> to the offline generator, a refusal by the input hook, two stage-2 LoRA steps, save, load and
the same greedy reply. Random weights say nothing about quality; the test is that every path runs."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil

import numpy as np
import pytest
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from gpt4video.config import ModelConfig
from gpt4video.engines import GenerationParams
from gpt4video.errors import ModelLoadError
from gpt4video.generators import build_generator
from gpt4video.modeling import GPT4Video, resolve_config
from gpt4video.pipeline import Assistant, GenerationSettings
from gpt4video.processing import IGNORE_INDEX, Turn
from gpt4video.safety import CHECKERS, SafetyChecker, SafetyConfig, SafetyPolicy
from gpt4video.safety.base import verdict_from_scores
from gpt4video.video import write_video
from gpt4video.vlm import FAMILIES, VideoLLM
from test_serving import LiveServer, ask, data_url

CORPUS = ["a red ball moves left", "what happens in the video", "make a video of a blue cat",
          "<video_prompt>A blue circle moves left.</video_prompt>", "describe this clip please"]
#: SmolVLM's layout: "User:<image>… text<end_of_utterance>\nAssistant: reply<end_of_utterance>\n"
IDEFICS3_TEMPLATE = (
    "<|im_start|>{% for m in messages %}{{ m['role'] | capitalize }}:{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% else %} {{ c['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}")
TEXT = dict(initializer_range=0.3, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=1024)


def tiny_tokenizer(specials: list[str], eos: str) -> transformers.PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS * 4, trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>")
    fast.add_special_tokens({"additional_special_tokens": specials})
    fast.eos_token = eos
    return fast


def build_idefics3(path, smolvlm: bool = False) -> None:  # noqa: ANN001
    """Idefics3 (SmolVLM), or with ``smolvlm`` SmolVLM2's own classes (model_type smolvlm)."""
    tok = tiny_tokenizer(["<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"],
                         "<end_of_utterance>")
    image_processor = (transformers.SmolVLMImageProcessorPil if smolvlm else transformers.Idefics3ImageProcessorPil)(
        do_image_splitting=False, size={"longest_edge": 32}, max_image_size={"longest_edge": 32})
    torch.manual_seed(0)
    config = (transformers.SmolVLMConfig if smolvlm else transformers.Idefics3Config)(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        text_config=dict(TEXT, vocab_size=len(tok), pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id),
        image_token_id=tok.convert_tokens_to_ids("<image>"), scale_factor=2)
    if smolvlm:  # its processor needs a video processor, which needs torchvision: saved in parts
        save_parts(path, transformers.SmolVLMForConditionalGeneration(config), tok, image_processor,
                   IDEFICS3_TEMPLATE, processor_class="SmolVLMProcessor", image_seq_len=4)
        return
    transformers.Idefics3ForConditionalGeneration(config).save_pretrained(path)
    transformers.Idefics3Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=4,
                                   chat_template=IDEFICS3_TEMPLATE).save_pretrained(path)


#: ChatML with Qwen2-VL's image markers
QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
LLAVA_TEMPLATE = QWEN_TEMPLATE.replace("<|vision_start|><|image_pad|><|vision_end|>", "<image>\n")


def save_parts(path, model, tok, image_processor, template, **processor_options) -> None:  # noqa: ANN001
    """Save what a hub checkpoint of a family whose processor needs torchvision holds: weights, tokenizer,
    image processor, chat template and processor options (the processor itself cannot be built here)."""
    model.save_pretrained(path)
    tok.save_pretrained(path)
    image_processor.save_pretrained(path)
    (path / "chat_template.jinja").write_text(template)
    (path / "processor_config.json").write_text(json.dumps(processor_options))


def build_qwen2_vl(path, version: str = "2") -> None:  # noqa: ANN001
    tok = tiny_tokenizer(["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                          "<|video_pad|>"], "<|im_end|>")
    image_processor = transformers.Qwen2VLImageProcessorPil(patch_size=8, merge_size=2, temporal_patch_size=2,
                                                            min_pixels=32 * 32, max_pixels=32 * 32)
    vision = dict(depth=2, hidden_size=32, num_heads=4, patch_size=8, spatial_merge_size=2, temporal_patch_size=2)
    if version == "2.5":
        vision.update(out_hidden_size=32, intermediate_size=64, window_size=16, fullatt_block_indexes=[1])
    else:
        vision.update(embed_dim=32, mlp_ratio=2)
    config_cls, model_cls = ((transformers.Qwen2_5_VLConfig, transformers.Qwen2_5_VLForConditionalGeneration)
                             if version == "2.5" else
                             (transformers.Qwen2VLConfig, transformers.Qwen2VLForConditionalGeneration))
    config = config_cls(
        vision_config=vision,
        text_config=dict(TEXT, vocab_size=len(tok), rope_scaling={"type": "mrope", "mrope_section": [2, 1, 1]},
                         bos_token_id=tok.pad_token_id, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id),
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"), video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"))
    torch.manual_seed(0)
    save_parts(path, model_cls(config), tok, image_processor, QWEN_TEMPLATE)


def build_qwen3_vl(path) -> None:  # noqa: ANN001
    tok = tiny_tokenizer(["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                          "<|video_pad|>"], "<|im_end|>")
    image_processor = transformers.Qwen2VLImageProcessorPil(patch_size=8, merge_size=2, temporal_patch_size=2,
                                                            min_pixels=32 * 32, max_pixels=32 * 32)
    config = transformers.Qwen3VLConfig(
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, patch_size=8, spatial_merge_size=2,
                           temporal_patch_size=2, out_hidden_size=32, num_position_embeddings=16,
                           deepstack_visual_indexes=[1]),
        text_config=dict(TEXT, head_dim=8, vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1],
                                          "mrope_interleaved": True}),
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"), video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"))
    torch.manual_seed(0)
    model = transformers.Qwen3VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    save_parts(path, model, tok, image_processor, QWEN_TEMPLATE)


def build_llava_onevision(path) -> None:  # noqa: ANN001
    tok = tiny_tokenizer(["<|im_start|>", "<|im_end|>", "<image>", "<video>"], "<|im_end|>")
    image_processor = transformers.LlavaOnevisionImageProcessorPil(
        size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32}, image_grid_pinpoints=[[32, 32]])
    config = transformers.LlavaOnevisionConfig(
        vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, image_size=32, patch_size=8),
        text_config=dict(TEXT, model_type="qwen2", vocab_size=len(tok), bos_token_id=tok.pad_token_id,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id),
        image_token_id=tok.convert_tokens_to_ids("<image>"), video_token_id=tok.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=[[32, 32]], vision_feature_layer=-1, vision_aspect_ratio="anyres_max_1")
    torch.manual_seed(0)
    save_parts(path, transformers.LlavaOnevisionForConditionalGeneration(config), tok, image_processor,
               LLAVA_TEMPLATE, processor_class="LlavaOnevisionProcessor", num_image_tokens=16,
               vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_1")


BUILDERS = {"idefics3": build_idefics3, "smolvlm": lambda path: build_idefics3(path, smolvlm=True),
            "qwen2_vl": build_qwen2_vl,
            "qwen2_5_vl": lambda path: build_qwen2_vl(path, "2.5"), "qwen3_vl": build_qwen3_vl,
            "llava_onevision": build_llava_onevision}


#: family → the package its processor needs beyond the project's dependencies
NEEDS = {"smolvlm": "num2words"}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def checkpoint(request, tmp_path_factory):
    if request.param in NEEDS and importlib.util.find_spec(NEEDS[request.param]) is None:
        pytest.skip(f"{request.param}: its processor (SmolVLMProcessor) needs {NEEDS[request.param]}, not installed "
                    f"here (pip install {NEEDS[request.param]})")
    path = tmp_path_factory.mktemp(request.param)
    BUILDERS[request.param](path)
    return path


@pytest.mark.skipif(importlib.util.find_spec("num2words") is not None, reason="num2words is installed")
def test_smolvlm2_without_num2words_is_one_clear_error(tmp_path):
    BUILDERS["smolvlm"](tmp_path)
    assert resolve_config(tmp_path).vlm is not None  # recognised from its config
    with pytest.raises(ModelLoadError, match="not installed: .*num2words"):
        GPT4Video.from_pretrained(tmp_path)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames = np.random.default_rng(0).integers(0, 255, (8, 48, 64, 3), np.uint8)
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", frames)


def config_for(checkpoint, **lora) -> ModelConfig:  # noqa: ANN001
    return ModelConfig.from_dict({"vlm": {"model": str(checkpoint), "image_size": 32,
                                          "lora": {"r": 8, "alpha": 16, "dropout": 0.0, **lora}}, "num_frames": 2})


class MarkerText(SafetyChecker):
    """'hate' 0.9 for text containing the neutral marker 'zzhate', else 0.01 (a stub for the test)."""

    name = "vlm_marker_text"
    kind = "text"
    categories = ("hate",)

    def __init__(self, *, thresholds=None):  # noqa: ANN001
        self.thresholds = {"hate": 0.5, **(thresholds or {})}

    def check_text(self, text):  # noqa: ANN001
        return verdict_from_scores(self.name, {"hate": 0.9 if "zzhate" in text else 0.01}, self.thresholds)


def test_the_checkpoint_is_recognised_from_its_config(checkpoint):
    config = resolve_config(checkpoint)
    assert config.vlm is not None and config.vlm.model == str(checkpoint.resolve())
    model = GPT4Video.from_pretrained(checkpoint)
    assert isinstance(model, VideoLLM) and not model.trained
    assert isinstance(model.llm.get_base_model(), transformers.AutoModelForImageTextToText._model_mapping[
        type(model.llm.get_base_model().config)])
    if model.llm.get_base_model().config.model_type != "idefics3" and importlib.util.find_spec("torchvision") is None:
        assert type(model.processor.hf).__name__.endswith("ImagesOnly")  # built without the video processor
    lora = [n for n, p in model.llm.named_parameters() if p.requires_grad]
    assert lora and all("lora_" in n and ("language_model" in n or "text_model" in n) for n in lora)


def test_chat_about_a_video_from_the_cli(checkpoint, clip, cli):
    """The default safety policy's input checks run on the user's text and frames (Open-NSFW scores the
    frames itself: a video LLM records no frame scores); a run without safety gives the same greedy reply."""
    replies = []
    safety = [[]] if checkpoint.name.startswith("idefics3") else []  # the default policy loads slowly: one family
    for extra in [*safety, ["--no-safety"], ["--no-safety"]]:
        code, out, err = cli(["chat", "--model", str(checkpoint), "--video", str(clip), "--prompt",
                              "What happens in the video?", "--max-new-tokens", "5", "--json", *extra])
        assert code == 0, err
        replies.append(json.loads(out))
    first = replies[0]
    assert isinstance(first["text"], str) and first["num_generated_tokens"] > 0 and first["trained"] is False
    assert "stage-2 LoRA" in first["notes"][0]
    if safety:
        assert {(s["stage"], s["source"]) for s in first["safety"]} >= {("input", "message"), ("input", "video")}
    assert all(r["text"] == first["text"] for r in replies)


def hub_cache_entry(cache, hub_id: str):  # noqa: ANN001
    """The snapshot folder of ``hub_id`` in a Hugging Face hub cache, as a download leaves it."""
    repo = cache / f"models--{hub_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs/main").write_text("0" * 40)
    return repo / "snapshots" / ("0" * 40)


def test_a_hub_id_is_recognised_by_its_config_json(tmp_path, clip, cli, monkeypatch):
    """``--model org/name``: a video LLM checkpoint in the hub cache (as a download leaves it; no hub here) is
    recognised by its config.json's model_type and loads through gpt4video.vlm; another model_type, or an id that
    is neither cached nor reachable, is one clear error."""
    import huggingface_hub

    cache = tmp_path / "hub"
    build_idefics3(hub_cache_entry(cache, "tiny-org/tiny-smolvlm"))
    hub_cache_entry(cache, "tiny-org/tiny-bert").mkdir(parents=True)
    (cache / "models--tiny-org--tiny-bert/snapshots" / ("0" * 40) / "config.json").write_text('{"model_type": "bert"}')
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))

    assert resolve_config("tiny-org/tiny-smolvlm").vlm.model == "tiny-org/tiny-smolvlm"
    code, out, err = cli(["chat", "--model", "tiny-org/tiny-smolvlm", "--video", str(clip), "--prompt",
                          "What happens in the video?", "--max-new-tokens", "3", "--json", "--no-safety"])
    assert code == 0, err
    assert json.loads(out)["num_generated_tokens"] > 0
    for hub_id, message in (("tiny-org/tiny-bert", "model_type 'bert', which is not a video LLM"),
                            ("tiny-org/not-cached", "nor a video LLM checkpoint on the hub")):
        code, _, err = cli(["chat", "--model", hub_id, "--prompt", "hi", "--no-safety"])
        assert code == 2 and message in err and "Traceback" not in err, err


def test_the_frames_reach_the_model_as_images(checkpoint):
    model = VideoLLM.from_config(config_for(checkpoint))
    frames = model.encode_frames([np.zeros((5, 40, 50, 3), np.uint8), np.full((1, 20, 20, 3), 255, np.uint8)])
    assert frames.shape == (2, 2, 32, 32, 3) and frames.dtype == torch.uint8
    enc = model.processor.encode([Turn("user", "Compare.", videos=[0, 1])], frames)
    images = {"idefics3": enc["pixel_values"].shape[1], "qwen2_vl": enc.get("image_grid_thw", torch.zeros(0)).shape[0],
              "llava_onevision": enc.get("image_sizes", torch.zeros(0)).shape[0]}
    assert images[FAMILIES[model.llm.get_base_model().config.model_type]] == 4  # 2 videos × 2 frames, an image each
    assert int((enc["input_ids"] == model.processor.video_token_id).sum()) > 0
    with pytest.raises(Exception, match="videos"):
        model.processor.encode([Turn("user", "Compare.", videos=[0])], frames)


def test_two_stage2_steps_save_load_same_greedy_reply(checkpoint, tmp_path):
    model = VideoLLM.from_config(config_for(checkpoint))
    frames = model.encode_frames([np.random.default_rng(1).integers(0, 255, (4, 32, 32, 3), np.uint8)])
    turns = [Turn("user", "What happens in the video?", videos=[0]), Turn("assistant", "a red ball moves left")]
    enc = model.processor.encode(turns, frames, add_generation_prompt=False, labels=True)
    learned = enc["input_ids"][0][enc["labels"][0] != IGNORE_INDEX]
    assert model.tokenizer.decode(learned).strip().startswith("a red ball moves left")  # then the end of turn

    params = [p for p in model.trainable_parameters().values()]
    before = [p.detach().clone() for p in params]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    model.llm.train()
    losses = []
    for _ in range(2):
        loss = model.loss(turns, frames)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    model.llm.eval()
    assert all(np.isfinite(losses)) and any(not torch.equal(a, b) for a, b in zip(before, params))

    greedy = GenerationParams(max_new_tokens=6)
    question = [Turn("user", "What happens in the video?", videos=[0])]
    reply = model.generate(question, params=greedy, features=frames).text
    model.save_pretrained(tmp_path / "trained")
    loaded = GPT4Video.from_pretrained(tmp_path / "trained")
    assert isinstance(loaded, VideoLLM) and loaded.trained
    assert loaded.generate(question, params=greedy, features=frames).text == reply


def test_a_reply_routes_its_video_prompt_to_the_offline_generator(checkpoint, clip):
    """LoRA on every projection learns one generation dialogue by heart, so the model writes the tag itself."""
    model = VideoLLM.from_config(config_for(checkpoint, target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    turns = [Turn("user", "make a video of a blue circle"),
             Turn("assistant", "<video_prompt>A blue circle moves left.</video_prompt>")]
    optimizer = torch.optim.AdamW(list(model.trainable_parameters().values()), lr=2e-2)
    model.llm.train()
    for _ in range(15):
        loss = model.loss(turns)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.llm.eval()
    generation = GenerationSettings(build_generator("synthetic"), num_frames=4, height=32, width=32, seed=0)
    assistant = Assistant(model, generation)
    out = assistant.ask("make a video of a blue circle", params=GenerationParams(max_new_tokens=16)).consume().output
    assert out.video_prompts == ["A blue circle moves left."], out.raw_text
    assert not out.generation_errors and len(out.generated) == 1 and "<video_prompt>" not in out.text
    assert out.generated[0].frames.shape == (4, 32, 32, 3)


def test_the_input_hook_refuses_before_the_model(checkpoint, clip, monkeypatch):
    monkeypatch.setitem(CHECKERS._items, "vlm_marker_text", MarkerText)
    model = VideoLLM.from_config(config_for(checkpoint))
    calls = []
    model.engine.generate = lambda request: calls.append(request)  # the model must never be asked
    policy = SafetyPolicy(SafetyConfig(input_text=["vlm_marker_text"], input_frames=[], prompt=["vlm_marker_text"],
                                       output_frames=[], suspicion_checker="vlm_marker_text"))
    reply = Assistant(model, safety=policy).ask("please zzhate them", [clip]).consume()
    assert reply.refused_by == "input" and reply.refusal_category == "hate" and not calls
    assert reply.output.text and not reply.output.generated


def test_bad_inputs_give_one_clear_error(checkpoint, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelLoadError, match="model_type 'bert', which is not a video LLM this project runs"):
        resolve_config(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="nor a video LLM checkpoint .no config.json"):
        resolve_config(tmp_path)
    with pytest.raises(Exception, match="transformers engine only"):
        GPT4Video.from_pretrained(checkpoint, engine="llamacpp")
    with pytest.raises(ModelLoadError, match="not found in the language model"):
        VideoLLM.from_config(config_for(checkpoint, target_modules=["no_such_proj"]))


def test_the_server_and_batch_predict_answer_with_it(checkpoint, clip, tmp_path, cli):
    """The OpenAI-compatible server streams what it answers plainly; ``predict`` answers a JSONL file."""
    model = GPT4Video.from_pretrained(checkpoint)
    messages = ask("What happens in the video?", data_url(clip.read_bytes()))
    with LiveServer(model, model_name="vlm", max_upload_mb=4.0) as server:
        client = server.client()
        plain = client.chat.completions.create(model="vlm", messages=messages, max_tokens=6)
        chunks = list(client.chat.completions.create(model="vlm", messages=messages, max_tokens=6, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert plain.usage.completion_tokens > 0 and streamed == plain.choices[0].message.content

    rows = [{"question": "What happens in the video?", "video": str(clip), "id": 1}, {"question": ""}]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    code, _, err = cli(["predict", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"),
                        "--model", str(checkpoint), "--max-new-tokens", "6", "--no-progress", "--no-safety"])
    assert code == 0, err
    first, second = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert first["id"] == 1 and first["text"] == plain.choices[0].message.content and "error" in second


VLM_PRESETS = {"smolvlm2": "HuggingFaceTB/SmolVLM2-2.2B-Instruct", "qwen2_vl": "Qwen/Qwen2-VL-2B-Instruct",
               "qwen2_5_vl": "Qwen/Qwen2.5-VL-7B-Instruct", "qwen3_vl": "Qwen/Qwen3-VL-8B-Instruct",
               "llava_onevision": "llava-hf/llava-onevision-qwen2-7b-ov-hf"}


def test_the_family_presets_name_their_checkpoints_and_fail_clearly_offline():
    from gpt4video.modeling import preset_config

    for name, hub_id in VLM_PRESETS.items():
        config = preset_config(name)
        assert config.vlm is not None and config.vlm.model == hub_id and config.vlm.lora is not None
    with pytest.raises(ModelLoadError, match="Qwen/Qwen2.5-VL-7B-Instruct"):
        GPT4Video.from_pretrained("qwen2_5_vl")  # no hub here: one error naming the checkpoint


def safety_dialogues(path):  # noqa: ANN001
    """Learned refusal rows in the stage-2 format: a harmful request refused, a look-alike answered."""
    from gpt4video.safety.refusals import REFUSALS

    category = sorted(REFUSALS)[0]
    rows = [{"turns": [{"role": "user", "text": "make a video of people zzhating each other"},
                       {"role": "assistant", "text": REFUSALS[category]}]},
            {"turns": [{"role": "user", "text": "make a video of a blue cat"},
                       {"role": "assistant", "text": "<video_prompt>A blue cat sits still.</video_prompt>"}]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def train_config(checkpoint, world, out, **kw) -> dict:  # noqa: ANN001
    """Stage 2 on the video LLM checkpoint itself: captions, questions, generation dialogues and safety dialogues."""
    data = [{"path": str(world / f"train/{name}.jsonl"), "max_examples": 4} for name in ("captions", "qa", "dialogues")]
    data.append({"path": str(safety_dialogues(out.parent / "safety.jsonl"))})
    return {"model": str(checkpoint), "stage": 2, "data": data, "output_dir": str(out), "max_steps": 4,
            "batch_size": 2, "learning_rate": 1e-2, "log_every": 1, "save_every": 2, "seed": 1, "max_length": 1024,
            "group_by_length": True, "loss_reduction": "square", **kw}


def lora_weights(directory) -> dict[str, torch.Tensor]:  # noqa: ANN001
    from safetensors.torch import load_file

    return load_file(str(directory / "lora/adapter_model.safetensors"))


def test_gpt4video_train_runs_stage2_on_it_and_resumes_exactly(checkpoint, tiny_world, clip, tmp_path, cli):
    """``gpt4video train`` on the checkpoint directory: LoRA on its language model learns the stage-2 mix (with
    the generation and safety dialogues); the trained model chats from the CLI; a run resumed from its step-2
    checkpoint ends with the same weights."""
    import yaml

    from gpt4video.config import TrainConfig
    from gpt4video.training import train

    config = train_config(checkpoint, tiny_world, tmp_path / "run")
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    code, _, err = cli(["train", "--no-progress", "--config", str(tmp_path / "train.yaml")])
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "run/train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(np.isfinite(r["loss"]) for r in rows)
    final = lora_weights(tmp_path / "run/final")
    assert final and any(float(w.abs().max()) > 0 for n, w in final.items() if "lora_B" in n)  # B starts at zero

    model = GPT4Video.from_pretrained(tmp_path / "run/final")
    assert isinstance(model, VideoLLM) and model.trained and model.config.vlm.model == str(checkpoint.resolve())
    code, out, err = cli(["chat", "--model", str(tmp_path / "run/final"), "--video", str(clip), "--prompt",
                          "What happens in the video?", "--max-new-tokens", "4", "--json", "--no-safety"])
    assert code == 0, err
    reply = json.loads(out)
    assert reply["trained"] is True and reply["num_generated_tokens"] > 0 and not reply["notes"]

    step = tmp_path / "run/checkpoints/step-0000002"
    shutil.copytree(step, tmp_path / "resumed/checkpoints" / step.name)
    # The resumed run reads its frames through the feature cache: the same frames, so the same weights.
    train(TrainConfig.from_dict({**config, "output_dir": str(tmp_path / "resumed"),
                                 "feature_cache": str(tmp_path / "cache")}), progress=False)
    assert list((tmp_path / "cache").rglob("*.safetensors"))
    resumed = lora_weights(tmp_path / "resumed/final")
    assert resumed.keys() == final.keys() and all(torch.equal(resumed[k], final[k]) for k in final)


def test_two_process_fsdp_killed_and_resumed_ends_with_the_same_weights(tiny_world, tmp_path):
    """``accelerate launch`` with the CPU FSDP config (2 processes over gloo) on a tiny Idefics3: a run killed with
    SIGKILL after step 3 (last checkpoint: step 2) and resumed ends with the LoRA weights of an unbroken run."""
    import yaml
    from test_training import launch_fsdp

    BUILDERS["idefics3"](tmp_path / "checkpoint")
    runs = {}
    for name, kill in (("unbroken", None), ("broken", 3)):
        config = train_config(tmp_path / "checkpoint", tiny_world, tmp_path / name, debug_kill_at_step=kill)
        runs[name] = tmp_path / f"{name}.yaml"
        runs[name].write_text(yaml.safe_dump(config))
    unbroken = launch_fsdp(runs["unbroken"])
    assert unbroken.returncode == 0 and "2 process(es)" in unbroken.stderr, unbroken.stderr[-3000:]
    first = launch_fsdp(runs["broken"])
    assert first.returncode != 0 and re.search(r"exitcode\s*:\s*-9", first.stderr), first.stderr[-3000:]  # SIGKILL
    assert not (tmp_path / "broken/final").exists()
    second = launch_fsdp(runs["broken"], "debug_kill_at_step=null")
    assert second.returncode == 0, second.stderr[-3000:]
    a, b = lora_weights(tmp_path / "unbroken/final"), lora_weights(tmp_path / "broken/final")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(float(w.abs().max()) > 0 for n, w in a.items() if "lora_B" in n)  # trained (B starts at zero)


def test_train_on_it_from_a_preset_and_one_clear_error_for_another_stage(checkpoint, tiny_world, tmp_path, cli):
    """A video LLM preset with ``model_overrides`` trains too (the Qwen2-VL preset on the tiny Qwen2-VL, with
    gradient checkpointing); stage 1 is refused, naming the reason."""
    import yaml

    (tmp_path / "train.yaml").write_text(yaml.safe_dump(train_config(checkpoint, tiny_world, tmp_path / "run", stage=1)))
    code, _, err = cli(["train", "--no-progress", "--config", str(tmp_path / "train.yaml")])
    assert code == 2 and "trains stage 2 only" in err and "Traceback" not in err
    if checkpoint.name.startswith("qwen2_vl"):
        config = train_config(checkpoint, tiny_world, tmp_path / "preset", model="qwen2_vl", max_steps=1,
                              gradient_checkpointing=True,
                              model_overrides={"vlm": {"model": str(checkpoint), "image_size": 32}, "num_frames": 2})
        (tmp_path / "preset.yaml").write_text(yaml.safe_dump(config))
        code, _, err = cli(["train", "--no-progress", "--config", str(tmp_path / "preset.yaml")])
        assert code == 0, err
        assert resolve_config(tmp_path / "preset/final").vlm.image_size == 32


def test_a_second_video_in_a_later_turn_joins_the_conversation(checkpoint, clip):
    model = VideoLLM.from_config(config_for(checkpoint))
    assistant = Assistant(model)
    params = GenerationParams(max_new_tokens=3)
    first = assistant.ask("What happens in the video?", [clip], params=params).consume()
    second = assistant.ask("And in this one?", [clip], params=params).consume()
    assert [t.videos for t in assistant.turns if t.role == "user"] == [[0], [1]]
    one = model.check_prompt_length([Turn("user", "x", videos=[0])], 1, params)
    per_video = int((one == model.processor.video_token_id).sum())  # image tokens of one video's frames
    assert per_video > 0 and second.output.num_prompt_tokens >= first.output.num_prompt_tokens + per_video


def test_the_evaluation_runs_on_it(checkpoint, tmp_path):
    pytest.importorskip("pycocoevalcap", reason="captioning metrics need pycocoevalcap (the [eval] extra)")
    from gpt4video.data.synthetic import build_split
    from gpt4video.evaluation import evaluate_split

    split = build_split(tmp_path, "test", 2, width=64, height=64, num_frames=8, progress=False)
    model = VideoLLM.from_config(config_for(checkpoint))
    r = evaluate_split(model, split, max_qa=2, max_captions=1, max_generation=2, max_images=2, max_narration=1,
                       max_sounds=1, params=GenerationParams(max_new_tokens=3), tokenizer="simple", meteor=False,
                       progress=False)
    assert r["counts"]["answers"] == 16 and r["counts"]["errors"] == 0
    assert all(isinstance(e["prediction"], str) for e in r["qa"]["examples"])
