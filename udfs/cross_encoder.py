"""A Hugging Face sequence-classification cross-encoder that scores (member, job) text pairs.

Spark-free: lists of strings in, a numpy array out, in input order. Pairs are tokenized once,
sorted by length and cut into batches by a padded-token budget, so short pairs do not pay for
long ones' padding; the model runs under ``torch.inference_mode`` in bf16 on CUDA, fp32 on CPU.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from udfs.devices import Placement, choose_placement
from udfs.pair_text import render


@dataclass(frozen=True)
class ScorerConfig:
    """What a scoring worker needs; picklable, so it travels inside the UDF closure."""

    model_dir: str
    member_template: str
    job_template: str
    max_length: int = 256
    token_budget: int = 8192
    cpu_threads: int = 1


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
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no Hugging Face model (config.json) in {path}")
        if placement.device == "cpu" and cpu_threads:
            torch.set_num_threads(cpu_threads)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, local_files_only=True, dtype=getattr(torch, placement.dtype_name)
        )
        model.to(placement.device).eval()
        return cls(model, tokenizer, placement, max_length, token_budget)

    def logits(self, first: Sequence[str], second: Sequence[str]) -> np.ndarray:
        """Raw head outputs ``(n, num_labels)`` for ``(first[i], second[i])``, in input order."""
        import torch

        n_labels = self.model.config.num_labels
        if len(first) == 0:
            return np.zeros((0, n_labels), dtype=np.float32)
        enc = self.tokenizer(
            list(first), list(second), truncation=True, max_length=self.max_length, padding=False
        )
        lengths = [len(ids) for ids in enc["input_ids"]]
        out = np.empty((len(lengths), n_labels), dtype=np.float32)
        with torch.inference_mode():
            for idx in plan_batches(lengths, self.token_budget):
                batch = self._pad(enc, idx, max(lengths[i] for i in idx))
                out[idx] = self.model(**batch).logits.float().cpu().numpy()
        return out

    def score(self, first: Sequence[str], second: Sequence[str]) -> np.ndarray:
        """Scores of ``(first[i], second[i])`` pairs, float32, in input order."""
        return scores_from_logits(self.logits(first, second)).astype(np.float32)

    def score_frames(
        self, members: pd.DataFrame, jobs: pd.DataFrame, member_template: str, job_template: str
    ) -> np.ndarray:
        """Render member and job fields with the templates, then :meth:`score`."""
        return self.score(render(member_template, members), render(job_template, jobs))

    def _pad(self, enc, idx: np.ndarray, width: int) -> dict:
        import torch

        pad_id = self.tokenizer.pad_token_id or 0
        batch = {}
        for key, fill in (("input_ids", pad_id), ("attention_mask", 0), ("token_type_ids", 0)):
            if key not in enc:
                continue
            arr = np.full((len(idx), width), fill, dtype=np.int64)
            for row, i in enumerate(idx):
                seq = enc[key][i]
                arr[row, : len(seq)] = seq
            batch[key] = torch.from_numpy(arr).to(self.placement.device)
        return batch


# One scorer per Python worker process and device; reused workers keep it across tasks.
_SCORERS: dict[tuple, CrossEncoderScorer] = {}
_SAID_CPU_FALLBACK = False


def scorer_for(config: ScorerConfig, gpu_addresses: Sequence[str]) -> CrossEncoderScorer:
    """The worker's cached scorer for ``config`` on the device these GPU addresses give."""
    global _SAID_CPU_FALLBACK
    import torch

    placement = choose_placement(gpu_addresses, torch.cuda.is_available())
    if placement.note and not _SAID_CPU_FALLBACK:
        _SAID_CPU_FALLBACK = True  # once per worker, whichever address a later task gets
        print(f"[policyrank pid={os.getpid()}] {placement.note}", file=sys.stderr, flush=True)
    key = (config, placement.device, placement.dtype_name)
    if key not in _SCORERS:
        # Tokenizer threads help a GPU keep busy; on CPU they fight the model's threads.
        os.environ.setdefault(
            "TOKENIZERS_PARALLELISM", "true" if placement.device != "cpu" else "false"
        )
        _SCORERS[key] = CrossEncoderScorer.load(
            config.model_dir,
            placement,
            max_length=config.max_length,
            token_budget=config.token_budget,
            cpu_threads=config.cpu_threads,
        )
    return _SCORERS[key]
