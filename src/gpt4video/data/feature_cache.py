"""An on-disk cache of the frozen frame encoder's output, one file per clip.

The encoder is frozen, so the features F_v (T, N, D) of a clip never change for a given file,
encoder and sampling. Training for many epochs then decodes and encodes each clip once. Clips are
read through the processor's :class:`~gpt4video.processing.VideoSampling` (a model's own, or the one
given with an encode function), so the cache decodes exactly what the model would.

Key
    ``sha256`` of a canonical JSON record of: the sha256 of the video file's bytes, the encoder
    identity, and the sampling's ``num_frames`` (T) and ``frame_size`` (the longest side frames
    are scaled to while decoding). For a :class:`~gpt4video.modeling.GPT4Video` the encoder
    identity is the encoder's class (module and name), its config (``config.encoder.to_dict()``
    without ``batch_size`` and ``num_threads``, which do not change the output), the dtype of its
    output and, for a Hugging Face vision tower, its image preprocessing (which the checkpoint's
    ``preprocessor_config.json`` sets). Renaming or moving a file keeps its key; editing it changes the key.

Layout
    ``{directory}/{key[:2]}/{key}.safetensors``, holding one tensor ``features`` (T, N, D), on
    the CPU, in the encoder's dtype, with the key's parts as metadata. Files are written
    atomically (a temporary file in the same folder, then ``os.replace``), so concurrent
    writers (several training processes) and crashes never leave a half-written entry. A file
    that cannot be read or does not match its key is recomputed and overwritten.

Typical use::

    cache = FeatureCache("~/.cache/gpt4video/features", model)
    cache.precompute(all_paths)                # optional: fill it up front, with a progress bar
    features = cache.get_many(batch_paths)     # (V, T, N, D) on model.device
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gpt4video.errors import InputError, VideoError
from gpt4video.processing import VideoSampling

logger = logging.getLogger(__name__)

__all__ = ["CACHE_VERSION", "CacheStats", "FeatureCache", "PrecomputeResult", "encoder_identity"]

#: Part of every key; bump it when the stored layout changes.
CACHE_VERSION = 1
_TENSOR = "features"
#: Encoder config fields that change how fast, not what, the encoder computes.
_RUNTIME_FIELDS = ("batch_size", "num_threads")
_CHUNK = 1 << 20

EncodeFn = Callable[[list[np.ndarray]], torch.Tensor]


@dataclass
class CacheStats:
    """Counts since the cache was made: ``hits`` (clips served from disk), ``misses`` (clips
    decoded and encoded), ``corrupt`` (cache files found unreadable and recomputed),
    ``write_errors`` (entries that could not be stored) and ``hashed`` (files hashed)."""

    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    write_errors: int = 0
    hashed: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


@dataclass
class PrecomputeResult:
    """What :meth:`FeatureCache.precompute` did: clips ``computed`` and ``cached`` (already there),
    and the ``failed`` ones as ``(path, reason)`` (only with ``skip_errors=True``)."""

    computed: int = 0
    cached: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def encoder_identity(encoder_config: Any, encoder: Any = None, *, dtype: torch.dtype | None = None) -> str:
    """The encoder part of a cache key: class, config (without runtime-only fields), output dtype and, for an
    encoder that has one (the Hugging Face towers), its image preprocessing."""
    config = encoder_config.to_dict() if hasattr(encoder_config, "to_dict") else dict(encoder_config)
    for name in _RUNTIME_FIELDS:
        config.pop(name, None)
    record = {
        "class": f"{type(encoder).__module__}.{type(encoder).__qualname__}" if encoder is not None else None,
        "config": config,
        "dtype": str(dtype) if dtype is not None else None,
    }
    preprocessing = getattr(encoder, "preprocessing", None)
    if preprocessing is not None:  # only where there is one, so the other encoders' keys stay as they were
        record["preprocessing"] = preprocessing.describe()
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)


class FeatureCache:
    """Cache of per-clip encoder features ``(T, N, D)`` on disk (see the module docstring).

    Args:
        directory: Where the cache lives (created if needed; ``~`` expanded).
        source: A :class:`~gpt4video.modeling.GPT4Video` (its ``encode_frames``, ``config``,
            encoder and processor give everything), or an encode function ``list of (T, H, W, 3)
            uint8 → (V, T, N, D)``; a function also needs ``identity`` and ``sampling``.
        identity: For an encode function: a string that changes whenever its output would.
        sampling: For an encode function: how clips are read (frame count and size). A model's
            clips are read the way its processor reads them (``model.processor.sampling``).
        device: Where :meth:`get_many` returns features (default: the model's device, else CPU).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        source: Any,
        *,
        identity: str | None = None,
        sampling: VideoSampling | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        self.directory = Path(directory).expanduser()
        if hasattr(source, "encode_frames") and hasattr(source, "config"):
            config = source.config
            self._encode: EncodeFn = source.encode_frames
            encoder = getattr(source, "encoder", None)
            self.identity = identity or encoder_identity(config.encoder, encoder, dtype=getattr(encoder, "dtype", None))
            if sampling is not None and sampling != source.processor.sampling:
                raise InputError("a FeatureCache over a model reads clips the way its processor does; "
                                 "sampling= is only for an encode function")
            sampling = source.processor.sampling
            if device is None:
                device = getattr(source, "device", "cpu")
        elif callable(source):
            if identity is None or sampling is None:
                raise InputError("a FeatureCache over an encode function needs identity= and sampling=")
            self._encode = source
            self.identity = identity
        else:
            raise InputError(f"FeatureCache needs a GPT4Video or an encode function, got {type(source).__name__}")
        if not isinstance(sampling, VideoSampling):
            raise InputError(f"sampling must be a VideoSampling, got {type(sampling).__name__}")
        num_frames, frame_size = sampling.num_frames, sampling.frame_size
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
            raise InputError(f"num_frames must be a positive integer, got {num_frames!r}")
        if frame_size is not None and (isinstance(frame_size, bool) or not isinstance(frame_size, int) or frame_size < 1):
            raise InputError(f"frame_size must be a positive integer or None, got {frame_size!r}")
        self.sampling = sampling
        self.device = torch.device(device if device is not None else "cpu")
        self.stats = CacheStats()
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._feature_shape: tuple[int, ...] | None = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"{self.directory}: cannot create the feature cache folder ({e.strerror or e})") from None

    @property
    def num_frames(self) -> int:
        return self.sampling.num_frames

    @property
    def frame_size(self) -> int | None:
        return self.sampling.frame_size

    def __repr__(self) -> str:
        return (f"FeatureCache({str(self.directory)!r}, num_frames={self.num_frames}, frame_size={self.frame_size}, "
                f"hits={self.stats.hits}, misses={self.stats.misses})")

    # -- keys ------------------------------------------------------------------------------------
    def file_hash(self, path: str | os.PathLike[str]) -> str:
        """sha256 of the file's bytes; remembered per (path, size, mtime) for this cache's lifetime."""
        from gpt4video.video.decode import check_file

        file = Path(os.path.abspath(Path(path).expanduser()))
        check_file(file)  # a clear VideoError for a missing, empty or unreadable file
        st = file.stat()
        memo = (str(file), st.st_size, st.st_mtime_ns)
        digest = self._hashes.get(memo)
        if digest is None:
            h = hashlib.sha256()
            try:
                with file.open("rb") as handle:
                    while chunk := handle.read(_CHUNK):
                        h.update(chunk)
            except OSError as e:
                raise VideoError(file, f"cannot be read ({e.strerror or e})") from None
            digest = self._hashes[memo] = h.hexdigest()
            self.stats.hashed += 1
        return digest

    def _key_record(self, file_sha: str) -> dict[str, Any]:
        # The sampling by its values, not its owner: clips read the same way share entries.
        return {
            "version": CACHE_VERSION, "file_sha256": file_sha, "encoder": self.identity,
            "num_frames": self.num_frames, "frame_size": self.frame_size,
        }

    def key(self, path: str | os.PathLike[str]) -> str:
        """The cache key of a video file (hex sha256)."""
        record = json.dumps(self._key_record(self.file_hash(path)), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(record.encode("utf-8")).hexdigest()

    def entry_path(self, key: str) -> Path:
        """Where the entry of ``key`` is stored."""
        return self.directory / key[:2] / f"{key}.safetensors"

    def __contains__(self, path: object) -> bool:
        """Whether the clip at ``path`` has a usable entry (False for a file that cannot be read)."""
        if not isinstance(path, (str, os.PathLike)):
            return False
        try:
            key = self.key(path)
        except VideoError:
            return False
        return self._read(key, header_only=True) is not None

    # -- reading and writing entries -------------------------------------------------------------
    def _read(self, key: str, *, header_only: bool = False) -> torch.Tensor | bool | None:
        """The stored features of ``key`` (or True with ``header_only``), or None when absent or
        unusable (a corrupt entry is logged and counted)."""
        from safetensors import safe_open

        file = self.entry_path(key)
        if not file.is_file():
            return None
        try:
            with safe_open(str(file), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("key") != key or _TENSOR not in f.keys():
                    raise ValueError("does not hold this key's features")
                if header_only:
                    shape = f.get_slice(_TENSOR).get_shape()
                    tensor = None
                else:
                    tensor = f.get_tensor(_TENSOR)
                    shape = list(tensor.shape)
            if len(shape) != 3 or shape[0] != self.num_frames:
                raise ValueError(f"features of shape {tuple(shape)}, expected ({self.num_frames}, N, D)")
        except Exception as e:  # noqa: BLE001 - any unreadable file is recomputed, never a crash
            self.stats.corrupt += 1
            logger.warning("feature cache entry %s is unusable (%s); it will be recomputed", file, e)
            return None
        if tensor is None:
            return True
        self._feature_shape = tuple(tensor.shape[1:])
        return tensor

    def _write(self, key: str, file_sha: str, features: torch.Tensor, source: str) -> None:
        from safetensors.torch import save

        target = self.entry_path(key)
        metadata = {k: str(v) for k, v in self._key_record(file_sha).items()}
        metadata.update(key=key, source=source)
        data = save({_TENSOR: features.detach().to("cpu").contiguous()}, metadata=metadata)
        tmp_name = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{key}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, target)
            tmp_name = None
        except OSError as e:
            self.stats.write_errors += 1
            logger.warning("could not store features of %s in the cache at %s (%s)", source, target, e.strerror or e)
        finally:
            if tmp_name is not None:
                try:
                    os.unlink(tmp_name)
                except OSError:
                    pass

    def _compute(self, items: Sequence[tuple[str, str, str]]) -> list[torch.Tensor]:
        """Decode and encode ``(path, file_sha, key)`` items in one encoder batch; store each.
        Returns the features (T, N, D) of each, on the CPU."""
        frames = [self.sampling.load(path).frames for path, _, _ in items]
        with torch.no_grad():
            features = self._encode(frames)  # (V, T, N, D)
        if features.ndim != 4 or features.shape[:2] != (len(items), self.num_frames):
            raise InputError(
                f"the encoder returned features of shape {tuple(features.shape)}, expected "
                f"({len(items)}, {self.num_frames}, N, D)"
            )
        features = features.detach().to("cpu")
        out = []
        for (path, sha, key), feats in zip(items, features):
            feats = feats.contiguous()  # (T, N, D)
            self._write(key, sha, feats, path)
            out.append(feats)
        self.stats.misses += len(items)
        self._feature_shape = tuple(features.shape[2:])
        return out

    # -- public API ------------------------------------------------------------------------------
    def get(self, path: str | os.PathLike[str]) -> torch.Tensor:
        """Features (T, N, D) of one clip."""
        return self.get_many([path])[0]

    def get_many(self, paths: Sequence[str | os.PathLike[str]]) -> torch.Tensor:
        """Features (V, T, N, D) of ``paths``, in order, on :attr:`device`.

        Cached clips are read from disk without decoding; the missing ones are decoded and encoded
        together in one encoder batch and stored. A path given twice is computed once.

        Raises:
            VideoError: a video file is missing or cannot be decoded.
        """
        names = [os.path.abspath(Path(p).expanduser()) for p in paths]
        if not names:
            n, d = self._feature_shape or (0, 0)
            return torch.empty(0, self.num_frames, n, d, device=self.device)
        keys = [self.key(p) for p in names]
        found: dict[str, torch.Tensor] = {}
        todo: dict[str, tuple[str, str, str]] = {}
        for name, key in zip(names, keys):
            if key in found or key in todo:
                continue
            tensor = self._read(key)
            if isinstance(tensor, torch.Tensor):
                found[key] = tensor
            else:
                todo[key] = (name, self.file_hash(name), key)
        if todo:
            for key, feats in zip(todo, self._compute(list(todo.values()))):
                found[key] = feats
        self.stats.hits += len(names) - len(todo)
        return torch.stack([found[k] for k in keys]).to(self.device)  # (V, T, N, D)

    def precompute(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        progress: bool = True,
        batch_size: int = 8,
        skip_errors: bool = False,
    ) -> PrecomputeResult:
        """Make sure every clip of ``paths`` is cached, encoding ``batch_size`` clips at a time.

        With ``skip_errors`` a clip that cannot be read is logged and listed in the result's
        ``failed`` instead of raising :class:`~gpt4video.errors.VideoError`.
        """
        from tqdm.auto import tqdm

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        names = list(dict.fromkeys(os.path.abspath(Path(p).expanduser()) for p in paths))
        result = PrecomputeResult()
        pending: list[tuple[str, str, str]] = []
        seen: set[str] = set()

        def fail(name: str, error: Exception) -> None:
            if not skip_errors:
                raise error
            reason = error.reason if isinstance(error, VideoError) else str(error)
            logger.warning("feature cache: skipping %s (%s)", name, reason)
            result.failed.append((name, reason))

        def flush(bar: Any) -> None:
            if not pending:
                return
            try:
                self._compute(pending)
                result.computed += len(pending)
            except VideoError:  # find the bad clip(s) one at a time, keep the others
                if not skip_errors:
                    raise
                for item in pending:
                    try:
                        self._compute([item])
                        result.computed += 1
                    except VideoError as e:
                        fail(item[0], e)
            bar.update(len(pending))
            pending.clear()

        with tqdm(total=len(names), desc="encoding clips", unit="clip", disable=not progress) as bar:
            for name in names:
                try:
                    sha = self.file_hash(name)
                    key = self.key(name)
                except VideoError as e:
                    fail(name, e)
                    bar.update(1)
                    continue
                if key in seen or self._read(key, header_only=True) is not None:
                    seen.add(key)
                    result.cached += 1
                    bar.update(1)
                    continue
                seen.add(key)
                pending.append((name, sha, key))
                if len(pending) >= batch_size:
                    flush(bar)
            flush(bar)
        return result
