import dataclasses
import hashlib
import json
import os

import numpy as np
import pytest
import torch

from gpt4video.data.feature_cache import FeatureCache, encoder_identity
from gpt4video.errors import InputError, VideoError
from gpt4video.processing import VideoSampling
from gpt4video.video import load_video, write_video

T = 4


def make_clip(path, seed, n=6, size=32):
    frames = np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    return str(write_video(path, frames, fps=4))


class FakeEncoder:
    """Counts calls; features (T, N=2, D=3) are per-frame channel means and stds, so they follow the pixels."""

    def __init__(self):
        self.calls = []

    def __call__(self, videos):
        self.calls.append(len(videos))
        out = []
        for v in videos:
            x = torch.from_numpy(np.asarray(v)).float()  # (T, H, W, 3)
            out.append(torch.stack([x.mean(dim=(1, 2)), x.std(dim=(1, 2))], dim=1))  # (T, 2, 3)
        return torch.stack(out)  # (V, T, 2, 3)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return [make_clip(folder / f"c{i}.mp4", seed=i) for i in range(3)]


def make_cache(directory, encoder=None, **kw):
    kw = {"identity": "fake-v1", "sampling": VideoSampling(T, 32), **kw}
    return FeatureCache(directory, encoder or FakeEncoder(), **kw)


def entries(directory):
    return sorted(p for p in directory.rglob("*") if p.is_file())


def test_miss_then_hit_without_encoding(tmp_path, clips):
    enc = FakeEncoder()
    cache = make_cache(tmp_path / "cache", enc)
    first = cache.get_many(clips[:2])
    assert first.shape == (2, T, 2, 3)
    assert enc.calls == [2]  # both missing clips in one encoder batch
    assert (cache.stats.hits, cache.stats.misses) == (0, 2)

    # the stored features are the encoder's output for load_video(path, T, max_side=frame_size)
    expected = enc([load_video(clips[0], num_frames=T, max_side=32).frames])[0]
    assert torch.equal(first[0], expected)

    again = cache.get_many(clips[:2])
    assert torch.equal(again, first)
    assert enc.calls == [2, 1]  # (the extra call above was ours)
    assert (cache.stats.hits, cache.stats.misses) == (2, 2)

    # a fresh cache over the same folder reads from disk too
    enc2 = FakeEncoder()
    other = make_cache(tmp_path / "cache", enc2)
    assert torch.equal(other.get_many(clips[:2]), first) and enc2.calls == []

    # mixed: only the missing clip is encoded; a repeated path is computed once; order is kept
    mixed = other.get_many([clips[2], clips[0], clips[2]])
    assert enc2.calls == [1]
    assert torch.equal(mixed[1], first[0]) and torch.equal(mixed[0], mixed[2])
    assert other.get(clips[1]).shape == (T, 2, 3)
    assert clips[0] in other and str(tmp_path / "nope.mp4") not in other
    assert len(entries(tmp_path / "cache")) == 3
    for file in entries(tmp_path / "cache"):  # sharded by the key's first two hex characters
        assert file.parent.name == file.stem[:2] and file.suffix == ".safetensors"


def test_key_follows_content_not_path(tmp_path, clips):
    cache = make_cache(tmp_path / "cache")
    copy = tmp_path / "renamed.mp4"
    copy.write_bytes(open(clips[0], "rb").read())
    assert cache.key(copy) == cache.key(clips[0])
    assert cache.key(clips[1]) != cache.key(clips[0])

    # editing the file changes the key (the hash memo is keyed by size and mtime)
    key = cache.key(copy)
    make_clip(copy, seed=99)
    os.utime(copy, ns=(1, 1))
    assert cache.key(copy) != key


def test_key_changes_with_num_frames_frame_size_and_encoder(tmp_path, clips):
    cache = make_cache(tmp_path / "c")
    base = cache.key(clips[0])
    assert make_cache(tmp_path / "c", sampling=VideoSampling(2, 32)).key(clips[0]) != base
    assert make_cache(tmp_path / "c", sampling=VideoSampling(T, 16)).key(clips[0]) != base
    assert make_cache(tmp_path / "c", identity="fake-v2").key(clips[0]) != base
    assert make_cache(tmp_path / "c").key(clips[0]) == base

    # the documented record, so caches written before stay valid
    record = {"version": 1, "file_sha256": hashlib.sha256(open(clips[0], "rb").read()).hexdigest(),
              "encoder": "fake-v1", "num_frames": T, "frame_size": 32}
    text = json.dumps(record, sort_keys=True, separators=(",", ":"))
    assert base == hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_sampling_is_required_and_checked(tmp_path):
    with pytest.raises(InputError, match="sampling="):
        FeatureCache(tmp_path / "c", FakeEncoder(), identity="fake-v1")
    with pytest.raises(InputError, match="VideoSampling"):
        FeatureCache(tmp_path / "c", FakeEncoder(), identity="fake-v1", sampling=(T, 32))
    with pytest.raises(InputError, match="num_frames"):
        FeatureCache(tmp_path / "c", FakeEncoder(), identity="fake-v1", sampling=VideoSampling(0, 32))


def test_files_are_hashed_once_per_process(tmp_path, clips):
    cache = make_cache(tmp_path / "cache")
    for _ in range(3):
        cache.get_many(clips)
    assert cache.stats.hashed == len(clips)


@pytest.mark.parametrize("damage", ["garbage", "truncate", "wrong_shape"])
def test_corrupt_entry_is_recomputed_and_overwritten(tmp_path, clips, damage, caplog):
    enc = FakeEncoder()
    cache = make_cache(tmp_path / "cache", enc)
    good = cache.get(clips[0])
    file = cache.entry_path(cache.key(clips[0]))
    if damage == "garbage":
        file.write_bytes(b"this is not a safetensors file")
    elif damage == "truncate":
        file.write_bytes(file.read_bytes()[:-10])
    else:  # a valid file whose features do not fit this cache (T differs)
        from safetensors.torch import save_file

        save_file({"features": torch.zeros(T + 1, 2, 3)}, str(file), metadata={"key": cache.key(clips[0])})
    recomputed = cache.get(clips[0])
    assert torch.equal(recomputed, good)
    assert enc.calls == [1, 1] and cache.stats.corrupt == 1
    assert "unusable" in caplog.text
    cache.get(clips[0])  # the entry was overwritten with a good one
    assert enc.calls == [1, 1] and cache.stats.corrupt == 1


def test_atomic_writes_leave_no_temporary_files(tmp_path, clips, monkeypatch, caplog):
    cache = make_cache(tmp_path / "cache")
    cache.get_many(clips)
    assert all(not f.name.startswith(".") and f.suffix == ".safetensors" for f in entries(tmp_path / "cache"))

    # a failing rename (e.g. disk full) leaves neither a temporary nor a partial file, and no crash
    other = make_cache(tmp_path / "other")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    feats = other.get_many(clips[:1])
    assert feats.shape == (1, T, 2, 3)
    assert entries(tmp_path / "other") == [] and other.stats.write_errors == 1
    assert "could not store" in caplog.text


def test_precompute_and_errors(tmp_path, clips):
    enc = FakeEncoder()
    cache = make_cache(tmp_path / "cache", enc)
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(open(clips[0], "rb").read())
    # a repeated path is one clip; a copy of the same bytes is served by the same entry
    result = cache.precompute(clips + [clips[0], str(copy)], progress=False, batch_size=2)
    assert (result.computed, result.cached, result.failed) == (3, 1, [])
    assert enc.calls == [2, 1]
    result = cache.precompute(clips, progress=False)
    assert (result.computed, result.cached) == (0, 3) and enc.calls == [2, 1]

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 10)
    fresh = make_cache(tmp_path / "fresh", enc)
    result = fresh.precompute([clips[0], str(broken), str(tmp_path / "missing.mp4")], progress=False,
                              skip_errors=True)
    assert result.computed == 1 and {p for p, _ in result.failed} == {str(broken), str(tmp_path / "missing.mp4")}
    assert all(reason for _, reason in result.failed) and fresh.get(clips[0]).shape == (T, 2, 3)
    with pytest.raises(VideoError):
        fresh.precompute([str(broken)], progress=False)
    with pytest.raises(VideoError, match="missing.mp4"):
        fresh.get_many([str(tmp_path / "missing.mp4")])


def test_with_tiny_model(tmp_path, tiny_model_config, clips):
    from gpt4video.modeling import GPT4Video

    model = GPT4Video.from_config(tiny_model_config)
    calls = []
    original = model.encode_frames

    def counting(videos):
        calls.append(len(videos))
        return original(videos)

    model.encode_frames = counting
    cache = FeatureCache(tmp_path / "cache", model)
    assert cache.sampling is model.processor.sampling  # clips are read the way the model reads them
    assert (cache.num_frames, cache.frame_size) == (tiny_model_config.num_frames, tiny_model_config.frame_size)
    with pytest.raises(InputError, match="processor"):
        FeatureCache(tmp_path / "cache", model, sampling=VideoSampling(tiny_model_config.num_frames + 1))
    feats = cache.get_many(clips[:2])
    assert feats.shape == (2, tiny_model_config.num_frames, 17, 32)
    direct = original([load_video(p, num_frames=cache.num_frames, max_side=cache.frame_size).frames for p in clips[:2]])
    assert torch.allclose(feats, direct)
    assert torch.equal(cache.get_many(clips[:2]), feats) and calls == [2]

    # the encoder's config is part of the key; batch size and threads (speed only) are not
    cfg = tiny_model_config.encoder
    same = encoder_identity(dataclasses.replace(cfg, batch_size=7, num_threads=2), model.encoder, dtype=torch.float32)
    assert cache.identity == same
    assert encoder_identity(dataclasses.replace(cfg, select_layer=-2), model.encoder, dtype=torch.float32) != same
    assert encoder_identity(cfg, model.encoder, dtype=torch.float16) != same
    assert encoder_identity(cfg, object(), dtype=torch.float32) != same  # another encoder class
    # so is the image preprocessing a checkpoint's preprocessor_config.json sets
    pre = model.encoder.preprocessing
    model.encoder.preprocessing = dataclasses.replace(pre, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    try:
        assert encoder_identity(cfg, model.encoder, dtype=torch.float32) != same
    finally:
        model.encoder.preprocessing = pre
