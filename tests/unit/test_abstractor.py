import pytest
import torch

from gpt4video.abstractor import VideoAbstractor
from gpt4video.config import AbstractorConfig, ConfigError
from gpt4video.errors import InputError
from gpt4video.modeling import preset_config

TINY = dict(encoder_dim=24, tokens_per_frame=5, max_frames=4, hidden_size=16, num_layers=2, num_heads=2,
            num_queries=6, output_dim=40)


def test_shapes_batched_and_single():
    ab = VideoAbstractor(AbstractorConfig(**TINY))
    x = torch.randn(3, 4, 5, 24)  # (B, T, N, D_enc)
    assert ab(x).shape == (3, 6, 40)
    assert ab(x[0]).shape == (6, 40)
    assert ab(x[:, :2]).shape == (3, 6, 40)  # fewer frames than max_frames is fine


def test_paper_preset_shapes_on_meta_device():
    """The paper's abstractor, built at full size without memory: (T·257, 1024) → (64, 4096)."""
    cfg = preset_config("paper").abstractor
    assert (cfg.num_queries, cfg.num_layers, cfg.encoder_dim, cfg.output_dim) == (64, 6, 1024, 4096)
    with torch.device("meta"):
        ab = VideoAbstractor(cfg)
        out = ab(torch.empty(2, 4, 257, 1024))
    assert out.shape == (2, 64, 4096)


def test_paper_query_counts_with_tiny_width_stand_in():
    """Paper token counts (257 per frame, 64 + 64 queries, 6 layers) at a tiny width, with real numbers."""
    cfg = AbstractorConfig(encoder_dim=16, tokens_per_frame=257, max_frames=4, hidden_size=16, num_layers=6,
                           num_heads=2, num_queries=64, output_dim=32)
    ab = VideoAbstractor(cfg)
    assert ab.spatial.queries.shape == (64, 16) and ab.temporal.queries.shape == (64, 16)
    assert len(ab.spatial.layers) == 6 and len(ab.temporal.layers) == 6
    out = ab(torch.randn(1, 4, 257, 16))
    assert out.shape == (1, 64, 32) and torch.isfinite(out).all()


def test_frame_order_matters_only_with_temporal_positions():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 5, 24)
    reversed_x = x.flip(1)
    with_pos = VideoAbstractor(AbstractorConfig(**TINY)).eval()
    assert not torch.allclose(with_pos(x), with_pos(reversed_x), atol=1e-5)
    without = VideoAbstractor(AbstractorConfig(**TINY, temporal_position=False, spatial_position=False)).eval()
    assert torch.allclose(without(x), without(reversed_x), atol=1e-5)


def test_branch_ablations():
    spatial_only = VideoAbstractor(AbstractorConfig(**TINY, use_temporal_queries=False))
    assert spatial_only.temporal is None
    assert spatial_only(torch.randn(2, 4, 5, 24)).shape == (2, 6, 40)
    with pytest.raises(ConfigError):
        AbstractorConfig(**TINY, use_temporal_queries=False, use_spatial_queries=False)


def test_gradients_reach_queries_and_position_embeddings():
    ab = VideoAbstractor(AbstractorConfig(**TINY))
    ab(torch.randn(2, 4, 5, 24)).pow(2).mean().backward()
    for p in (ab.spatial.queries, ab.temporal.queries, ab.frame_embed, ab.patch_embed, ab.input_proj.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize("shape", [(1, 4, 5, 23), (1, 4, 6, 24), (1, 5, 5, 24), (4, 5)])
def test_wrong_feature_shapes_are_named(shape):
    ab = VideoAbstractor(AbstractorConfig(**TINY))
    with pytest.raises(InputError):
        ab(torch.randn(*shape))


def test_config_checks():
    with pytest.raises(ConfigError, match="divisible"):
        AbstractorConfig(**{**TINY, "num_heads": 3})
    with pytest.raises(ConfigError, match="num_queries"):
        AbstractorConfig(**{**TINY, "num_queries": 0})


def test_input_norm_and_position_scale():
    torch.manual_seed(0)
    abstractor = VideoAbstractor(AbstractorConfig(**{**TINY, "position_init_std": 0.5}))
    assert isinstance(abstractor.input_norm, torch.nn.LayerNorm)
    assert 0.4 < float(abstractor.frame_embed.std()) < 0.6 and 0.4 < float(abstractor.patch_embed.std()) < 0.6
    # Features of any scale reach the cross-attention normalised: scaling them changes nothing.
    x = torch.rand(2, 4, TINY["tokens_per_frame"], TINY["encoder_dim"]) * 5
    torch.testing.assert_close(abstractor(x), abstractor(x * 30), rtol=1e-4, atol=1e-4)
    legacy = VideoAbstractor(AbstractorConfig(**{**TINY, "input_norm": False}))  # weights trained before the norm
    assert isinstance(legacy.input_norm, torch.nn.Identity)
    with pytest.raises(ConfigError, match="position_init_std"):
        AbstractorConfig(**{**TINY, "position_init_std": 0})


def _moving_object(order):
    """(1, T, N, D) features: one object feature visiting patches in ``order`` (one per frame) on a
    background feature: left- and right-moving versions hold the same features per frame and per patch."""
    torch.manual_seed(0)
    d, n = TINY["encoder_dim"], TINY["tokens_per_frame"]
    background, obj = torch.randn(d), torch.randn(d)
    feats = background.repeat(len(order), n, 1)  # (T, N, D)
    for t, patch in enumerate(order):
        feats[t, patch] = obj
    return feats.unsqueeze(0)


def test_direction_of_motion_needs_joint_positions():
    left, right = _moving_object([3, 2, 1, 0]), _moving_object([0, 1, 2, 3])
    torch.manual_seed(1)
    separate = VideoAbstractor(AbstractorConfig(**TINY)).eval()
    torch.manual_seed(1)
    joint = VideoAbstractor(AbstractorConfig(**TINY, joint_positions=True)).eval()
    with torch.no_grad():
        # Each branch sees a bag of features: "where" alone and "when" alone are the same bags for both
        # directions, so the paper's separate positions cannot tell them apart, exactly.
        torch.testing.assert_close(separate(left), separate(right), atol=1e-5, rtol=1e-5)
        assert (joint(left) - joint(right)).abs().max() > 1e-3
