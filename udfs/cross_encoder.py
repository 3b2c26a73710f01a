"""A Hugging Face sequence-classification cross-encoder that scores (member, job) text pairs.

Spark-free: lists of strings in, a numpy array out, in input order. Each distinct member and job
text is tokenized once and pairs are assembled from token ids on the model's device
(:mod:`udfs.pair_tokens`); pairs are sorted by length and cut into batches by a padded-token
budget, so short pairs do not pay for long ones' padding; the model runs under
``torch.inference_mode`` in bf16 on CUDA, fp32 on CPU, and results come back to the host once per
call. Tokenizers whose pair layout cannot be assembled fall back to their own pair encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from udfs.devices import Placement, load_pretrained
from udfs.pair_text import render
from udfs.pair_tokens import EntityPairs, PairLayout, UnsupportedPairLayout
from udfs.worker_cache import worker_model


@dataclass(frozen=True)
class ScorerConfig:
    """What a scoring worker needs; picklable, so it travels inside the UDF closure."""

    model_dir: str
    member_template: str
    job_template: str
    max_length: int = 256
    token_budget: int = 8192  # padded tokens per forward pass on CPU
    gpu_token_budget: int = 65536  # and on a GPU, which wants far bigger batches
    cpu_threads: int = 1

    def budget_for(self, placement: Placement) -> int:
        return self.token_budget if placement.device == "cpu" else self.gpu_token_budget


def plan_batches(lengths: Sequence[int], token_budget: int) -> list[np.ndarray]:
    """Indices of each batch: longest pairs first, each batch's ``size * longest <= budget``
    (a single pair longer than the budget still gets a batch of its own)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches, start = [], 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)
        size = max(1, token_budget // longest)
        batches.append(order[start : start + size])
        start += size
    return batches


def scores_from_logits(logits: np.ndarray) -> np.ndarray:
    """One logit: sigmoid (p(match)). k logits: expected grade ``sum_g g * softmax(logits)_g``."""
    logits = logits.astype(np.float64)
    if logits.shape[1] == 1:
        return 1.0 / (1.0 + np.exp(-logits[:, 0]))
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = shifted / shifted.sum(axis=1, keepdims=True)
    return probs @ np.arange(logits.shape[1], dtype=np.float64)


class CrossEncoderScorer:
    """Loads a model + tokenizer from a local folder once and scores text pairs.

    >>> scorer = CrossEncoderScorer.load("models/student", Placement("cpu", "float32"))
    >>> scorer.score(["Senior Data Engineer ..."], ["Data Engineer at Acme ..."])
    array([0.73], dtype=float32)
    """

    def __init__(self, model, tokenizer, placement: Placement, max_length: int, token_budget: int):
        self.model, self.tokenizer, self.placement = model, tokenizer, placement
        self.max_length, self.token_budget = max_length, token_budget
        try:
            self.layout: PairLayout | None = PairLayout.of(tokenizer)
        except UnsupportedPairLayout:
            self.layout = None  # the tokenizer's own pair encoding, slower but exact

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        placement: Placement,
        *,
        max_length: int = 256,
        token_budget: int = 8192,
        cpu_threads: int | None = None,
    ) -> CrossEncoderScorer:
        model, tokenizer = load_pretrained(
            "AutoModelForSequenceClassification", model_dir, placement, cpu_threads
        )
        return cls(model, tokenizer, placement, max_length, token_budget)

    def prepare(self, first: Sequence[str], second: Sequence[str]) -> PreparedPairs:
        """The CPU half of scoring: tokenize each distinct text once. It may run in a background
        thread while the device runs the previous call (one such thread: a fast tokenizer must
        not be called from two threads at once)."""
        if len(first) == 0:
            return _PairEncoded(np.zeros((0, 1), np.int64), None, np.zeros(0, np.int64))
        if self.layout is None:
            return _pair_encoded(self.tokenizer, first, second, self.max_length)
        return EntityPairs.build(
            self.tokenizer, self.layout, list(first), list(second), self.max_length
        )

    def logits(self, first: Sequence[str], second: Sequence[str]) -> np.ndarray:
        """Raw head outputs ``(n, num_labels)`` for ``(first[i], second[i])``, in input order."""
        return self.logits_prepared(self.prepare(first, second))

    def logits_prepared(self, pairs: PreparedPairs) -> np.ndarray:
        """:meth:`logits` of pairs from :meth:`prepare`."""
        import torch

        n_labels = self.model.config.num_labels
        if len(pairs) == 0:
            return np.zeros((0, n_labels), dtype=np.float32)
        on_device = pairs.on(self.placement.device)
        batches = plan_batches(pairs.lengths, self.token_budget)
        with torch.inference_mode():
            out = torch.empty((len(pairs), n_labels), dtype=torch.float32)
            parts = [self.model(**on_device.batch(idx)).logits.float() for idx in batches]
            # One device-to-host copy per call: the device never waits on the host mid-call.
            out[torch.from_numpy(np.concatenate(batches))] = torch.cat(parts).cpu()
        return out.numpy()

    def score(self, first: Sequence[str], second: Sequence[str]) -> np.ndarray:
        """Scores of ``(first[i], second[i])`` pairs, float32, in input order."""
        return scores_from_logits(self.logits(first, second)).astype(np.float32)

    def score_prepared(self, pairs: PreparedPairs) -> np.ndarray:
        """:meth:`score` of pairs from :meth:`prepare`."""
        return scores_from_logits(self.logits_prepared(pairs)).astype(np.float32)

    def prepare_frames(
        self, members: pd.DataFrame, jobs: pd.DataFrame, member_template: str, job_template: str
    ) -> PreparedPairs:
        """Render member and job fields with the templates, then :meth:`prepare`."""
        return self.prepare(render(member_template, members), render(job_template, jobs))

    def score_frames(
        self, members: pd.DataFrame, jobs: pd.DataFrame, member_template: str, job_template: str
    ) -> np.ndarray:
        """Render member and job fields with the templates, then :meth:`score`."""
        return self.score_prepared(
            self.prepare_frames(members, jobs, member_template, job_template)
        )


class PreparedPairs(Protocol):
    """Tokenized pairs ready for a device: :class:`udfs.pair_tokens.EntityPairs` or the
    tokenizer's own pair encoding."""

    lengths: np.ndarray

    def __len__(self) -> int: ...

    def on(self, device: str) -> Any: ...


@dataclass(frozen=True)
class _PairEncoded:
    """The fallback: the tokenizer's pair encoding, padded per batch without a Python loop."""

    ids: np.ndarray  # (n, width) right-padded
    types: np.ndarray | None
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    def on(self, device: str) -> _PairEncoded:
        return self

    def batch(self, idx: np.ndarray) -> dict:
        import torch

        width = int(self.lengths[idx].max())
        mask = np.arange(width)[None, :] < self.lengths[idx, None]
        batch = {"input_ids": self.ids[idx, :width], "attention_mask": mask.astype(np.int64)}
        if self.types is not None:
            batch["token_type_ids"] = self.types[idx, :width]
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}


def _pair_encoded(tokenizer, first, second, max_length: int) -> _PairEncoded:
    enc = tokenizer(
        list(first),
        list(second),
        truncation=True,
        max_length=max_length,
        padding=True,
        return_tensors="np",
    )
    types = enc.get("token_type_ids")
    return _PairEncoded(enc["input_ids"], types, enc["attention_mask"].sum(axis=1))


def scorer_for(config: ScorerConfig, gpu_addresses: Sequence[str]) -> CrossEncoderScorer:
    """The worker's cached scorer for ``config`` on the device these GPU addresses give
    (:func:`udfs.worker_cache.worker_model`: reloaded when the model folder changes)."""

    def load(placement: Placement) -> CrossEncoderScorer:
        return CrossEncoderScorer.load(
            config.model_dir,
            placement,
            max_length=config.max_length,
            token_budget=config.budget_for(placement),
            cpu_threads=config.cpu_threads,
        )

    return worker_model(config, config.model_dir, gpu_addresses, load)
