"""Errors the server answers with: each is an HTTP status plus an OpenAI-style error object.

    {"error": {"message": "...", "type": "invalid_request_error", "param": "messages", "code": null}}

They are :class:`~gpt4video.errors.InputError` subclasses, so code shared with the command line
treats them as bad input too.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError


class ServeError(InputError):
    """A request the server refuses. ``status`` is the HTTP status; the rest fills the error object."""

    status: int = 400
    type: str = "invalid_request_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(message: str, *, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The JSON body OpenAI's API answers an error with."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class BadRequest(ServeError):
    status = 400


class Unauthorized(ServeError):
    status = 401
    code = "invalid_api_key"


class NotFound(ServeError):
    status = 404
    code = "not_found"


class TooLarge(ServeError):
    status = 413
    code = "payload_too_large"


class Busy(ServeError):
    """The request queue is full: try again shortly (429 with Retry-After)."""

    status = 429
    type = "rate_limit_error"
    code = "queue_full"


class Unavailable(ServeError):
    """The server is shutting down (or not ready)."""

    status = 503
    type = "server_error"
    code = "unavailable"


class TimedOut(ServeError):
    status = 504
    type = "server_error"
    code = "timeout"
