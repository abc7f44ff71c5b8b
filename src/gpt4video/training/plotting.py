"""The loss curve of a run, drawn from its JSONL log into a PNG."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..jsonl import read_jsonl


def plot_loss_curve(log_path: str | os.PathLike[str], png_path: str | os.PathLike[str]) -> Path | None:
    """Training loss (and evaluation loss, if logged) against the step. Returns None if there is nothing to draw."""
    log_path, png_path = Path(log_path), Path(png_path)
    if not log_path.is_file():
        return None
    train, evals = [], []
    for row in read_jsonl(log_path, what="log row"):
        if "loss" in row:
            train.append((row["step"], row["loss"]))
        if "eval_loss" in row:
            evals.append((row["step"], row["eval_loss"]))
    if not train:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (assistant tokens)")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=png_path.parent, suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, png_path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return png_path
