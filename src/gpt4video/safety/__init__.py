"""Safety: checkers of text and frames (a registry), the policy that runs them at each stage, and
the audit log. Importing this package loads no model; checkers load theirs on first use.

>>> from gpt4video.safety import SafetyConfig, SafetyPolicy
>>> policy = SafetyPolicy(SafetyConfig(audit_log="runs/safety.jsonl")).load()
>>> decision = policy.check_input("Describe this video.", [frames])
>>> decision.allowed, decision.message
"""

from .base import CATEGORIES, CATEGORY_LABELS, CHECKERS, SafetyChecker, Verdict, category_label
from .frames import OpenNSFWFrameChecker
from .guards import LlamaGuardChecker, ShieldGemmaChecker, parse_llama_guard
from .layers import CHECKED_LAYERS, LAYER_TITLES, LAYERS
from .policy import AuditLog, Decision, SafetyConfig, SafetyPolicy
from .text import HarmfulRequestChecker, ProfanityChecker

__all__ = [
    "CATEGORIES",
    "CATEGORY_LABELS",
    "CHECKERS",
    "CHECKED_LAYERS",
    "LAYERS",
    "LAYER_TITLES",
    "AuditLog",
    "Decision",
    "HarmfulRequestChecker",
    "LlamaGuardChecker",
    "OpenNSFWFrameChecker",
    "ProfanityChecker",
    "SafetyChecker",
    "SafetyConfig",
    "SafetyPolicy",
    "ShieldGemmaChecker",
    "Verdict",
    "category_label",
    "parse_llama_guard",
]
