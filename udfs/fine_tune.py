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


@dataclass(frozen=True)
class FineTuneConfig:
    epochs: int = 2
    batch_size: int = 16
    learning_rate: float = 5e-5
    warmup_share: float = 0.1
    seed: int = 0
    max_length: int = 256
    balance_grades: bool = True


def grade_weights(targets: np.ndarray) -> np.ndarray:
    """Per row, ``1 / sqrt(n_g)`` for the row's most likely grade ``g`` (``n_g`` rows share it),
    scaled to mean 1."""
    grade = np.asarray(targets).argmax(axis=1)
    counts = np.bincount(grade, minlength=np.shape(targets)[1]).astype(float)
    weights = 1.0 / np.sqrt(counts[grade])
    return weights / weights.mean()


def soft_cross_entropy(logits, targets, weights=None):
    """Mean over rows of ``-sum_g targets[g] * log_softmax(logits)[g]``, each row times
    ``weights`` when given."""
    import torch

    per_row = -(targets * torch.log_softmax(logits, dim=-1)).sum(dim=-1)
    return per_row.mean() if weights is None else (per_row * weights).mean()


def warmup_then_linear_decay(optimizer, total: int, warmup_share: float):
    """LR factor: linear warmup over ``warmup_share`` of the steps, then linear decay to 0 at
    ``total``; guarded so a single-step run does not divide by 0."""
    import torch

    warmup = max(1, int(warmup_share * total))
    decay = max(1, total - warmup)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / decay))
    )


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
    from tqdm.auto import tqdm

    if len(first) != len(second) or len(first) != len(targets):
        raise ValueError("first, second and targets must have the same length")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    enc = tokenizer(list(first), list(second), truncation=True, max_length=config.max_length)
    target_t = torch.as_tensor(targets, dtype=torch.float32)
    weights = grade_weights(targets) if config.balance_grades else np.ones(len(first))
    weight_t = torch.as_tensor(weights, dtype=torch.float32)
    draw = weights / weights.sum()
    steps_per_epoch = math.ceil(len(first) / config.batch_size)
    total = steps_per_epoch * config.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    schedule = warmup_then_linear_decay(optimizer, total, config.warmup_share)
    model.to(device).train()
    epoch_losses = []
    bar = tqdm(total=total, desc="fine-tune", unit="step", disable=not show_progress)
    for _ in range(config.epochs):
        order = (
            rng.choice(len(first), size=len(first), p=draw)
            if config.balance_grades
            else rng.permutation(len(first))
        )
        running = []
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            batch = tokenizer.pad({k: [enc[k][i] for i in idx] for k in enc}, return_tensors="pt")
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = soft_cross_entropy(
                model(**batch).logits, target_t[idx].to(device), weight_t[idx].to(device)
            )
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            running.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(running[-50:]):.3f}")
        epoch_losses.append(float(np.mean(running)))
    bar.close()
    model.eval()
    return epoch_losses
