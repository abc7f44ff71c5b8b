"""The server's settings (``gpt4video serve`` takes each ``option`` field as an option of the same name)."""

from __future__ import annotations

from dataclasses import field

from ..config import ConfigBase, Count, Flag, VideoConfig, config_class, option
from ..errors import ConfigError

MB = 1024 * 1024
TEXT_MARGIN = 256 * 1024  # a chat body's room for text and JSON besides its base64 video


@config_class
class ServeConfig(ConfigBase):
    """How ``gpt4video serve`` runs."""

    host: str = option("127.0.0.1", "address to listen on (127.0.0.1: this machine only)", min_length=1)
    port: int = option(8000, "port to listen on (0: any free port)", ge=0, le=65535, strict=True)
    model_name: str = option("smol", "the model id clients pass as `model` and GET /v1/models lists (serve's "
                             "default: the name of --model)", flag="--served-model-name", min_length=1)
    api_key: str | None = option(None, "require 'Authorization: Bearer KEY' on /v1, and KEY as the page's password "
                                 "(serve's default: $GPT4VIDEO_API_KEY; unset: no key)", pattern=r"\S")
    storage_dir: str | None = option(None, "keep uploaded and generated files here (default: a temporary directory "
                                     "removed at exit)")
    max_upload_mb: float = option(64.0, "largest video accepted, as an upload, a data: URL or a fetched URL", gt=0)
    max_body_mb: float | None = option(None, "largest chat request body; a larger one is answered 413 as soon as it "
                                       "passes the limit (default: 4/3 of max_upload_mb, one base64 video, plus 0.25 "
                                       "for text)", gt=0)
    max_video_seconds: float = option(600.0, "longest video accepted", gt=0)
    max_videos: Count = option(8, "most videos in one request (all its messages together)")
    queue_size: Count = option(8, "requests that may wait for the model; one more is answered 429 at once")
    max_batch: Count = option(8, "requests answered at once, their replies decoded together")
    max_tokens: Count = option(512, "largest max_tokens a request may ask for")
    #: max_tokens of a request that asks for none (None: 128, or max_tokens if that is smaller)
    default_max_tokens: Count | None = None
    max_prompt_tokens: Count | None = option(None, "longest prompt accepted, in tokens (default: the model's "
                                             "context less max_tokens)")
    file_ttl_seconds: float = option(3600.0, "seconds until uploaded and generated files are deleted",
                                     flag="--file-ttl", gt=0)
    request_timeout: float = option(600.0, "seconds a request may take, waiting included, before it is answered 504",
                                    gt=0)
    shutdown_timeout: float = option(10.0, "seconds a shutdown gives requests in flight before answering them 503 "
                                     "(waiting ones get 503 at once)", gt=0)
    allow_url_fetch: Flag = option(False, "fetch http(s) video URLs given in messages (off: the server never "
                                   "fetches a URL)")
    #: frames and size of generated videos (serve takes VideoConfig's --video-frames and --video-size)
    video: VideoConfig = field(default_factory=VideoConfig)
    #: width and height of generated images (serve takes ImageGeneratorConfig's --image-size)
    image_size: Count = 256
    web: Flag = option(True, "the chat page at / (--no-web: serve only the API)")

    def __post_init__(self) -> None:
        if self.default_max_tokens is None:
            self.default_max_tokens = min(128, self.max_tokens)
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
