"""The server's settings (``gpt4video serve`` fills them from its options)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ConfigBase
from ..errors import ConfigError

MB = 1024 * 1024
TEXT_MARGIN = 256 * 1024  # a chat body's room for text and JSON besides its base64 video


@dataclass
class ServeConfig(ConfigBase):
    """How ``gpt4video serve`` runs.

    model_name: the id clients pass as ``model`` (and ``GET /v1/models`` lists).
    api_key: when set, every ``/v1`` request needs ``Authorization: Bearer <key>`` and the web page
        asks for it (as the password); when None the server is open.
    storage_dir: where uploaded and generated files live (None: a temporary directory removed at exit).
    max_upload_mb: the largest video accepted, as an upload, a data: URL or a fetched URL.
    max_body_mb: the largest chat request body (None: one video at max_upload_mb as base64, 4/3 of
        it, plus 256 KiB of text); a larger body is answered 413 as soon as it passes the limit.
    max_video_seconds: the longest video accepted.
    max_videos: the most videos in one request (all its messages together).
    queue_size: requests that may wait for the model; one more is answered 429 at once.
    max_batch: requests answered at once (their replies decoded together); more wait in the queue.
    max_tokens: the largest max_tokens a request may ask for; default_max_tokens when it asks none.
    file_ttl_seconds: uploaded and generated files are deleted this long after they were made.
    allow_url_fetch: fetch http(s) video URLs given in messages (off: no request leaves the server).
    request_timeout: seconds a request may take in all (waiting included) before it is answered 504.
    video_frames, video_size: the shape of generated videos.
    web: serve the chat page at ``/``.
    shutdown_timeout: seconds a graceful shutdown waits for requests in flight.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    model_name: str = "smol"
    api_key: str | None = None
    storage_dir: str | None = None
    max_upload_mb: float = 64.0
    max_body_mb: float | None = None
    max_video_seconds: float = 600.0
    max_videos: int = 8
    queue_size: int = 8
    max_batch: int = 8
    max_tokens: int = 512
    default_max_tokens: int = 128
    max_prompt_tokens: int | None = None
    file_ttl_seconds: float = 3600.0
    allow_url_fetch: bool = False
    request_timeout: float = 600.0
    video_frames: int = 16
    video_size: int = 256
    web: bool = True
    shutdown_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, got {self.port!r}")
        if not self.model_name or not isinstance(self.model_name, str):
            raise ConfigError("model_name must be a non-empty string")
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key.strip()):
            raise ConfigError("the API key must not be empty")
        for name in ("max_upload_mb", "max_body_mb", "max_video_seconds", "file_ttl_seconds", "request_timeout",
                     "shutdown_timeout"):
            value = getattr(self, name)
            if value is None and name == "max_body_mb":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"{name} must be a number > 0, got {value!r}")
        if self.max_prompt_tokens is not None and (isinstance(self.max_prompt_tokens, bool)
                                                   or not isinstance(self.max_prompt_tokens, int)
                                                   or self.max_prompt_tokens < 1):
            raise ConfigError(f"max_prompt_tokens must be an integer >= 1, got {self.max_prompt_tokens!r}")
        for name in ("max_videos", "queue_size", "max_batch", "max_tokens", "default_max_tokens", "video_frames",
                     "video_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
        if self.default_max_tokens > self.max_tokens:
            raise ConfigError(f"default_max_tokens ({self.default_max_tokens}) exceeds max_tokens ({self.max_tokens})")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MB)

    @property
    def max_body_bytes(self) -> int:
        """The largest chat request body: max_body_mb, or one video as base64 (4/3 of its size) plus text."""
        if self.max_body_mb is not None:
            return int(self.max_body_mb * MB)
        return int(self.max_upload_bytes * 4 / 3) + TEXT_MARGIN
