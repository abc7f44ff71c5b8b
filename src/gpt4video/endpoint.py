"""A small client of OpenAI-compatible chat endpoints (``POST {base_url}/chat/completions``), for the GPT judge
of the benchmarks and the writer of the dialogue recipe. Standard library only; every request has a timeout.

Two kinds of failure: :class:`AttemptFailed` (one request went wrong: an HTTP error such as 500 or 429, a
timeout, a body that is not a chat completion; worth retrying) and :class:`Unreachable` (the endpoint cannot be
used at all: nothing listening, an unknown host, HTTP 401/403/404; an :class:`~gpt4video.errors.InputError`,
so the command stops with one line).
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from gpt4video.errors import InputError

__all__ = ["AttemptFailed", "ChatEndpoint", "Unreachable", "check_reachable"]


class AttemptFailed(Exception):
    """One request failed; asking again may work."""


class Unreachable(InputError):
    """The endpoint cannot be used at all."""


class ChatEndpoint:
    """Chat completions of ``model`` at ``base_url`` (``what`` names the endpoint in errors: "the judge")."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 60.0,
                 what: str = "the endpoint") -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key, self.timeout, self.what = model, api_key, timeout, what

    def complete(self, messages: list[dict[str, str]], **params: Any) -> str:
        """The content of the reply to ``messages`` (``params``: temperature, ...); AttemptFailed or Unreachable."""
        body = json.dumps({"model": self.model, "messages": messages, **params}).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            detail = e.read()[:200].decode("utf-8", "replace").strip()
            if e.code in (401, 403, 404):
                raise Unreachable(f"{self.what} is unreachable: HTTP {e.code} from {self.url}"
                                  + (f": {detail}" if detail else "")) from None
            raise AttemptFailed(f"HTTP {e.code}" + (f": {detail}" if detail else "")) from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, TimeoutError):
                raise AttemptFailed(f"no reply within {self.timeout:g} s") from None
            raise Unreachable(f"{self.what} is unreachable: cannot reach {self.url}: {e.reason}") from None
        except TimeoutError:
            raise AttemptFailed(f"no reply within {self.timeout:g} s") from None
        except OSError as e:  # a connection reset mid-reply
            raise AttemptFailed(f"{type(e).__name__}: {e}") from None
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise AttemptFailed("the endpoint's reply is not a chat completion") from None
        if not isinstance(content, str):
            raise AttemptFailed("the endpoint's reply has no text content")
        return content


def check_reachable(base_url: str, timeout: float = 10.0, what: str = "the endpoint", flag: str = "--base-url") -> None:
    """Unreachable unless something accepts connections at ``base_url``'s host and port (checked before long
    work, so a typo in the URL does not wait for it)."""
    url = urllib.parse.urlsplit(base_url)
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        raise InputError(f"{flag} {base_url!r} has a bad port") from None
    if not url.hostname:
        raise InputError(f"{flag} {base_url!r} names no host")
    try:
        socket.create_connection((url.hostname, port), timeout=min(timeout, 10.0)).close()
    except OSError as e:
        raise Unreachable(f"{what} is unreachable: cannot connect to {url.hostname}:{port} "
                          f"({e.strerror or e})") from None
