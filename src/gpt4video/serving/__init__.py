"""Serving: an OpenAI-compatible API and a chat page in one server (``gpt4video serve``).

Needs the ``serve`` extra (``pip install 'gpt4video[serve]'``): fastapi, uvicorn, gradio, python-multipart.
Import :mod:`gpt4video.serving.app` for :func:`create_app` and :func:`serve`.
"""

from .config import ServeConfig

__all__ = ["ServeConfig"]
