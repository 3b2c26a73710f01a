"""Distil a teacher's grade distributions into a smaller cross-encoder: plain torch, no Spark.

The student is trained on the teacher's soft labels (``teacher_labels.grade_probs``) with

    loss = KL(teacher || student) + ranking_weight * within-member pairwise ranking loss

* :class:`GradeKLLoss` matches the student's grade distribution to the teacher's, per pair.
* :class:`WithinMemberRankingLoss` (RankNet) keeps the teacher's order among one member's jobs on
  the student's expected grade ``E_s = sum_g g * softmax(logits)_g``, which is the score served.
* :class:`DistillationLoss` adds the two and keeps the parts for logging.

:func:`truncated_student` warm-starts a shallower BERT-family student from the teacher's first
layers, :func:`member_batches` keeps each member's rows in one batch (so the ranking term has
pairs) and :func:`distill` is the seeded training loop. The same data, config and seed give the
same losses and weights (on CPU).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from udfs.fine_tune import soft_cross_entropy
from udfs.training import DistillConfig, train_loop


def expected_grade(logits: torch.Tensor) -> torch.Tensor:
    """``E[i] = sum_g g * softmax(logits[i])_g`` for grades ``g = 0..k-1``; shape ``(n,)``."""
    grades = torch.arange(logits.shape[-1], dtype=logits.dtype, device=logits.device)
    return torch.softmax(logits, dim=-1) @ grades


class GradeKLLoss(torch.nn.Module):
    """``KL(t || p_s) = mean_i sum_g t_ig * (log t_ig - log p_s,ig)``, ``p_s = softmax(z / T)``.

    ``teacher_probs`` are probabilities (rows summing to 1), used as given: the temperature ``T``
    divides only the student's logits ``z``. Zero targets contribute ``0 * log 0 = 0``. With
    ``T > 1`` the student's served distribution ``softmax(z)`` ends up sharper than the teacher's;
    to soften the teacher as well, pass ``t ** (1 / T)`` renormalised. No ``T**2`` rescaling: the
    gradient with respect to ``z`` is ``(p_s - t) / T`` per row (before the mean).
    """

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, student_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
        t = teacher_probs.to(student_logits.dtype)
        # KL = cross-entropy - H(t); xlogy(0, 0) = 0 keeps zero targets finite.
        neg_entropy = torch.special.xlogy(t, t).sum(dim=-1).mean()
        return soft_cross_entropy(student_logits / self.temperature, t) + neg_entropy

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


class WithinMemberRankingLoss(torch.nn.Module):
    """Pairwise logistic (RankNet) loss on the student's expected grade, within members.

    Pairs ``P = {(i, j) : member[i] == member[j], t_i > t_j + margin}`` where ``t`` is the
    teacher's expected grade; with ``d_ij = E_s[i] - E_s[j]`` (:func:`expected_grade` of the
    student's logits, no temperature: the score that is served),

        loss = mean_{(i, j) in P} log(1 + exp(-d_ij))

    and a zero that still carries a gradient (all zeros) when ``P`` is empty.
    """

    def __init__(self, margin: float = 0.1):
        super().__init__()
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")  # else (i, i) would count
        self.margin = margin

    def forward(
        self,
        student_logits: torch.Tensor,
        teacher_expected: torch.Tensor,
        member_index: torch.Tensor,
    ) -> torch.Tensor:
        e_s = expected_grade(student_logits)
        t = teacher_expected.to(e_s.dtype)
        pairs = (member_index[:, None] == member_index[None, :]) & (
            t[:, None] > t[None, :] + self.margin
        )
        losses = torch.nn.functional.softplus(-(e_s[:, None] - e_s[None, :]))  # log(1 + e^-d)
        # Masked mean rather than boolean indexing: an empty P gives 0 * (...), still in the graph.
        weights = pairs.to(losses.dtype)
        return (losses * weights).sum() / weights.sum().clamp(min=1.0)

    def extra_repr(self) -> str:
        return f"margin={self.margin}"


@dataclass(frozen=True)
class DistillationParts:
    """``total = kl + ranking_weight * rank``; ``total`` is the one to backpropagate."""

    total: torch.Tensor
    kl: torch.Tensor
    rank: torch.Tensor


class DistillationLoss(torch.nn.Module):
    """``GradeKLLoss(temperature) + ranking_weight * WithinMemberRankingLoss(margin)``.

    The ranking term's teacher scores are the expected grades ``sum_g g * teacher_probs[i, g]``.
    """

    def __init__(self, ranking_weight: float = 0.5, temperature: float = 1.0, margin: float = 0.1):
        super().__init__()
        self.ranking_weight = ranking_weight
        self.kl = GradeKLLoss(temperature)
        self.ranking = WithinMemberRankingLoss(margin)

    def forward(
        self,
        student_logits: torch.Tensor,
        teacher_probs: torch.Tensor,
        member_index: torch.Tensor,
    ) -> DistillationParts:
        t = teacher_probs.to(student_logits.dtype)
        grades = torch.arange(t.shape[-1], dtype=t.dtype, device=t.device)
        kl = self.kl(student_logits, t)
        rank = self.ranking(student_logits, t @ grades, member_index)
        return DistillationParts(kl + self.ranking_weight * rank, kl, rank)

    def extra_repr(self) -> str:
        return f"ranking_weight={self.ranking_weight}"


def truncated_student(teacher_dir: str | Path, n_layers: int, num_labels: int | None = None):
    """Load the teacher from ``teacher_dir`` and keep its embeddings, its first ``n_layers``
    encoder layers, pooler and classifier, with their weights (a warm start); returns
    ``(model, tokenizer)`` with ``config.num_hidden_layers == n_layers``, so ``save_pretrained``
    writes a model that reloads as is. ``num_labels`` gives a base model (no grade head) a
    fresh head of that size.

    BERT-family models only (the base model has ``encoder.layer``, a ``ModuleList``: BERT,
    MiniLM, RoBERTa, ...); anything else, or ``n_layers`` outside ``1..teacher layers``, raises
    ``ValueError``.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = Path(teacher_dir)
    extra = {} if num_labels is None else {"num_labels": num_labels}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a base model's fresh head is expected here
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            path, local_files_only=True, ignore_mismatched_sizes=True, **extra
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    base = getattr(model, model.base_model_prefix, None)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise ValueError(
            f"truncated_student needs a BERT-family model (<base>.encoder.layer ModuleList); "
            f"{path} holds {type(model).__name__}"
        )
    if not 1 <= n_layers <= len(layers):
        raise ValueError(f"n_layers must be in 1..{len(layers)} for {path}, got {n_layers}")
    base.encoder.layer = torch.nn.ModuleList(list(layers)[:n_layers])
    model.config.num_hidden_layers = n_layers
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return model, tokenizer


def member_batches(member_ids: Sequence[str], batch_members: int, seed: int) -> list[np.ndarray]:
    """Row indices per batch: members in a seeded random order, ``batch_members`` whole members
    per batch (the last may hold fewer); within a member, rows keep their input order.

    Every row appears exactly once; the same ids and seed give the same batches.
    """
    if batch_members < 1:
        raise ValueError(f"batch_members must be >= 1, got {batch_members}")
    ids = np.asarray(member_ids)
    if len(ids) == 0:
        return []
    codes = np.unique(ids, return_inverse=True)[1].ravel()
    rows = np.argsort(codes, kind="stable")  # rows grouped by member, input order within
    ends = np.cumsum(np.bincount(codes))
    starts = ends - np.bincount(codes)
    order = np.random.default_rng(seed).permutation(len(ends))
    return [
        np.concatenate([rows[starts[m] : ends[m]] for m in order[i : i + batch_members]])
        for i in range(0, len(order), batch_members)
    ]


def distill(
    student,
    tokenizer,
    first: Sequence[str],
    second: Sequence[str],
    member_ids: Sequence[str],
    teacher_probs: np.ndarray,
    config: DistillConfig,
    *,
    max_length: int,
    device: str = "cpu",
    show_progress: bool = True,
) -> list[dict[str, float]]:
    """Train ``student`` in place on ``(first[i], second[i])`` pairs (cut to ``max_length``
    tokens, the length it will be served at) against ``teacher_probs``
    ``(n, k)`` (``k`` = the student's ``num_labels``) with :class:`DistillationLoss`.

    AdamW, linear warmup then decay, gradient norm clipped to 1, batches of whole members
    (:func:`member_batches`, reshuffled each epoch from ``config.seed``). A progress bar shows
    running ``loss``/``kl``/``rank``. Returns, per epoch, the mean over batches of
    ``{"total", "kl", "rank"}``; the student is left in eval mode.
    """
    n = len(first)
    if len(second) != n or len(member_ids) != n or len(teacher_probs) != n:
        raise ValueError("first, second, member_ids and teacher_probs must have the same length")
    k = student.config.num_labels
    if np.ndim(teacher_probs) != 2 or np.shape(teacher_probs)[1] != k:
        raise ValueError(f"teacher_probs must be (n, {k}), got {np.shape(teacher_probs)}")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    enc = tokenizer(list(first), list(second), truncation=True, max_length=max_length)
    target_t = torch.as_tensor(np.asarray(teacher_probs), dtype=torch.float32)
    member_t = torch.as_tensor(np.unique(np.asarray(member_ids), return_inverse=True)[1].ravel())
    loss_fn = DistillationLoss(config.ranking_weight, config.temperature, config.margin)

    def epoch_batches():
        return member_batches(member_ids, config.batch_members, int(rng.integers(2**31)))

    def batch_loss(idx):
        batch = tokenizer.pad({key: [enc[key][i] for i in idx] for key in enc}, return_tensors="pt")
        logits = student(**{key: value.to(device) for key, value in batch.items()}).logits
        return loss_fn(logits, target_t[idx].to(device), member_t[idx].to(device))

    student.to(device)
    return train_loop(
        student,
        epoch_batches,
        batch_loss,
        epochs=config.epochs,
        steps_per_epoch=math.ceil(len(set(member_ids)) / config.batch_members),
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_share=config.warmup_share,
        desc="distill",
        show_progress=show_progress,
    )
