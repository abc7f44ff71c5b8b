"""Text-to-video metrics on known inputs: the Fréchet distance by hand, FID and FVD through tiny TorchScript
networks written here (identical sets give 0, a known shift gives its square), CLIPSIM with a tiny random CLIP
built from a config against the cosine computed by hand, and "unavailable" without weights."""

import numpy as np
import pytest
import torch

from gpt4video.errors import InputError
from gpt4video.evaluation.t2v import ClipScorer, clipsim, fid, frechet_distance, fvd


def test_frechet_distance_by_hand():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 5))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, a + 2.0) == pytest.approx(5 * 4.0)  # same covariance, means 2 apart in 5 dims
    # independent dimensions: the distance of 1-d Gaussians summed, (mu1-mu2)^2 + (s1-s2)^2 each
    x, y = rng.normal(size=(4000, 3)) * [1.0, 2.0, 3.0], rng.normal(size=(4000, 3)) * [3.0, 2.0, 1.0] + 1.0
    sx, sy = x.std(0, ddof=1), y.std(0, ddof=1)
    cross = np.corrcoef(np.hstack([x, y]).T)
    assert np.abs(cross - np.eye(6)).max() < 0.1  # nearly independent, so the sum is nearly exact
    by_hand = float(((x.mean(0) - y.mean(0)) ** 2).sum() + ((sx - sy) ** 2).sum())
    assert frechet_distance(x, y) == pytest.approx(by_hand, rel=0.02)
    scipy = pytest.importorskip("scipy.linalg")
    cx, cy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    reference = ((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(cx + cy - 2 * np.real(scipy.sqrtm(cx @ cy)))
    assert frechet_distance(x, y) == pytest.approx(reference, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2 rows"):
        frechet_distance(a[:1], a)


class MeanColour(torch.nn.Module):
    """A stand-in Inception: the mean colour of each image, only when asked for features."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        if not return_features:
            raise RuntimeError("called without return_features")
        return x.mean(dim=(2, 3))


class MeanColourVideo(torch.nn.Module):
    """A stand-in I3D: the mean colour of each video, only when called as the published FVD code calls it."""

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        if not (rescale and resize and return_features):
            raise RuntimeError("not called with rescale, resize and return_features")
        return x.mean(dim=(2, 3, 4))


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torchscript")
    torch.jit.script(MeanColour()).save(str(folder / "inception.pt"))
    torch.jit.script(MeanColourVideo()).save(str(folder / "i3d.pt"))
    (folder / "junk.pt").write_bytes(b"not a model")
    return folder


def videos(seed, n, frames=4, shift=0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(20, 200, (frames, 24, 32, 3)) + shift).astype(np.uint8) for _ in range(n)]


def test_fid_and_fvd_on_known_inputs(networks):
    real = videos(0, 3)
    assert fid(real, real, networks / "inception.pt")["value"] == pytest.approx(0.0, abs=1e-6)
    shifted = [v + 10 for v in real]  # every pixel 10 brighter: each frame's mean colour moves 10 in 3 dims
    result = fid(shifted, real, networks / "inception.pt", batch_size=5)
    assert result["value"] == pytest.approx(3 * 10.0 ** 2) and result["frames"] == [12, 12]
    assert fvd(real, real, networks / "i3d.pt")["value"] == pytest.approx(0.0, abs=1e-6)
    result = fvd(shifted, real, networks / "i3d.pt")
    assert result["value"] == pytest.approx(300.0) and result["videos"] == [3, 3]


def test_unavailable_without_weights_and_clear_errors(networks):
    real = videos(0, 2)
    for result in (fid(real, real, None), fvd(real, real, None), clipsim(["a"], real[:1], None),
                   fid(real, [], networks / "inception.pt")):
        assert result["value"] == "unavailable" and result["reason"]
    # one video a side is no distribution; videos may come from any iterable (read one at a time)
    one = fvd(iter(real[:1]), iter(real), networks / "i3d.pt")
    assert one["value"] == "unavailable" and "got 1 and 2" in one["reason"]
    assert fid(iter(real), (v for v in real), networks / "inception.pt")["frames"] == [8, 8]
    with pytest.raises(InputError, match="Inception weights not found"):
        fid(real, real, networks / "missing.pt")
    with pytest.raises(InputError, match="not a TorchScript I3D"):
        fvd(real, real, networks / "junk.pt")
    with pytest.raises(InputError, match="CLIP model folder not found"):
        clipsim(["a"], real[:1], str(networks / "no-clip"))


@pytest.fixture(scope="module")
def tiny_clip_model_dir(tiny_tokenizer_dir, tmp_path_factory):
    """A random CLIPModel (32 px images) with the tiny tokenizer, saved as a folder."""
    from transformers import AutoTokenizer, CLIPConfig, CLIPModel

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "max_position_embeddings": 32, "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 2, "num_attention_heads": 4},
        projection_dim=16,
    )
    path = tmp_path_factory.mktemp("tiny_clip_model")
    CLIPModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_clipsim_is_the_cosine_computed_by_hand(tiny_clip_model_dir):
    from transformers import AutoTokenizer, CLIPModel

    from gpt4video.encoders.clip import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    rng = np.random.default_rng(1)
    clips = [rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8) for _ in range(2)]  # already 32 px: no resize
    prompts = ["a red circle", "a blue square moves left"]
    result = clipsim(prompts, clips, str(tiny_clip_model_dir))

    model, tok = CLIPModel.from_pretrained(tiny_clip_model_dir).eval(), AutoTokenizer.from_pretrained(tiny_clip_model_dir)
    mean, std = torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(OPENAI_CLIP_STD).view(1, 3, 1, 1)
    by_hand = []
    with torch.no_grad():
        for prompt, frames in zip(prompts, clips):
            ids = tok([prompt], return_tensors="pt")
            t = model.get_text_features(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"])
            t = t if isinstance(t, torch.Tensor) else t.pooler_output
            pixels = (torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 - mean) / std
            v = model.get_image_features(pixel_values=pixels)
            v = v if isinstance(v, torch.Tensor) else v.pooler_output
            by_hand.append(torch.nn.functional.cosine_similarity(v, t, dim=-1).mean().item())
    assert result["per_video"] == pytest.approx(by_hand, abs=1e-5)
    assert result["value"] == pytest.approx(np.mean(by_hand), abs=1e-5) and result["videos"] == 2
    # the scorer can be reused
    assert clipsim(prompts[:1], clips[:1], ClipScorer(str(tiny_clip_model_dir)))["value"] == pytest.approx(by_hand[0],
                                                                                                           abs=1e-5)


def test_read_prompts(tmp_path):
    import json

    from gpt4video.evaluation.t2v import read_prompts

    (tmp_path / "p.txt").write_text("a red circle\n\n  a blue square \n")
    (tmp_path / "vbench.json").write_text(json.dumps([{"prompt_en": "a dog", "dimension": ["x"]}, "a cat"]))
    (tmp_path / "p.jsonl").write_text('{"caption": "a car"}\n{"prompt": "a bus"}\n')
    (tmp_path / "bad.json").write_text(json.dumps([{"text": "a dog"}]))
    assert read_prompts(tmp_path / "p.txt") == ["a red circle", "a blue square"]
    assert read_prompts(tmp_path / "vbench.json") == ["a dog", "a cat"]
    assert read_prompts(tmp_path / "p.jsonl") == ["a car", "a bus"]
    with pytest.raises(InputError, match="item 0 is neither a prompt"):
        read_prompts(tmp_path / "bad.json")
    with pytest.raises(InputError, match="prompt file not found"):
        read_prompts(tmp_path / "none.txt")


def test_eval_t2v_command(networks, tiny_clip_model_dir, tmp_path, capsys):
    import json

    from gpt4video.cli import main
    from gpt4video.generators import build_generator
    from gpt4video.video import write_video

    prompts = ["A red circle moves to the right on a gray background.", "a cat playing piano",
               "A blue square grows on a black background."]
    (tmp_path / "prompts.txt").write_text("\n".join(prompts) + "\n")
    refs = tmp_path / "refs"
    synthetic = build_generator("synthetic")
    for i, p in enumerate((prompts[0], prompts[2])):  # the same videos as the generator makes: FID and FVD 0
        write_video(refs / f"{i}.mp4", synthetic(p, num_frames=4, height=32, width=32, seed=2 * i))
    out = tmp_path / "out"
    argv = ["eval", "t2v", "--prompts", str(tmp_path / "prompts.txt"), "--reference-dir", str(refs), "--out", str(out),
            "--fid-weights", str(networks / "inception.pt"), "--fvd-weights", str(networks / "i3d.pt"),
            "--clip-model", str(tiny_clip_model_dir), "--video-frames", "4", "--video-size", "32", "--no-progress"]
    assert main(argv) == 0
    stdout, err = capsys.readouterr()
    results = json.loads((out / "results.json").read_text())
    assert (results["prompts"], results["generated"], results["references"]) == (3, 2, 2)
    assert "cannot render 'a cat playing piano'" in results["generation_errors"][0]["error"]
    m = results["metrics"]
    # identical sets; the covariances are near-singular (few distinct colours), so rounding leaves ~1e-6
    assert m["FID"]["value"] == pytest.approx(0.0, abs=1e-4) and m["FVD"]["value"] == pytest.approx(0.0, abs=1e-4)
    assert -1 <= m["CLIPSIM"]["value"] <= 1 and m["CLIPSIM"]["videos"] == 2
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["00000.mp4", "00002.mp4"]
    assert stdout.startswith("# Text-to-video metrics (synthetic)")

    # no weights: every metric "unavailable", the videos reused
    before = (out / "videos" / "00000.mp4").stat().st_mtime_ns
    assert main(argv[:8] + ["--video-frames", "4", "--video-size", "32", "--no-progress"]) == 0
    stdout = capsys.readouterr().out
    assert "| unavailable | unavailable | unavailable |" in stdout
    assert (out / "videos" / "00000.mp4").stat().st_mtime_ns == before

    for bad, needle in ((["eval", "t2v", "--out", str(out)], "--prompts FILE or --benchmark msr-vtt"),
                        (["eval", "t2v", "--prompts", str(tmp_path / "prompts.txt")], "needs --out"),
                        (argv[:8] + ["--fid-weights", str(tmp_path / "nope.pt")], "--fid-weights file not found"),
                        (["eval", "t2v", "--prompts", str(tmp_path / "prompts.txt"), "--out", str(out),
                          "--max-prompts", "1"], "holds videos for other inputs"),
                        (["eval", "--split-dir", str(tmp_path), "--fid-weights", "x"], "--fid-weights is an option")):
        assert main(bad) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, (bad, err)
