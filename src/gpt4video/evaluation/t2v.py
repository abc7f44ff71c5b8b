"""Text-to-video metrics: FID over frames, CLIPSIM and FVD, each from weights the user gives.

No Inception, CLIP or I3D weights exist on the machines this project is built on, and a score from random
weights means nothing, so each metric runs only with the weights it names, and is ``"unavailable"`` (with
the reason) otherwise:

- **FID** over frames: every frame of the generated and of the reference videos through a TorchScript
  Inception-v3 given by path: the ``inception-2015-12-05.pt`` of StyleGAN2-ADA / StyleGAN3, called as
  ``model(images, return_features=True)`` with images (N, 3, H, W) in 0-255 (it resizes them itself) and
  giving the 2048-d pool features. The Fréchet distance of the two feature sets' Gaussians.
- **FVD**: every video through a TorchScript I3D given by path: the ``i3d_torchscript.pt`` of StyleGAN-V,
  the Kinetics-400 I3D of the original FVD, called as ``model(videos, rescale=True, resize=True,
  return_features=True)`` with videos (N, 3, T, H, W) in 0-255, giving the 400-d logits. The Fréchet
  distance of the generated and reference sets.
- **CLIPSIM**: for each prompt and the video made from it, the cosine similarity of CLIP's text embedding
  and each frame's image embedding, averaged over the frames, then over the videos (transformers
  ``CLIPModel`` and its tokenizer from a local folder or a hub id; frames preprocessed as the ``clip``
  encoder preprocesses them, with the checkpoint's mean and std). Reported as a cosine (0-1 scale), as
  NExT-GPT and GPT4Video report it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpt4video.errors import InputError

__all__ = ["UNAVAILABLE", "ClipScorer", "TorchScriptFeatures", "clipsim", "evaluate_t2v", "fid", "format_t2v_markdown",
           "frechet_distance", "fvd", "read_prompts"]

UNAVAILABLE = "unavailable"
#: How the published FID and FVD code calls its TorchScript networks.
FID_CALL = {"return_features": True}
FVD_CALL = {"rescale": True, "resize": True, "return_features": True}


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to feature sets ``a`` (N, D) and ``b`` (M, D):
    ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``; each set needs at least two rows.

    The trace of the matrix square root is computed from the eigenvalues of the symmetric
    ``S_a^(1/2) S_b S_a^(1/2)``, which has the same ones as ``S_a S_b`` (no complex parts to drop)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected two (N, D) feature sets of one width, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"each feature set needs at least 2 rows for a covariance, got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)  # (D, D) each
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # S_a^(1/2)
    middle = root_a @ cov_b @ root_a
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu_a - mu_b
    value = float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)
    return max(value, 0.0)  # rounding can leave -1e-12 where the distance is 0


class TorchScriptFeatures:
    """A TorchScript feature network loaded from ``path`` (``what`` names it in errors), called with ``call``."""

    def __init__(self, path: str | os.PathLike[str], what: str, call: dict[str, Any], *, device: str = "cpu") -> None:
        import torch

        path = Path(path).expanduser()
        if not path.is_file():
            raise InputError(f"{path}: {what} weights not found")
        try:
            self.model = torch.jit.load(str(path), map_location=device).eval()
        except Exception as e:  # noqa: BLE001 - any file torch cannot read as TorchScript: one clear error
            raise InputError(f"{path}: not a TorchScript {what} ({type(e).__name__}: "
                             f"{str(e).strip().splitlines()[0] if str(e).strip() else ''})") from None
        self.path, self.what, self.call, self.device = path, what, call, device

    def __call__(self, batch: Any) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = self.model(batch.to(self.device), **self.call)
        return out.detach().float().cpu().numpy().reshape(len(batch), -1)  # (N, D)


def _frames(video: Any) -> np.ndarray:
    """A video as a (T, H, W, 3) uint8 array; ValueError otherwise."""
    frames = np.asarray(video)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (T, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    return frames


def _frame_features(network: TorchScriptFeatures, videos: Iterable[Any], batch_size: int) -> np.ndarray:
    import torch

    out = []
    for video in videos:  # one video at a time: a long list of videos is never in memory at once
        frames = _frames(video)
        out += [network(torch.from_numpy(frames[i:i + batch_size]).permute(0, 3, 1, 2).float())  # (B, 3, H, W)
                for i in range(0, len(frames), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0))


def _video_features(network: TorchScriptFeatures, videos: Iterable[Any]) -> np.ndarray:
    import torch

    # one video a call: (1, 3, T, H, W), so clips of different lengths and sizes need no padding
    out = [network(torch.from_numpy(_frames(v)).permute(3, 0, 1, 2)[None].float()) for v in videos]
    return np.concatenate(out) if out else np.zeros((0, 0))


def _unavailable(reason: str) -> dict[str, Any]:
    return {"value": UNAVAILABLE, "reason": reason}


def _network(weights: str | os.PathLike[str] | TorchScriptFeatures, what: str, call: dict[str, Any],
             device: str) -> TorchScriptFeatures:
    return weights if isinstance(weights, TorchScriptFeatures) else TorchScriptFeatures(weights, what, call,
                                                                                         device=device)


def fid(generated: Iterable[Any], reference: Iterable[Any], weights: str | os.PathLike[str] | TorchScriptFeatures | None,
        *, device: str = "cpu", batch_size: int = 32) -> dict[str, Any]:
    """FID over the frames of ``generated`` and ``reference`` videos ((T, H, W, 3) uint8 each, any iterable: they
    are read one at a time), with the TorchScript Inception at ``weights``; ``{"value", "frames": [generated,
    reference]}``, or ``"unavailable"`` with the reason when there are no weights or no reference videos."""
    if weights is None:
        return _unavailable("no Inception weights given (a TorchScript inception-2015-12-05.pt, by path)")
    if isinstance(reference, Sequence) and not reference:
        return _unavailable("no reference videos given")
    network = _network(weights, "Inception", FID_CALL, device)
    a, b = _frame_features(network, generated, batch_size), _frame_features(network, reference, batch_size)
    if min(len(a), len(b)) < 2:
        return _unavailable(f"a Fréchet distance needs 2 frames a side at least, got {len(a)} and {len(b)}")
    return {"value": frechet_distance(a, b), "frames": [len(a), len(b)], "weights": str(network.path)}


def fvd(generated: Iterable[Any], reference: Iterable[Any], weights: str | os.PathLike[str] | TorchScriptFeatures | None,
        *, device: str = "cpu") -> dict[str, Any]:
    """FVD of ``generated`` against ``reference`` videos (any iterables) with the TorchScript I3D at ``weights``
    (see the module docstring); ``"unavailable"`` with the reason when there are no weights or no reference videos."""
    if weights is None:
        return _unavailable("no I3D weights given (a TorchScript i3d_torchscript.pt, by path)")
    if isinstance(reference, Sequence) and not reference:
        return _unavailable("no reference videos given")
    network = _network(weights, "I3D", FVD_CALL, device)
    a, b = _video_features(network, generated), _video_features(network, reference)
    if min(len(a), len(b)) < 2:
        return _unavailable(f"a Fréchet distance needs 2 videos a side at least, got {len(a)} and {len(b)}")
    return {"value": frechet_distance(a, b), "videos": [len(a), len(b)], "weights": str(network.path)}


class ClipScorer:
    """CLIP text and image embeddings from a transformers ``CLIPModel`` (a local folder or a hub id)."""

    def __init__(self, name: str, *, device: str = "cpu", model: Any = None, tokenizer: Any = None) -> None:
        from gpt4video.encoders.clip import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
        from gpt4video.encoders.hf_vision import (ImagePreprocessing, looks_local, preprocessing_from_config,
                                                  read_checkpoint_json)

        if model is None:
            from transformers import AutoTokenizer, CLIPModel

            if looks_local(name) and not Path(name).expanduser().is_dir():
                raise InputError(f"{name}: CLIP model folder not found")
            path = str(Path(name).expanduser()) if looks_local(name) else name
            try:
                model = CLIPModel.from_pretrained(path)
                tokenizer = AutoTokenizer.from_pretrained(path)
            except Exception as e:  # noqa: BLE001 - OSError, ValueError, hub errors: one clear message
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise InputError(f"cannot load CLIP model {name!r}: {first}") from None
        self.model, self.tokenizer, self.device = model.to(device).eval(), tokenizer, device
        size = int(model.config.vision_config.image_size)
        clip = ImagePreprocessing(resize=("shortest_edge", size), crop=(size, size), mean=OPENAI_CLIP_MEAN,
                                  std=OPENAI_CLIP_STD, resample="bicubic")  # CLIPImageProcessor's defaults
        data = read_checkpoint_json(name, "preprocessor_config.json") if name else None
        self.preprocessing = preprocessing_from_config(data, clip, name) if data else clip

    @staticmethod
    def _embedding(out: Any) -> Any:
        # get_*_features returns the projected embedding (a tensor, or an output whose pooler_output it is)
        return out if hasattr(out, "norm") else out.pooler_output

    def text(self, prompts: Sequence[str]) -> Any:
        """(N, D) unit text embeddings."""
        import torch

        tokens = self.tokenizer(list(prompts), padding=True, truncation=True,
                                max_length=self.model.config.text_config.max_position_embeddings, return_tensors="pt")
        with torch.no_grad():
            e = self._embedding(self.model.get_text_features(input_ids=tokens["input_ids"].to(self.device),
                                                             attention_mask=tokens["attention_mask"].to(self.device)))
        return e / e.norm(dim=-1, keepdim=True)

    def images(self, frames: np.ndarray) -> Any:
        """(T, D) unit image embeddings of (T, H, W, 3) uint8 frames."""
        import torch

        pixels = self.preprocessing.apply(torch.from_numpy(_frames(frames)).to(self.device))
        with torch.no_grad():
            e = self._embedding(self.model.get_image_features(pixel_values=pixels))
        return e / e.norm(dim=-1, keepdim=True)


def clipsim(prompts: Sequence[str], videos: Iterable[Any], model: str | ClipScorer | None, *,
            device: str = "cpu") -> dict[str, Any]:
    """Mean over videos of the mean over frames of cos(CLIP text of ``prompts[i]``, CLIP image of each frame of
    ``videos[i]``) (videos: any iterable, read one at a time); ``"unavailable"`` with the reason when no CLIP model
    is given."""
    if model is None:
        return _unavailable("no CLIP model given (a transformers CLIPModel folder or hub id)")
    if not prompts:
        return _unavailable("no videos")
    scorer = model if isinstance(model, ClipScorer) else ClipScorer(model, device=device)
    text = scorer.text(prompts)  # (N, D)
    per_video = []
    for i, video in enumerate(videos):
        if i >= len(prompts):
            raise ValueError(f"{len(prompts)} prompts but more videos")
        per_video.append(float((scorer.images(video) @ text[i]).mean()))
    if len(per_video) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(per_video)} videos")
    return {"value": float(np.mean(per_video)), "videos": len(per_video), "per_video": per_video}


# ============================================================================================
# A generator on a prompt set


PROMPTS_FILE = "prompts.jsonl"
VIDEOS_FOLDER = "videos"


def read_prompts(path: str | os.PathLike[str]) -> list[str]:
    """Prompts from a text file (one a line), a JSON list (of strings, or of objects with ``prompt_en`` as in
    VBench's ``VBench_full_info.json``, ``prompt`` or ``caption``) or a JSONL file of such objects."""
    import json

    from gpt4video.jsonl import read_jsonl

    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: prompt file not found")
    if path.suffix == ".jsonl":
        rows: list[Any] = list(read_jsonl(path, what="prompt row"))
    elif path.suffix == ".json":
        try:
            rows = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"{path}: not a readable JSON file ({e})") from None
        if not isinstance(rows, list):
            raise InputError(f"{path}: expected a JSON list of prompts, got {type(rows).__name__}")
    else:
        try:
            return [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: not a readable text file ({e})") from None
    prompts = []
    for i, row in enumerate(rows):
        value = row if isinstance(row, str) else next(
            (row[k] for k in ("prompt_en", "prompt", "caption") if isinstance(row, dict) and k in row), None)
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{path}: item {i} is neither a prompt nor an object with 'prompt_en', 'prompt' or "
                             "'caption'")
        prompts.append(value.strip())
    return prompts


def evaluate_t2v(generator: Any, prompts: Sequence[str], out_dir: str | os.PathLike[str], *,
                 references: Sequence[str] = (), num_frames: int = 16, size: int = 256, seed: int = 0,
                 fid_weights: str | None = None, fvd_weights: str | None = None, clip_model: str | None = None,
                 device: str = "cpu", progress: bool = True, generator_name: str | None = None) -> dict[str, Any]:
    """Render every prompt with ``generator`` into ``OUT/videos/NNNNN.mp4`` (a rerun keeps the videos already
    there), then FID and FVD against the ``references`` (video paths) and CLIPSIM of the prompts, each with the
    weights given or ``"unavailable"``. Prompt ``i`` is rendered with seed ``seed + i``."""
    from tqdm.auto import tqdm

    from gpt4video.evaluation.benchmarks import claim_folder
    from gpt4video.jsonl import jsonl_text
    from gpt4video.video import load_video, write_video

    out = claim_folder(out_dir, PROMPTS_FILE, jsonl_text({"prompt": p} for p in prompts), VIDEOS_FOLDER, "videos")
    folder = out / VIDEOS_FOLDER
    folder.mkdir(exist_ok=True)
    paths, errors = [], []
    for i, prompt in enumerate(tqdm(prompts, desc="generate", unit="video", disable=not progress)):
        path = folder / f"{i:05d}.mp4"
        if not path.is_file():
            try:
                write_video(path, generator(prompt, num_frames=num_frames, height=size, width=size, seed=seed + i))
            except InputError as e:  # a prompt the backend cannot draw: reported, left out
                errors.append({"index": i, "prompt": prompt, "error": str(e)})
                continue
        paths.append((i, str(path)))
    # Videos are decoded as each metric reads them, one at a time, so thousands of clips fit in memory.
    def generated() -> Iterable[np.ndarray]:
        return (load_video(p, num_frames).frames for _, p in paths)

    def reference() -> Iterable[np.ndarray]:
        return (load_video(p, num_frames, max_side=512).frames
                for p in tqdm(references, desc="references", unit="video", disable=not progress))

    done = [prompts[i] for i, _ in paths]
    real: Any = reference if references else list  # no references: an empty list, which FID/FVD report as such
    return {
        "generator": generator_name, "prompts": len(prompts), "generated": len(paths), "references": len(references),
        "settings": {"num_frames": num_frames, "size": size, "seed": seed},
        "metrics": {"FID": fid(generated(), real(), fid_weights, device=device),
                    "FVD": fvd(generated(), real(), fvd_weights, device=device),
                    "CLIPSIM": clipsim(done, generated(), clip_model, device=device)},
        "generation_errors": errors[:10], "videos": str(folder),
    }


def format_t2v_markdown(results: dict[str, Any]) -> str:
    """The results of :func:`evaluate_t2v` as a short Markdown report."""
    m = results["metrics"]
    cell = (lambda r: r["value"] if isinstance(r["value"], str) else f"{r['value']:.4f}")
    lines = [f"# Text-to-video metrics ({results['generator']})", "",
             f"- prompts: {results['prompts']}, videos made: {results['generated']}, reference videos: "
             f"{results['references']}; videos in `{results['videos']}`", "",
             "| FID (frames) | FVD | CLIPSIM |", "| ---: | ---: | ---: |",
             f"| {cell(m['FID'])} | {cell(m['FVD'])} | {cell(m['CLIPSIM'])} |", ""]
    lines += [f"- {name} unavailable: {r['reason']}" for name, r in m.items() if r["value"] == UNAVAILABLE]
    return "\n".join(lines) + "\n"
