"""The logits processor through which vLLM applies each request's :class:`~.vllm.ReplyRules`.

vLLM loads it by name (``gpt4video.engines.vllm_logits:ReplyRulesProcessor``) in its engine process; this
module imports vLLM, so only that process and the vllm engine import it. vLLM's adapter class keeps one
per-request function per row of the batch and calls it with the reply's tokens so far; a request without
rules (``extra_args`` lacks them) is left alone. The rules change the argmax (blocked tokens), so vLLM runs
them before its penalties, temperature and top-p, also for greedy requests.
"""

from __future__ import annotations

from typing import Any

from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

from .vllm import ReplyRules


class ReplyRulesProcessor(AdapterLogitsProcessor):
    """Applies the :class:`ReplyRules` that a request carries in ``SamplingParams.extra_args``."""

    def is_argmax_invariant(self) -> bool:
        return False

    def new_req_logits_processor(self, params: Any) -> ReplyRules | None:
        return ReplyRules.from_extra_args(params.extra_args)
