"""One teacher interface, two backends: each grades (member, job) text pairs into a distribution
over the policy's 0-4 grades (:class:`udfs.grades.GradeDistribution`).

* ``cross_encoder`` -- the fine-tuned judge: a sequence-classification model with a 5-way grade
  head (the offline default; see ``jobs/judge.py`` for how it is trained on gold labels).
* ``llm`` -- the LLM judge: a causal LM reading the whole policy as a cached prefix
  (:mod:`udfs.llm_judge`); the production path when judge weights are available.

Spark-free; ``udfs/teacher_udf.py`` is the pandas UDF over it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from udfs.cross_encoder import CrossEncoderScorer
from udfs.devices import Placement, choose_placement
from udfs.grades import GRADES, GradeDistribution
from udfs.pair_text import render

BACKENDS = ("cross_encoder", "llm")


@dataclass(frozen=True)
class TeacherConfig:
    """Everything that decides a teacher's grades; picklable, so it travels in the UDF closure."""

    backend: str
    model_dir: str
    member_template: str
    job_template: str
    policy_text: str = ""  # the llm backend's prefix holds the whole policy
    max_length: int = 256
    token_budget: int = 8192
    cpu_threads: int = 1

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"teacher backend {self.backend!r} is not one of {BACKENDS}")

    @property
    def prompt_hash(self) -> str:
        """Hash of everything that shapes the prompt (templates, policy, prompt layout): labels
        made under a different hash are different labels and are not reused."""
        fields = {k: v for k, v in asdict(self).items() if k not in ("model_dir", "cpu_threads")}
        if self.backend == "llm":
            from udfs.llm_judge import build_prefix, render_pair

            fields["prefix"] = build_prefix(self.policy_text)
            fields["pair"] = render_pair("{member}", "{job}")
        blob = json.dumps(fields, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


class Teacher(Protocol):
    def grade(self, member_texts: Sequence[str], job_texts: Sequence[str]) -> GradeDistribution:
        """Grade distribution of each (member_texts[i], job_texts[i]) pair, in input order."""
        ...


class CrossEncoderJudge:
    """A cross-encoder whose head has one logit per grade: softmax gives p(grade)."""

    def __init__(self, scorer: CrossEncoderScorer):
        n = scorer.model.config.num_labels
        if n != len(GRADES):
            raise ValueError(f"a grade judge needs {len(GRADES)} labels, the model has {n}")
        self.scorer = scorer

    def grade(self, member_texts: Sequence[str], job_texts: Sequence[str]) -> GradeDistribution:
        return GradeDistribution.from_logits(self.scorer.logits(member_texts, job_texts))


def load_teacher(config: TeacherConfig, placement: Placement) -> Teacher:
    if config.backend == "llm":
        from udfs.llm_judge import LLMJudge

        return LLMJudge.load(
            config.model_dir,
            config.policy_text,
            placement,
            token_budget=config.token_budget,
            max_pair_tokens=config.max_length,
            cpu_threads=config.cpu_threads,
        )
    scorer = CrossEncoderScorer.load(
        config.model_dir,
        placement,
        max_length=config.max_length,
        token_budget=config.token_budget,
        cpu_threads=config.cpu_threads,
    )
    return CrossEncoderJudge(scorer)


def grade_frames(
    teacher: Teacher, config: TeacherConfig, members: pd.DataFrame, jobs: pd.DataFrame
) -> GradeDistribution:
    """Render member/job fields with the config's templates, then grade."""
    return teacher.grade(render(config.member_template, members), render(config.job_template, jobs))


_TEACHERS: dict[tuple, Teacher] = {}


def teacher_for(config: TeacherConfig, gpu_addresses: Sequence[str]) -> Teacher:
    """The worker's cached teacher for ``config`` on the device these GPU addresses give."""
    import torch

    placement = choose_placement(gpu_addresses, torch.cuda.is_available())
    key = (config, placement.device, placement.dtype_name)
    if key not in _TEACHERS:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        _TEACHERS[key] = load_teacher(config, placement)
    return _TEACHERS[key]


def distribution_frame(dist: GradeDistribution) -> pd.DataFrame:
    """The columns a ``teacher_labels`` row stores, one row per pair."""
    return pd.DataFrame(
        {
            "grade_probs": list(dist.probs.astype(np.float32)),
            "expected_grade": dist.expected,
            "grade": dist.grade,
            "entropy": dist.entropy,
        }
    )
