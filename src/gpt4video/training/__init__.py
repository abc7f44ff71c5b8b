"""Training: stage 1 (abstractor) and stage 2 (LoRA), launched with accelerate."""

from .trainer import Trainer, TrainResult, train

__all__ = ["Trainer", "TrainResult", "train"]
