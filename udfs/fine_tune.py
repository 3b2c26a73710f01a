"""Fine-tune a cross-encoder's grade head on soft targets: plain torch, no Spark.

The loss is the cross-entropy between target grade distributions and the model's softmax
(``-sum_g t_g log p_g``), i.e. KL divergence up to the targets' constant entropy; with one-hot
targets it is ordinary cross-entropy. Gold labels are mostly grade 1 (a judge that always says 1
agrees with most of them), so with ``balance_grades`` each epoch draws rows with probability
``~ 1 / sqrt(count of the row's grade)`` and weighs each row's loss the same way: rare grades
are seen and count. Seeded: the same data, config and seed give the same model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from udfs.training import train_loop


@dataclass(frozen=True)
class FineTuneConfig:
    """The judge's fine-tuning knobs; values come from ``teacher.fine_tune`` in conf/local.yaml."""

    epochs: int
    batch_size: int
    learning_rate: float
    warmup_share: float
    seed: int
    max_length: int
    balance_grades: bool


def grade_weights(targets: np.ndarray) -> np.ndarray:
    """Per row, ``1 / sqrt(n_g)`` for the row's most likely grade ``g`` (``n_g`` rows share it),
    scaled to mean 1."""
    grade = np.asarray(targets).argmax(axis=1)
    counts = np.bincount(grade, minlength=np.shape(targets)[1]).astype(float)
    weights = 1.0 / np.sqrt(counts[grade])
    return weights / weights.mean()


def grade_balanced_batches(
    targets: np.ndarray, batch_size: int, balance: bool, rng: np.random.Generator
):
    """``(epoch_batches, weights)`` for :func:`udfs.training.train_loop`: each call of
    ``epoch_batches()`` yields one epoch's row indices in batches, drawn with probability
    ``~ weights`` (with replacement) when ``balance``, else a permutation; ``weights`` are
    :func:`grade_weights` (ones when not ``balance``)."""
    n = len(targets)
    weights = grade_weights(targets) if balance else np.ones(n)
    draw = weights / weights.sum()

    def epoch_batches():
        order = rng.choice(n, size=n, p=draw) if balance else rng.permutation(n)
        return (order[s : s + batch_size] for s in range(0, n, batch_size))

    return epoch_batches, weights


def soft_cross_entropy(logits, targets, weights=None):
    """Mean over rows of ``-sum_g targets[g] * log_softmax(logits)[g]``, each row times
    ``weights`` when given."""
    import torch

    per_row = -(targets * torch.log_softmax(logits, dim=-1)).sum(dim=-1)
    return per_row.mean() if weights is None else (per_row * weights).mean()


def fine_tune(
    model,
    tokenizer,
    first: Sequence[str],
    second: Sequence[str],
    targets: np.ndarray,
    config: FineTuneConfig,
    *,
    device: str = "cpu",
    show_progress: bool = True,
) -> list[float]:
    """Train ``model`` (a sequence classifier with ``targets.shape[1]`` labels) in place.

    Returns the mean loss of each epoch. A progress bar shows the running loss.
    """
    import torch

    if len(first) != len(second) or len(first) != len(targets):
        raise ValueError("first, second and targets must have the same length")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    enc = tokenizer(list(first), list(second), truncation=True, max_length=config.max_length)
    target_t = torch.as_tensor(targets, dtype=torch.float32)
    epoch_batches, weights = grade_balanced_batches(
        targets, config.batch_size, config.balance_grades, rng
    )
    weight_t = torch.as_tensor(weights, dtype=torch.float32)

    def batch_loss(idx):
        batch = tokenizer.pad({k: [enc[k][i] for i in idx] for k in enc}, return_tensors="pt")
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        return soft_cross_entropy(logits, target_t[idx].to(device), weight_t[idx].to(device))

    model.to(device)
    history = train_loop(
        model,
        epoch_batches,
        batch_loss,
        epochs=config.epochs,
        steps_per_epoch=math.ceil(len(first) / config.batch_size),
        learning_rate=config.learning_rate,
        warmup_share=config.warmup_share,
        desc="fine-tune",
        show_progress=show_progress,
    )
    return [epoch["total"] for epoch in history]
