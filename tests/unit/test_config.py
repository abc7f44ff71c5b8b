"""Config validation (pydantic): one ConfigError naming the file and every wrong field, never a traceback."""

import subprocess
import sys

import pytest

from gpt4video.config import GenerationParams, ModelConfig, TrainConfig
from gpt4video.errors import ConfigError
from gpt4video.safety import SafetyConfig
from gpt4video.serving import ServeConfig


def write(path, text):
    path.write_text(text)
    return path


def test_a_wrong_value_names_the_file_and_the_field(tmp_path):
    path = write(tmp_path / "model.yaml", "abstractor: {num_heads: 0}\n")
    with pytest.raises(ConfigError) as e:
        ModelConfig.from_yaml(path)
    assert str(e.value) == f"{path}: abstractor.num_heads must be greater than or equal to 1, got 0"


def test_every_wrong_field_is_named_once_in_one_line(tmp_path):
    path = write(tmp_path / "train.yaml",
                 "data: [{path: a.jsonl, repeat: 0}, {format: csv}]\nlearning_rate: fast\nstage: 3\n")
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_yaml(path)
    message = str(e.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    for needle in ("data[0].repeat must be greater than or equal to 1, got 0", "data[1].path is required",
                   "data[1].format must be 'auto', 'jsonl', 'webvid' or 'videochat', got 'csv'",
                   "learning_rate must be a valid number", "stage must be 0, 1 or 2, got 3"):
        assert needle in message


def test_an_unknown_key_lists_the_allowed_ones(tmp_path):
    path = write(tmp_path / "model.yaml", "llm: {lora: {rank: 8}}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'llm.lora.rank'; allowed: r, alpha, dropout, target_modules"):
        ModelConfig.from_yaml(path)


def test_checks_across_fields_name_where_they_failed(tmp_path):
    path = write(tmp_path / "model.yaml", "abstractor: {hidden_size: 10, num_heads: 3}\n")
    with pytest.raises(ConfigError, match=r"model.yaml: abstractor: hidden_size \(10\) must be divisible by num_heads"):
        ModelConfig.from_yaml(path)
    with pytest.raises(ConfigError, match="time_reversal is a stage-0"):
        TrainConfig(data=[{"path": "a.jsonl"}], time_reversal=True)


def test_types_are_not_guessed():
    with pytest.raises(ConfigError, match="corroborate_refusals must be true or false, got 'yes'"):
        SafetyConfig(corroborate_refusals="yes")
    with pytest.raises(ConfigError, match="batch_size must be a whole number, got 2.5"):
        TrainConfig(data=[{"path": "a.jsonl"}], batch_size=2.5)
    with pytest.raises(ConfigError, match="api_key must not be blank"):
        ServeConfig(api_key=" ")


def test_yaml_1_1_spellings_read_as_meant(tmp_path):
    path = write(tmp_path / "train.yaml", "data: [{path: a.jsonl}]\nlearning_rate: 3e-4\nmixed_precision: no\n")
    config = TrainConfig.from_yaml(path)
    assert config.learning_rate == pytest.approx(3e-4) and config.mixed_precision == "no"
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_generation_params_are_checked():
    with pytest.raises(ConfigError, match="temperature must be greater than or equal to 0, got -1; top_p"):
        GenerationParams(temperature=-1, top_p=0)
    assert GenerationParams(stop=["x"]).stop == ("x",)


def test_a_bad_training_config_is_one_line_and_exit_2(tmp_path):
    path = write(tmp_path / "bad.yaml", "data: [{path: a.jsonl}]\nwarmup_steps: -1\n")
    result = subprocess.run([sys.executable, "-m", "gpt4video.cli", "train", "--config", str(path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"gpt4video: error: {path}: warmup_steps must be greater than or equal to 0, "
                                     "got -1")
