"""The one training loop of the judge and both students: plain torch, no Spark.

Each trainer supplies its batches and its loss; the loop owns the rest, the same for all:
AdamW, an optional linear warmup then linear decay, the gradient norm clipped to 1, a progress
bar with the running loss, per-epoch mean losses, and the module left in eval mode.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DistillConfig:
    """How a student learns the teacher's grades: ``student.fields`` (the field student) and
    ``student.distill`` (the cross-encoder student) in conf/local.yaml."""

    epochs: int
    batch_members: int  # members per batch; a batch holds all rows of each of them
    learning_rate: float
    weight_decay: float
    warmup_share: float | None  # None: a constant rate
    ranking_weight: float  # loss = KL(teacher || student) + ranking_weight * RankNet
    temperature: float
    margin: float  # teacher expected-grade gap that makes a ranking pair
    seed: int


def warmup_then_linear_decay(optimizer, total: int, warmup_share: float):
    """LR factor: linear warmup over ``warmup_share`` of the steps, then linear decay to 0 at
    ``total``; guarded so a single-step run does not divide by 0."""
    import torch

    warmup = max(1, int(warmup_share * total))
    decay = max(1, total - warmup)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / decay))
    )


def train_loop(
    module,
    epoch_batches: Callable[[], Iterable[Any]],
    batch_loss: Callable[[Any], Any],
    *,
    epochs: int,
    steps_per_epoch: int,
    learning_rate: float,
    weight_decay: float = 0.01,
    warmup_share: float | None = None,
    desc: str = "train",
    show_progress: bool = True,
    after_epoch: Callable[[int], dict[str, float]] | None = None,
) -> list[dict[str, float]]:
    """Train ``module``'s parameters in place; per epoch, the mean of each loss part.

    ``epoch_batches()`` is called once per epoch (the caller's seeded shuffle); ``batch_loss``
    returns a scalar tensor, or parts with a ``total`` tensor and other named tensors (``kl``,
    ``rank``), all of which are reported. ``warmup_share=None`` keeps the rate constant.
    ``after_epoch(epoch)``, when given, runs after each epoch with the module in eval mode; what
    it returns (e.g. a validation metric) joins that epoch's entry.
    """
    import torch
    from tqdm.auto import tqdm

    optimizer = torch.optim.AdamW(module.parameters(), lr=learning_rate, weight_decay=weight_decay)
    total = steps_per_epoch * epochs
    schedule = (
        None if warmup_share is None else warmup_then_linear_decay(optimizer, total, warmup_share)
    )
    history: list[dict[str, float]] = []
    bar = tqdm(total=total, desc=desc, unit="step", disable=not show_progress)
    module.train()
    try:
        for epoch in range(epochs):
            running: dict[str, list[float]] = defaultdict(list)
            for batch in epoch_batches():
                parts = _parts(batch_loss(batch))
                optimizer.zero_grad()
                parts["total"].backward()
                torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
                optimizer.step()
                if schedule is not None:
                    schedule.step()
                for name, value in parts.items():
                    running[name].append(value.item())
                bar.update(1)
                bar.set_postfix({n: f"{np.mean(v[-50:]):.3f}" for n, v in running.items()})
            history.append({name: float(np.mean(values)) for name, values in running.items()})
            if after_epoch is not None:
                module.eval()
                history[-1].update(after_epoch(epoch))
                module.train()
    finally:
        bar.close()
        module.eval()
    return history


def _parts(loss) -> dict[str, Any]:
    if hasattr(loss, "total"):
        return {"total": loss.total, **{k: v for k, v in vars(loss).items() if k != "total"}}
    return {"total": loss}
