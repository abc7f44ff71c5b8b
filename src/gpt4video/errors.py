"""Exceptions.

Every error a user can cause by what they pass in (a file, a flag, a config) is an ``InputError``:
the CLI prints its message on one line and exits with status 2. Anything else is an internal error.
"""

from __future__ import annotations


class GPT4VideoError(Exception):
    """Base class of every error this package raises on purpose."""


class InputError(GPT4VideoError, ValueError):
    """Bad input from the user: a file, an argument or a config value. The message names the problem."""


class VideoError(InputError):
    """A video (or image) that cannot be read. ``path`` is the file, ``reason`` what is wrong with it."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class AudioError(InputError):
    """An audio file, or a video's audio track, that cannot be read. ``path`` is the file, ``reason`` what is wrong."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ConfigError(InputError):
    """A configuration value that is missing, of the wrong type or out of range."""


class ModelLoadError(InputError):
    """A model (preset, directory, hub id or file) that cannot be found or loaded."""
