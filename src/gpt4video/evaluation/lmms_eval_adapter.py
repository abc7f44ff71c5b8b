"""A model adapter for lmms-eval (``pip install lmms-eval``; not a dependency of this package), so its video tasks
can run our models::

    lmms-eval --model gpt4video --model_args model=smol,device=cpu,max_new_tokens=64 --tasks videomme

The package registers the adapter through the ``lmms_eval.models`` entry point (:func:`manifest`). Each
request is one fresh conversation: the task's visuals (video paths, image paths, or PIL images, saved as PNG
files first) with the task's context as the question, decoded with the task's ``max_new_tokens``,
``temperature`` and ``until`` stop strings. Only generation is supported (no log-likelihood tasks).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

try:
    from lmms_eval.api.model import lmms
    from lmms_eval.api.registry import register_model
except ImportError as e:  # pragma: no cover - only where lmms-eval is missing
    raise ImportError(f"the lmms-eval adapter needs lmms-eval: pip install lmms-eval ({e})") from None

from gpt4video.config import GenerationParams, LoadConfig

__all__ = ["GPT4VideoLMM", "manifest"]


def manifest() -> Any:
    """The lmms-eval model manifest of this adapter (the ``lmms_eval.models`` entry point)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id="gpt4video", simple_class_path=f"{__name__}.GPT4VideoLMM")


@register_model("gpt4video")
class GPT4VideoLMM(lmms):
    """lmms-eval's ``lmms`` over a GPT4Video :class:`~gpt4video.pipeline.Assistant`.

    ``model``, ``device``, ``dtype``, ``engine``, ``gguf``: as ``gpt4video chat`` takes them (LoadConfig);
    ``max_new_tokens``: when a task gives none.
    """

    def __init__(self, model: str = "smol", device: str = "cpu", dtype: str = "float32", engine: str = "transformers",
                 gguf: str = "adapter", max_new_tokens: int | str = 128, batch_size: int | str = 1,
                 **kwargs: Any) -> None:
        super().__init__()
        from gpt4video.pipeline import Assistant

        if int(batch_size) != 1:
            raise ValueError("the gpt4video adapter answers one request at a time (batch_size=1)")
        load = LoadConfig(model=model, device=device, dtype=dtype, engine=engine, gguf=gguf)
        self.assistant = Assistant.from_pretrained(load.model, **load.load_options())
        self.max_new_tokens = int(max_new_tokens)
        self._images = tempfile.TemporaryDirectory(prefix="gpt4video-lmms-")

    def _visual_paths(self, visuals: Any) -> list[str]:
        """Paths of the task's visuals (lists flattened; PIL images written as PNG files)."""
        items = visuals if isinstance(visuals, (list, tuple)) else [visuals]
        paths = []
        for item in items:
            if item is None:
                continue
            if isinstance(item, (list, tuple)):
                paths += self._visual_paths(item)
            elif isinstance(item, (str, os.PathLike)):
                paths.append(str(item))
            elif hasattr(item, "save"):  # a PIL image
                path = os.path.join(self._images.name, f"{len(os.listdir(self._images.name))}.png")
                item.convert("RGB").save(path)
                paths.append(path)
            else:
                raise ValueError(f"the gpt4video adapter cannot read a visual of type {type(item).__name__}")
        return paths

    def _params(self, gen_kwargs: dict[str, Any]) -> GenerationParams:
        until = gen_kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        return GenerationParams(max_new_tokens=int(gen_kwargs.get("max_new_tokens") or self.max_new_tokens),
                                temperature=float(gen_kwargs.get("temperature") or 0.0),
                                stop=tuple(dict.fromkeys([*GenerationParams().stop, *until])))

    def generate_until(self, requests: list[Any]) -> list[str]:
        from tqdm.auto import tqdm

        answers = []
        for request in tqdm(requests, desc="gpt4video", disable=self.rank != 0):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            visuals = doc_to_visual(self.task_dict[task][split][doc_id])
            self.assistant.reset()
            text = self.assistant.ask(context, self._visual_paths(visuals), self._params(gen_kwargs)).consume().text
            answers.append(text)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
        return answers

    def generate_until_multi_round(self, requests: list[Any]) -> list[str]:
        return self.generate_until(requests)

    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        raise NotImplementedError("the gpt4video adapter supports generation tasks only (no log-likelihood)")
