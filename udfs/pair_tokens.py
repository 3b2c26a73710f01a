"""Pair encoding from entity tokens: each distinct text is tokenized once, pairs are built from ids.

A member's text repeats across its ~20 candidates and a job's across many members, so
``tokenizer(first, second)`` re-tokenizes the same texts over and over on the CPU. Here each
distinct member text and job text is tokenized once (no special tokens), and every pair's model
input is assembled from those ids with the tokenizer's own pair layout (``[CLS] a [SEP] b [SEP]``
and its token types for BERT, ``<s> a </s></s> b </s>`` for RoBERTa) and its ``longest_first``
truncation. Assembly and padding are vectorised torch on the model's device: no Python loop per
pair. The ids, token types and masks equal the tokenizer's pair encoding
(``tests/test_pair_tokens.py`` checks thousands of pairs, truncation included, for WordPiece
and byte-level BPE tokenizers).

Example::

    layout = PairLayout.of(tokenizer)
    pairs = EntityPairs.build(tokenizer, layout, members, jobs, max_length=128)
    model(**pairs.on("cuda:0").batch(np.arange(256)))
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd

_PROBES = (("data engineer spark", "senior nurse"), ("a", "python sql kafka airflow"))


class UnsupportedPairLayout(ValueError):
    """The tokenizer's pair encoding is not ``prefix a middle b suffix`` with fixed specials."""


@dataclass(frozen=True)
class PairLayout:
    """Where a tokenizer puts its special tokens around a pair: ``prefix a middle b suffix``."""

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    first_type: int  # token type of prefix, a and middle
    second_type: int  # token type of b and suffix
    pad_id: int
    with_token_types: bool  # whether the model takes ``token_type_ids``

    @property
    def n_special(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)

    @classmethod
    def of(cls, tokenizer: Any) -> PairLayout:
        """Read the layout off the tokenizer's own encoding of probe pairs; raise
        :class:`UnsupportedPairLayout` when it is not a fast, right-truncating tokenizer whose
        pairs are the two texts' own ids between fixed special tokens."""
        if not getattr(tokenizer, "is_fast", False):
            raise UnsupportedPairLayout("entity tokenization needs a fast (Rust) tokenizer")
        if getattr(tokenizer, "truncation_side", "right") != "right":
            raise UnsupportedPairLayout("entity tokenization supports right truncation only")
        layouts = {_probe_layout(tokenizer, a, b) for a, b in _PROBES}
        if len(layouts) != 1:
            raise UnsupportedPairLayout(f"pair layout differs between probes: {layouts}")
        return layouts.pop()


def _probe_layout(tokenizer: Any, first: str, second: str) -> PairLayout:
    a = tokenizer(first, add_special_tokens=False)["input_ids"]
    b = tokenizer(second, add_special_tokens=False)["input_ids"]
    enc = tokenizer(first, second, return_token_type_ids=True)
    ids, types = enc["input_ids"], enc["token_type_ids"]
    for p in range(len(ids) - len(a) - len(b) + 1):
        for q in range(p + len(a), len(ids) - len(b) + 1):
            if ids[p : p + len(a)] != a or ids[q : q + len(b)] != b:
                continue
            first_types, second_types = set(types[:q]), set(types[q:])
            if len(first_types) != 1 or len(second_types) != 1:
                continue
            pad = tokenizer.pad_token_id
            return PairLayout(
                prefix=tuple(ids[:p]),
                middle=tuple(ids[p + len(a) : q]),
                suffix=tuple(ids[q + len(b) :]),
                first_type=first_types.pop(),
                second_type=second_types.pop(),
                pad_id=0 if pad is None else int(pad),
                with_token_types="token_type_ids" in tokenizer.model_input_names,
            )
    raise UnsupportedPairLayout("the pair encoding does not contain both texts' own ids")


def truncate_longest_first(
    first: np.ndarray, second: np.ndarray, budget: int
) -> tuple[np.ndarray, np.ndarray]:
    """Kept lengths of each side under Hugging Face tokenizers' ``longest_first`` rule, for
    ``budget`` = max_length minus the special tokens: the longer side is cut to leave room for
    the shorter; when both are too long each keeps half (the longer side the odd token)."""
    first, second = np.asarray(first, np.int64), np.asarray(second, np.int64)
    swap = first > second
    short = np.minimum(first, second)
    long_kept = np.where(short > budget, short, np.maximum(short, budget - short))
    both = short + long_kept > budget
    short_kept = np.where(both, budget // 2, short)
    long_kept = np.where(both, budget // 2 + budget % 2, long_kept)
    over = first + second > budget
    kept_first = np.where(over, np.where(swap, long_kept, short_kept), first)
    kept_second = np.where(over, np.where(swap, short_kept, long_kept), second)
    return kept_first, kept_second


@dataclass(frozen=True)
class EntityTokens:
    """Distinct texts' ids, right-padded into a matrix (cut at the most any pair can keep)."""

    ids: np.ndarray  # (n_texts, width) int64
    lengths: np.ndarray  # (n_texts,) untruncated token counts: truncation reads them

    @classmethod
    def tokenize(cls, tokenizer: Any, texts: list[str], width: int, pad_id: int) -> EntityTokens:
        encoded = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        flat = np.fromiter(chain.from_iterable(encoded), dtype=np.int64, count=int(lengths.sum()))
        width = max(1, min(width, int(lengths.max(initial=0))))
        rows = np.repeat(np.arange(len(encoded)), lengths)
        cols = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        keep = cols < width
        matrix = np.full((len(encoded), width), pad_id, dtype=np.int64)
        matrix[rows[keep], cols[keep]] = flat[keep]
        return cls(matrix, lengths)


@dataclass(frozen=True)
class EntityPairs:
    """Aligned pairs as indices into the distinct first and second texts, with kept lengths."""

    layout: PairLayout
    first: EntityTokens
    second: EntityTokens
    first_index: np.ndarray  # (n_pairs,) row of each pair's first text
    second_index: np.ndarray
    first_kept: np.ndarray  # (n_pairs,) tokens kept after truncation
    second_kept: np.ndarray

    @classmethod
    def build(
        cls,
        tokenizer: Any,
        layout: PairLayout,
        first: list[str],
        second: list[str],
        max_length: int,
    ) -> EntityPairs:
        budget = max_length - layout.n_special
        if budget < 1:
            raise ValueError(f"max_length {max_length} leaves no room beside the special tokens")
        first_index, first_texts = pd.factorize(pd.Series(first, dtype=object), sort=False)
        second_index, second_texts = pd.factorize(pd.Series(second, dtype=object), sort=False)
        first_tokens = EntityTokens.tokenize(tokenizer, list(first_texts), budget, layout.pad_id)
        second_tokens = EntityTokens.tokenize(tokenizer, list(second_texts), budget, layout.pad_id)
        first_kept, second_kept = truncate_longest_first(
            first_tokens.lengths[first_index], second_tokens.lengths[second_index], budget
        )
        return cls(
            layout, first_tokens, second_tokens, first_index, second_index, first_kept, second_kept
        )

    def __len__(self) -> int:
        return len(self.first_index)

    @property
    def lengths(self) -> np.ndarray:
        """Each pair's total tokens, special tokens included."""
        return self.first_kept + self.second_kept + self.layout.n_special

    def on(self, device: Any) -> DevicePairs:
        """The token matrices and indices as tensors on ``device``, uploaded once."""
        return DevicePairs(self, device)


class DevicePairs:
    """:class:`EntityPairs` on a device: batches are gathered and padded there."""

    def __init__(self, pairs: EntityPairs, device: Any):
        import torch

        def tensor(values: np.ndarray) -> Any:
            return torch.from_numpy(np.ascontiguousarray(values)).to(device, non_blocking=True)

        self.layout, self.device = pairs.layout, device
        self._lengths = pairs.lengths
        self._first, self._second = tensor(pairs.first.ids), tensor(pairs.second.ids)
        self._first_index, self._second_index = (
            tensor(pairs.first_index),
            tensor(pairs.second_index),
        )
        self._first_kept, self._second_kept = tensor(pairs.first_kept), tensor(pairs.second_kept)

    def batch(self, idx: np.ndarray) -> dict[str, Any]:
        """The model inputs of pairs ``idx``, right-padded to the longest of them."""
        import torch

        lay, device = self.layout, self.device
        rows = torch.from_numpy(np.ascontiguousarray(idx)).to(device, non_blocking=True)
        a, b = self._first_kept[rows, None], self._second_kept[rows, None]
        col = torch.arange(int(self._lengths[idx].max()), device=device)[None, :]
        a_start = len(lay.prefix)
        b_start = a + a_start + len(lay.middle)
        end = b_start + b + len(lay.suffix)
        ids = torch.full((len(idx), col.shape[1]), lay.pad_id, dtype=torch.long, device=device)
        ids = _place(ids, col, a_start, a_start + a, self._first[self._first_index[rows]])
        ids = _place(ids, col, b_start, b_start + b, self._second[self._second_index[rows]])
        for start, tokens in (
            (0, lay.prefix),
            (a_start + a, lay.middle),
            (b_start + b, lay.suffix),
        ):
            for offset, token in enumerate(tokens):
                ids = torch.where(col == start + offset, token, ids)
        mask = col < end
        batch = {"input_ids": ids, "attention_mask": mask.long()}
        if lay.with_token_types:
            types = torch.where(col < b_start, lay.first_type, lay.second_type)
            batch["token_type_ids"] = torch.where(mask, types, 0)
        return batch


def _place(ids: Any, col: Any, start: Any, stop: Any, entity_ids: Any) -> Any:
    """Write each row's entity ids (``entity_ids[row]``) into its columns ``[start, stop)``."""
    import torch

    source = (col - start).clamp(0, entity_ids.shape[1] - 1).expand(len(entity_ids), -1)
    return torch.where((col >= start) & (col < stop), entity_ids.gather(1, source), ids)
