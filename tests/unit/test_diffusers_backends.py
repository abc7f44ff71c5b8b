"""diffusers backends, run for real on tiny components built from configs (no downloads).

Each family's REAL pipeline class runs 2 denoising steps on a few frames of 16-32 px (text to video) or
one image of about 20 px (text to image) through our backend's ``__call__``, as diffusers' own tests do
with ``get_dummy_components``. Tokenizers are
built in memory (a CLIP BPE from a tiny vocabulary and merges; a T5 unigram from a word list).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

from gpt4video.errors import ConfigError, InputError, ModelLoadError  # noqa: E402
from gpt4video.generators import (  # noqa: E402
    GENERATORS,
    IMAGE_GENERATORS,
    AnimateDiffGenerator,
    AutoImageGenerator,
    DiffusersGenerator,
    DiffusersImageGenerator,
    FluxImageGenerator,
    StableDiffusionImageGenerator,
    ZeroscopeGenerator,
    build_generator,
    build_image_generator,
    to_uint8_video,
)

DIFFUSERS_FAMILIES = ["zeroscope", "modelscope", "animatediff", "cogvideox", "ltx", "wan", "text2video-zero"]
WORDS = "a red green blue circle square triangle moves to the left right up down grows on black gray background".split()


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Tiny models are dominated by thread start-up; with one thread each run takes ~0.05 s.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ---------------------------------------------------------------------------------------------
# Tiny components


def clip_tokenizer():
    from transformers import CLIPTokenizer

    letters = "abcdefghijklmnopqrstuvwxyz"
    merges = [("r", "e"), ("re", "d</w>"), ("c", "i"), ("ci", "r")]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in [*letters, *(c + "</w>" for c in letters), ".", ".</w>", "re", "red</w>", "ci", "cir"]:
        vocab.setdefault(token, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def clip_parts() -> dict:
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = clip_tokenizer()
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))
    vae = AutoencoderKL(
        block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4, norm_num_groups=4, layers_per_block=1, sample_size=32,
    )
    return {"tokenizer": tokenizer, "text_encoder": text_encoder, "vae": vae}


def unet_2d():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, cross_attention_dim=16, attention_head_dim=4,
        norm_num_groups=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    )


def ddim():
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_schedule="linear", clip_sample=False)


def t5_tokenizer():
    from transformers import T5Tokenizer

    pieces = ["<pad>", "</s>", "<unk>", *("▁" + w for w in WORDS), *"abcdefghijklmnopqrstuvwxyz."]
    return T5Tokenizer(vocab=[(p, 0.0 if i < 3 else -float(i)) for i, p in enumerate(pieces)], extra_ids=0)


def t5_config_kwargs(tokenizer) -> dict:
    return dict(
        vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )


def t5_parts() -> dict:
    from transformers import T5Config, T5EncoderModel

    tokenizer = t5_tokenizer()
    torch.manual_seed(0)
    return {"tokenizer": tokenizer, "text_encoder": T5EncoderModel(T5Config(**t5_config_kwargs(tokenizer)))}


def zeroscope_pipe():
    from diffusers import TextToVideoSDPipeline, UNet3DConditionModel

    parts = clip_parts()
    unet = UNet3DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, cross_attention_dim=16, attention_head_dim=4,
        norm_num_groups=4, down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
    )
    return TextToVideoSDPipeline(unet=unet, scheduler=ddim(), **parts)


def motion_adapter():
    from diffusers import MotionAdapter

    return MotionAdapter(
        block_out_channels=(8, 16), motion_layers_per_block=1, motion_num_attention_heads=2, motion_norm_num_groups=4,
        motion_max_seq_length=8, use_motion_mid_block=False,
    )


def animatediff_pipe():
    from diffusers import AnimateDiffPipeline

    return AnimateDiffPipeline(unet=unet_2d(), motion_adapter=motion_adapter(), scheduler=ddim(), **clip_parts())


def stable_diffusion_pipe():
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        unet=unet_2d(), scheduler=ddim(), safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        **clip_parts(),
    )


def text2video_zero_pipe():
    from diffusers import TextToVideoZeroPipeline

    return TextToVideoZeroPipeline(
        unet=unet_2d(), scheduler=ddim(), safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        **clip_parts(),
    )


def cogvideox_pipe():
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline, CogVideoXTransformer3DModel

    parts = t5_parts()
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4, time_embed_dim=8, text_embed_dim=16,
        num_layers=1, sample_width=4, sample_height=4, sample_frames=9, patch_size=2, temporal_compression_ratio=4,
        max_text_seq_length=16,
    )
    vae = AutoencoderKLCogVideoX(
        down_block_types=("CogVideoXDownBlock3D",) * 4, up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8), latent_channels=4, layers_per_block=1, norm_num_groups=2,
        temporal_compression_ratio=4,
    )
    return CogVideoXPipeline(vae=vae, transformer=transformer, scheduler=CogVideoXDDIMScheduler(), **parts)


def ltx_pipe():
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXPipeline, LTXVideoTransformer3DModel

    parts = t5_parts()
    transformer = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=2, attention_head_dim=8,
        cross_attention_dim=16, num_layers=1, caption_channels=16,
    )
    vae = AutoencoderKLLTXVideo(
        latent_channels=8, block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False), decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False,) * 5, upsample_residual=(False,) * 4, upsample_factor=(1,) * 4,
        patch_size=1, patch_size_t=1,
    )
    return LTXPipeline(vae=vae, transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), **parts)


def wan_pipe():
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = t5_tokenizer()
    torch.manual_seed(0)
    text_encoder = UMT5EncoderModel(UMT5Config(**t5_config_kwargs(tokenizer)))
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4, text_dim=16,
        freq_dim=16, ffn_dim=32, num_layers=1, rope_max_seq_len=32,
    )
    vae = AutoencoderKLWan(
        base_dim=4, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True],
        latents_mean=[0.0] * 4, latents_std=[1.0] * 4,
    )
    return WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )


PIPES = {
    "zeroscope": zeroscope_pipe,
    "modelscope": zeroscope_pipe,
    "animatediff": animatediff_pipe,
    "text2video-zero": text2video_zero_pipe,
    "cogvideox": cogvideox_pipe,
    "ltx": ltx_pipe,
    "wan": wan_pipe,
}

# (num_frames, height, width) per family: chosen so that frame counts and sizes need rounding
# (cogvideox/wan: 4k+1 frames, multiples of 16 px; ltx: multiples of 32 px) and cropping back.
REQUESTS = {
    "zeroscope": (3, 16, 24),
    "modelscope": (2, 16, 16),
    "animatediff": (3, 16, 24),
    "text2video-zero": (3, 16, 16),
    "cogvideox": (4, 20, 12),
    "ltx": (3, 24, 20),
    "wan": (3, 16, 24),
}


# ---------------------------------------------------------------------------------------------
# Every family runs for real


@pytest.mark.parametrize("name", DIFFUSERS_FAMILIES)
def test_family_runs_tiny_pipeline(name: str) -> None:
    pipe = PIPES[name]()
    cls = GENERATORS.get(name)
    generator = cls.from_pipeline(pipe, num_inference_steps=2)
    assert isinstance(generator, DiffusersGenerator) and generator.loaded
    num_frames, height, width = REQUESTS[name]
    frames = generator("a red circle moves to the left", num_frames=num_frames, height=height, width=width, seed=0)
    assert frames.shape == (num_frames, height, width, 3)
    assert frames.dtype == np.uint8


def test_seed_makes_runs_reproducible_and_negative_prompt_is_passed() -> None:
    generator = ZeroscopeGenerator.from_pipeline(zeroscope_pipe(), num_inference_steps=2)
    a = generator("a red circle", num_frames=2, height=16, width=16, seed=3)
    b = generator("a red circle", num_frames=2, height=16, width=16, seed=3)
    c = generator("a red circle", num_frames=2, height=16, width=16, seed=4, negative_prompt="blue")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_progress_bar_follows_the_flag(capsys) -> None:
    generator = ZeroscopeGenerator.from_pipeline(zeroscope_pipe(), num_inference_steps=2)
    generator("a red circle", num_frames=2, height=16, width=16, seed=0, progress=True)
    assert "2/2" in capsys.readouterr().err
    generator("a red circle", num_frames=2, height=16, width=16, seed=0, progress=False)
    assert "2/2" not in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Loading by path, through from_pretrained (the code path real checkpoints take)


def test_zeroscope_loads_from_a_directory(tmp_path) -> None:
    zeroscope_pipe().save_pretrained(tmp_path / "zs")
    generator = build_generator(
        "zeroscope", model=str(tmp_path / "zs"), dtype="float32", num_inference_steps=2,
        extra={"scheduler": "DPMSolverMultistepScheduler", "vae_slicing": True},
    )
    assert not generator.loaded
    frames = generator("a red circle", num_frames=2, height=16, width=16, seed=0)
    assert frames.shape == (2, 16, 16, 3) and frames.dtype == np.uint8
    assert type(generator.pipeline.scheduler).__name__ == "DPMSolverMultistepScheduler"


def test_animatediff_loads_base_model_and_motion_adapter(tmp_path) -> None:
    stable_diffusion_pipe().save_pretrained(tmp_path / "sd")
    motion_adapter().save_pretrained(tmp_path / "adapter")
    generator = build_generator(
        "animatediff", model=str(tmp_path / "sd"), num_inference_steps=2, extra={"motion_adapter": str(tmp_path / "adapter")}
    )
    frames = generator("a red circle", num_frames=2, height=16, width=16, seed=0)
    assert frames.shape == (2, 16, 16, 3)
    assert type(generator.pipeline.scheduler).__name__ == "DDIMScheduler"  # AnimateDiff's recommended sampler
    with pytest.raises(InputError, match="at most 8 frames"):
        generator("a red circle", num_frames=9, height=16, width=16)


def test_wan_loads_with_a_float32_vae(tmp_path) -> None:
    wan_pipe().save_pretrained(tmp_path / "wan")
    generator = build_generator("wan", model=str(tmp_path / "wan"), dtype="bfloat16", num_inference_steps=2)
    pipe = generator.load()
    assert pipe.vae.dtype == torch.float32 and pipe.transformer.dtype == torch.bfloat16
    assert generator("a red circle", num_frames=1, height=16, width=16, seed=0).shape == (1, 16, 16, 3)


# ---------------------------------------------------------------------------------------------
# Errors


def test_loading_errors_are_model_load_errors(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        build_generator("zeroscope", model=str(tmp_path / "missing")).load()
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="is a file"):
        build_generator("cogvideox", model=str(tmp_path / "file.bin")).load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="cannot load model") as info:
        build_generator("ltx", model=str(tmp_path / "empty")).load()
    assert "\n" not in str(info.value)
    with pytest.raises(ModelLoadError, match="offline"):
        build_generator("wan", model="nobody-here/not-a-cached-model").load()
    with pytest.raises(ModelLoadError, match="motion adapter"):
        build_generator("animatediff", model=str(tmp_path / "empty"), extra={"motion_adapter": str(tmp_path / "nope")}).load()


def test_option_errors_are_config_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown option"):
        build_generator("zeroscope", extra={"motion_adapter": "x"})  # only animatediff takes it
    with pytest.raises(ConfigError, match="cannot set"):
        build_generator("ltx", extra={"call_kwargs": {"height": 64}})
    with pytest.raises(ConfigError, match="dtype"):
        build_generator("wan", dtype="int4")
    with pytest.raises(ConfigError, match="num_inference_steps"):
        build_generator("text2video-zero", num_inference_steps=1)  # needs t0 < t1
    with pytest.raises(ConfigError, match="does not take"):
        build_generator("cogvideox", steps=10)
    with pytest.raises(ConfigError, match="extra must be a mapping"):
        build_generator("wan", extra=["flow_shift"])
    with pytest.raises(ConfigError, match="not a diffusers scheduler"):
        build_generator("zeroscope", model=str(tmp_path), extra={"scheduler": "FastestScheduler"}).load()
    with pytest.raises(ConfigError, match="cpu_offload"):
        build_generator("zeroscope", model=str(tmp_path), cpu_offload=True, device="cpu").load()
    with pytest.raises(ConfigError, match="wraps AnimateDiffPipeline pipelines"):
        AnimateDiffGenerator.from_pipeline(zeroscope_pipe())


def test_defaults_and_call_arguments() -> None:
    generator = build_generator("text2video-zero", num_inference_steps=50)
    assert generator.model == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert generator._family_call_kwargs(None, 8) == {"t0": 44, "t1": 47}  # the paper's values
    assert build_generator("text2video-zero", num_inference_steps=2)._family_call_kwargs(None, 8) == {"t0": 0, "t1": 1}
    expected = {
        "zeroscope": "cerspense/zeroscope_v2_576w", "modelscope": "ali-vilab/text-to-video-ms-1.7b",
        "animatediff": "stable-diffusion-v1-5/stable-diffusion-v1-5", "cogvideox": "THUDM/CogVideoX-2b",
        "ltx": "Lightricks/LTX-Video", "wan": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
    }
    for name, model in expected.items():
        assert build_generator(name).model == model
    assert AnimateDiffGenerator.default_motion_adapter == "guoyww/animatediff-motion-adapter-v1-5-2"


# ---------------------------------------------------------------------------------------------
# Output conversion


@pytest.mark.parametrize(
    "make",
    [
        lambda v: v,  # (T, H, W, 3) floats
        lambda v: v[None],  # (1, T, H, W, 3)
        lambda v: [v],  # list of videos
        lambda v: [list(v)],  # list of lists of frames
        lambda v: torch.from_numpy(v).permute(0, 3, 1, 2),  # (T, C, H, W) tensor
        lambda v: np.rint(v * 255).astype(np.uint8),  # already uint8
        lambda v: (v,),  # return_dict=False tuple
    ],
)
def test_to_uint8_video_shapes(make) -> None:
    video = np.linspace(0, 1, 4 * 6 * 5 * 3, dtype=np.float32).reshape(4, 6, 5, 3)
    out = to_uint8_video(make(video))
    assert out.shape == (4, 6, 5, 3) and out.dtype == np.uint8
    assert out[0, 0, 0, 0] == 0 and out[-1, -1, -1, -1] == 255


def test_to_uint8_video_pil_grey_and_alpha() -> None:
    from PIL import Image

    frames = [Image.new("RGB", (5, 4), (255, 0, 0)) for _ in range(3)]
    assert to_uint8_video(frames).shape == (3, 4, 5, 3)
    assert to_uint8_video(np.ones((2, 4, 5, 1), np.float32)).shape == (2, 4, 5, 3)
    assert to_uint8_video(np.ones((2, 4, 5, 4), np.float32)).shape == (2, 4, 5, 3)
    assert to_uint8_video(np.full((2, 4, 5, 3), 2.0, np.float32)).max() == 255  # clipped


def test_the_same_conversation_drives_two_backends(tmp_path, tiny_llm_dir, tiny_clip_dir) -> None:
    """Swapping the text-to-video backend needs no retraining: one model, one reply, two backends."""
    import json

    from gpt4video.config import AbstractorConfig, EncoderConfig, LLMConfig, ModelConfig
    from gpt4video.generators import SyntheticGenerator, ZeroscopeGenerator
    from gpt4video.engines import TextStream
    from gpt4video.modeling import GPT4Video
    from gpt4video.pipeline import Assistant, GenerationSettings

    config = ModelConfig(
        encoder=EncoderConfig(name="clip", model=str(tiny_clip_dir)),
        abstractor=AbstractorConfig(encoder_dim=32, tokens_per_frame=17, max_frames=4, hidden_size=32,
                                    num_layers=1, num_heads=4, num_queries=4, output_dim=32),
        llm=LLMConfig(model=str(tiny_llm_dir), lora=None), frame_size=64,
    )
    model = GPT4Video.from_config(config)
    reply = "Here it is. <video_prompt>A blue square moves up on a black background.</video_prompt>"
    model.generate_stream = lambda turns, videos=(), params=None, **_: TextStream.of_text([reply])
    backends = [SyntheticGenerator(), ZeroscopeGenerator.from_pipeline(zeroscope_pipe())]
    outputs = []
    for backend in backends:
        settings = GenerationSettings(backend, num_frames=8,
                                      height=64, width=64, seed=0)
        answer = Assistant(model, settings).ask("Show me a blue square moving up.").consume()
        assert answer.text == "Here it is." and len(answer.generated) == 1, answer.generation_errors
        outputs.append(json.loads(open(answer.generated[0].save(tmp_path / backend.name).sidecar).read()))
    assert [o["backend"] for o in outputs] == ["synthetic", "zeroscope"]
    assert outputs[0]["prompt"] == outputs[1]["prompt"]


# ---------------------------------------------------------------------------------------------
# Text-to-image backends: tiny components of each family


def clip_text(projection: bool = False):
    """A CLIP tokenizer and a 32-wide text encoder (with a projection: the pooled output SDXL and SD3 use)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = clip_tokenizer()
    torch.manual_seed(0)
    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=32,
    )
    return tokenizer, (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def t5_32():
    from transformers import T5Config, T5EncoderModel

    tokenizer = t5_tokenizer()
    torch.manual_seed(0)
    return tokenizer, T5EncoderModel(T5Config(**{**t5_config_kwargs(tokenizer), "d_model": 32}))


def flow_vae(latent_channels: int):
    """The VAE of the flow-matching families (SD3, FLUX): shifted and scaled latents, no quant convs."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=latent_channels, norm_num_groups=4, layers_per_block=1, sample_size=32, shift_factor=0.0609,
        scaling_factor=1.5035, use_quant_conv=False, use_post_quant_conv=False,
    )


def sdxl_pipe():
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    tokenizer, text_encoder = clip_text()
    tokenizer_2, text_encoder_2 = clip_text(projection=True)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, norm_num_groups=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, projection_class_embeddings_input_dim=6 * 8 + 32, cross_attention_dim=64,
    )
    return StableDiffusionXLPipeline(
        vae=clip_parts()["vae"], text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
        tokenizer_2=tokenizer_2, unet=unet, scheduler=EulerDiscreteScheduler(), add_watermarker=False,
    )


def sd3_pipe():
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    tokenizer, text_encoder = clip_text(projection=True)
    tokenizer_2, text_encoder_2 = clip_text(projection=True)
    tokenizer_3, text_encoder_3 = t5_32()
    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=2, in_channels=4, num_layers=1, attention_head_dim=8, num_attention_heads=2,
        caption_projection_dim=16, joint_attention_dim=32, pooled_projection_dim=64, out_channels=4,
    )
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=flow_vae(4), text_encoder=text_encoder,
        tokenizer=tokenizer, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, text_encoder_3=text_encoder_3,
        tokenizer_3=tokenizer_3,
    )


def flux_pipe():
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    tokenizer, text_encoder = clip_text()
    tokenizer_2, text_encoder_2 = t5_32()
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8],
    )
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=flow_vae(1), text_encoder=text_encoder, tokenizer=tokenizer,
        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer,
    )


def sana_pipe():
    from diffusers import AutoencoderDC, FlowMatchEulerDiscreteScheduler, SanaPipeline, SanaTransformer2DModel
    from transformers import Gemma2Config, Gemma2Model

    tokenizer = t5_tokenizer()  # any tokenizer serves the pipeline; Gemma's needs a sentencepiece file
    torch.manual_seed(0)
    text_encoder = Gemma2Model(Gemma2Config(
        head_dim=4, hidden_size=8, num_attention_heads=2, num_hidden_layers=1, num_key_value_heads=2,
        intermediate_size=16, vocab_size=len(tokenizer), pad_token_id=0,
    ))
    transformer = SanaTransformer2DModel(
        patch_size=1, in_channels=4, out_channels=4, num_layers=1, num_attention_heads=2, attention_head_dim=4,
        num_cross_attention_heads=2, cross_attention_head_dim=4, cross_attention_dim=8, caption_channels=8, sample_size=32,
    )
    vae = AutoencoderDC(
        in_channels=3, latent_channels=4, attention_head_dim=2, encoder_block_types=("ResBlock", "EfficientViTBlock"),
        decoder_block_types=("ResBlock", "EfficientViTBlock"), encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8), encoder_qkv_multiscales=((), (5,)), decoder_qkv_multiscales=((), (5,)),
        encoder_layers_per_block=(1, 1), decoder_layers_per_block=(1, 1), downsample_block_type="conv",
        upsample_block_type="interpolate", decoder_norm_types="rms_norm", decoder_act_fns="silu", scaling_factor=0.41407,
    )
    return SanaPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0))


IMAGE_PIPES = {"sd15": stable_diffusion_pipe, "sdxl": sdxl_pipe, "sd3": sd3_pipe, "flux": flux_pipe, "sana": sana_pipe}


@pytest.mark.parametrize("name", sorted(IMAGE_PIPES))
def test_image_family_runs_tiny_pipeline(name: str) -> None:
    generator = IMAGE_GENERATORS.get(name).from_pipeline(IMAGE_PIPES[name](), num_inference_steps=2)
    assert isinstance(generator, DiffusersImageGenerator) and generator.loaded
    # 20 x 24 is no multiple of any family's size step: generated larger, then centre-cropped.
    image = generator("a red circle", height=20, width=24, seed=0, negative_prompt="blue")
    assert image.shape == (20, 24, 3) and image.dtype == np.uint8
    assert image.std() > 0  # a picture, not a blank


def test_image_sizes_follow_the_family() -> None:
    flux = FluxImageGenerator.from_pipeline(flux_pipe(), num_inference_steps=2)
    assert flux._size_multiple(flux.pipeline) == 4  # 2 x 2 packed latents of a 2x VAE
    sd = StableDiffusionImageGenerator.from_pipeline(stable_diffusion_pipe(), num_inference_steps=2)
    assert sd._size_multiple(sd.pipeline) == 8
    assert flux("a red circle", height=12, width=20, seed=0).shape == (12, 20, 3)


def test_image_seed_makes_runs_reproducible() -> None:
    generator = StableDiffusionImageGenerator.from_pipeline(stable_diffusion_pipe(), num_inference_steps=2)
    a = generator("a red circle", height=16, width=16, seed=3)
    b = generator("a red circle", height=16, width=16, seed=3)
    c = generator("a red circle", height=16, width=16, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_image_backends_load_from_a_directory(tmp_path) -> None:
    stable_diffusion_pipe().save_pretrained(tmp_path / "sd")
    by_family = build_image_generator("sd15", model=str(tmp_path / "sd"), num_inference_steps=2,
                                      extra={"scheduler": "DPMSolverMultistepScheduler"})
    assert not by_family.loaded
    assert by_family("a red circle", height=16, width=16, seed=0).shape == (16, 16, 3)
    assert type(by_family.pipeline.scheduler).__name__ == "DPMSolverMultistepScheduler"
    # auto: the pipeline class the checkpoint names, with its own defaults unless told otherwise
    auto = build_image_generator("auto", model=str(tmp_path / "sd"), num_inference_steps=2)
    assert auto("a red circle", height=16, width=16, seed=0).shape == (16, 16, 3)
    assert type(auto.pipeline).__name__ == "StableDiffusionPipeline"
    assert AutoImageGenerator().num_inference_steps is None and AutoImageGenerator().guidance_scale is None


def test_image_backend_errors() -> None:
    with pytest.raises(ConfigError, match="image generator 'sd15' wraps StableDiffusionPipeline pipelines"):
        StableDiffusionImageGenerator.from_pipeline(flux_pipe())
    with pytest.raises(ConfigError, match="image generator 'flux' does not take"):
        build_image_generator("flux", num_frames=4)
    with pytest.raises(ConfigError, match="unknown image generator 'dalle'"):
        build_image_generator("dalle")
    with pytest.raises(ConfigError, match="cannot set num_images_per_prompt"):
        build_image_generator("sdxl", extra={"call_kwargs": {"num_images_per_prompt": 4}})
    with pytest.raises(ModelLoadError, match="image generator 'sd3': cannot load model"):
        build_image_generator("sd3", model="nobody-here/not-a-cached-model").load()
    generator = StableDiffusionImageGenerator.from_pipeline(stable_diffusion_pipe(), num_inference_steps=2)
    with pytest.raises(InputError, match="height must be an integer from 8"):
        generator("a red circle", height=4, width=16)
    with pytest.raises(InputError, match="prompt must be non-empty"):
        generator("  ", height=16, width=16)


def test_image_backend_defaults() -> None:
    expected = {
        "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5", "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
        "sd3": "stabilityai/stable-diffusion-3.5-medium", "flux": "black-forest-labs/FLUX.1-schnell",
        "sana": "Efficient-Large-Model/Sana_1600M_1024px_BF16_diffusers",
    }
    for name, model in expected.items():
        assert build_image_generator(name).model == model
    flux = build_image_generator("flux")
    assert flux.num_inference_steps == 4 and flux.guidance_scale == pytest.approx(0.0)
