"""The audio branch (Video-LLaMA's audio Q-former) on tiny parts: a 1-layer Whisper encoder of width 16."""

import numpy as np
import pytest
import torch

from gpt4video.audio import SAMPLE_RATE
from gpt4video.audio.branch import AudioEncoder
from gpt4video.audio.synthesis import mix, mux_audio, narrate
from gpt4video.config import DataConfig, ModelConfig, TrainConfig
from gpt4video.engines import GenerationParams
from gpt4video.errors import ConfigError, ModelLoadError
from gpt4video.modeling import GPT4Video
from gpt4video.pipeline import Assistant
from gpt4video.processing import Turn
from gpt4video.training.trainer import set_trainable
from gpt4video.video import write_video

AUDIO_TOKENS = 3


@pytest.fixture(scope="module")
def tiny_whisper_encoder_dir(tmp_path_factory):
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=40, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80,
                           max_source_positions=1500, max_target_positions=16, pad_token_id=0, bos_token_id=1,
                           eos_token_id=1, decoder_start_token_id=1)
    path = tmp_path_factory.mktemp("tiny_whisper_encoder")
    WhisperModel(config).save_pretrained(path)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(path)
    return path


@pytest.fixture
def audio_config(tiny_model_config, tiny_whisper_encoder_dir):
    return ModelConfig.from_dict({**tiny_model_config.to_dict(), "audio": {
        "encoder": str(tiny_whisper_encoder_dir), "num_queries": AUDIO_TOKENS, "hidden_size": 16, "num_layers": 1,
        "num_heads": 2, "output_dim": 32}})


@pytest.fixture
def model(audio_config):
    torch.manual_seed(0)
    return GPT4Video.from_config(audio_config)


def test_the_branch_is_off_by_default(tiny_model_config):
    assert ModelConfig().audio is None and tiny_model_config.audio is None


def test_each_video_carries_its_audio_tokens_after_its_visual_ones(model):
    nq = model.config.abstractor.num_queries
    assert model.num_video_tokens == nq + AUDIO_TOKENS == model.processor.num_video_tokens
    features = torch.randn(2, 4, 17, 32)  # (V, T, N, D_enc)
    speech = mix([(0.2, narrate("hello"))], 1.5)
    audio = model.encode_audio([speech, None])  # (V, S, D_a)
    assert audio.shape == (2, 1500, 16)
    tokens = model.video_embeddings(features, audio)
    assert tokens.shape == (2, nq + AUDIO_TOKENS, 32)
    assert not torch.allclose(tokens[0, nq:], tokens[1, nq:])  # the sound changes the audio tokens
    assert torch.allclose(tokens[:, :nq], model.abstractor(features))  # and not the visual ones
    silent = model.video_embeddings(features)  # no sound given: read as silence
    assert torch.allclose(silent[1], tokens[1], atol=1e-5)


def test_the_encoder_is_frozen_and_the_audio_queries_train_in_stages_1_and_2(model):
    assert not any(p.requires_grad for p in model.audio_encoder.parameters())
    for stage in (1, 2):
        names = set_trainable(model, TrainConfig(stage=stage, data=[DataConfig(path="train.jsonl")]))
        assert any(n.startswith("audio_abstractor.") for n in names)
        assert not any(n.startswith("audio_encoder.") for n in names)
    turns = [Turn("user", "What is heard?", videos=[0]), Turn("assistant", "a bell")]
    enc = model.processor.encode(turns, 1, add_generation_prompt=False)
    audio = model.encode_audio([mix([(0.2, narrate("bell"))], 1.0)])
    out = model(input_ids=enc.input_ids[None], labels=enc.labels[None], features=torch.randn(1, 4, 17, 32),
                audio_features=audio)
    out.loss.backward()
    assert model.audio_abstractor.queries.queries.grad is not None
    assert float(model.audio_abstractor.queries.queries.grad.abs().sum()) > 0


def test_save_and_load_restore_the_audio_branch(model, tmp_path, tiny_whisper_encoder_dir):
    saved = model.save_pretrained(tmp_path / "m")
    assert (saved / "audio_abstractor.safetensors").is_file()
    loaded = GPT4Video.from_pretrained(saved)
    for (name, a), (_, b) in zip(model.audio_abstractor.state_dict().items(), loaded.audio_abstractor.state_dict().items()):
        assert torch.allclose(a, b), name
    (saved / "audio_abstractor.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="missing audio_abstractor.safetensors"):
        GPT4Video.from_pretrained(saved)


def test_a_branch_that_does_not_fit_is_one_error(audio_config, tiny_whisper_encoder_dir, tmp_path):
    wrong = ModelConfig.from_dict({**audio_config.to_dict(), "audio": {**audio_config.audio.to_dict(), "output_dim": 8}})
    with pytest.raises(ConfigError, match="audio.output_dim is 8 but the LLM's embedding width is 32"):
        GPT4Video.from_config(wrong, audio_encoder=AudioEncoder.from_pretrained(str(tiny_whisper_encoder_dir)))
    with pytest.raises(ModelLoadError, match="cannot load the audio encoder"):
        AudioEncoder.from_pretrained(str(tmp_path / "nowhere"))


def test_the_assistant_gives_a_videos_sound_to_the_audio_branch(model, tmp_path):
    silent = write_video(tmp_path / "silent.mp4", np.zeros((16, 32, 32, 3), np.uint8), fps=8)
    sounding = mux_audio(silent, mix([(0.2, narrate("hello"))], 2.0), SAMPLE_RATE, tmp_path / "sounding.mp4")
    assistant = Assistant(model)
    reply = assistant.ask("What is heard?", [sounding, silent], GenerationParams(max_new_tokens=2)).consume()
    assert reply.finish_reason and len(assistant._audio_features) == 2
    assert assistant._audio_features[0].shape == (1, 1500, 16)
    assert not torch.allclose(assistant._audio_features[0], assistant._audio_features[1])
