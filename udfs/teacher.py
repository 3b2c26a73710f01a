"""One grading interface, several backends: each grades (member, job) rows into a distribution
over the policy's 0-4 grades (:class:`udfs.grades.GradeDistribution`).

Backends (``TeacherConfig.backend``), each loaded by name from :data:`BACKENDS`:

* ``llm`` -- a causal LM reading the whole policy as a cached prefix (:mod:`udfs.llm_judge`);
  the production path when judge weights are available. ``vllm`` is the same judge on vLLM's
  prefix caching (CUDA and vLLM installed).
* ``cross_encoder`` -- a sequence-classification model with a 5-way grade head: the fine-tuned
  judge (``policyrank train-judge``) or a cross-encoder student.
* ``field_student`` -- the default student (:mod:`udfs.field_student`).
* ``rules`` -- the rules baseline (:mod:`udfs.policy_rules`): the policy as rules over the
  declared fields, graded like a model so it stands beside the others in evaluation.
* ``simulated`` -- the simulator's stand-in for an LLM judge (``sim.judge``), for the demo and
  tests only. It is named here as an import path, never imported by production code.

Spark-free; ``udfs/teacher_udf.py`` is the pandas UDF over it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from udfs.devices import Placement
from udfs.grades import GRADES, GradeDistribution
from udfs.pair_text import render, template_fields
from udfs.worker_cache import worker_model


@dataclass(frozen=True)
class TeacherConfig:
    """Everything that decides a grade model's grades; picklable, so it travels in the UDF
    closure. ``member_fields``/``job_fields`` (when set) replace the templates' fields as the
    columns the model reads."""

    backend: str
    model_dir: str
    member_template: str
    job_template: str
    policy_text: str = ""  # the llm backend's prefix holds the whole policy
    prompt_format: str = "auto"  # llm: chat template (when the tokenizer has one) or plain text
    max_length: int = 256
    token_budget: int = 8192  # padded tokens per forward pass on CPU
    gpu_token_budget: int = 65536  # and on a GPU
    cpu_threads: int = 1
    member_fields: tuple[str, ...] = ()
    job_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"teacher backend {self.backend!r} is not one of {tuple(BACKENDS)}")

    def budget_for(self, placement: Placement) -> int:
        return self.token_budget if placement.device == "cpu" else self.gpu_token_budget

    def fields(self) -> tuple[list[str], list[str]]:
        """The member and job columns the model reads (ids are added by the caller)."""
        member = list(self.member_fields) or template_fields(self.member_template)
        job = list(self.job_fields) or template_fields(self.job_template)
        return member, job

    @property
    def prompt_hash(self) -> str:
        """Hash of everything that shapes the prompt (templates, policy, prompt layout): labels
        made under a different hash are different labels and are not reused."""
        fields = {k: v for k, v in asdict(self).items() if k not in ("model_dir", "cpu_threads")}
        if self.backend in ("llm", "vllm"):
            from udfs.llm_judge import build_prefix, render_pair

            fields["prefix"] = build_prefix(self.policy_text)
            fields["pair"] = render_pair("{member}", "{job}")
        else:
            fields.pop("prompt_format")  # only the llm backends have a prompt to format
        blob = json.dumps(fields, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


class Teacher(Protocol):
    def grade_rows(self, members: pd.DataFrame, jobs: pd.DataFrame) -> GradeDistribution:
        """Grade distribution of each aligned (members.iloc[i], jobs.iloc[i]) pair."""
        ...


class TextJudge:
    """A judge that reads rendered text: renders each row with the config's templates."""

    def __init__(self, inner, member_template: str, job_template: str):
        self.inner, self.member_template, self.job_template = inner, member_template, job_template

    def grade_rows(self, members: pd.DataFrame, jobs: pd.DataFrame) -> GradeDistribution:
        return self.inner.grade(
            render(self.member_template, members), render(self.job_template, jobs)
        )


class CrossEncoderJudge:
    """A cross-encoder whose head has one logit per grade: softmax gives p(grade)."""

    def __init__(self, scorer):
        n = scorer.model.config.num_labels
        if n != len(GRADES):
            raise ValueError(f"a grade judge needs {len(GRADES)} labels, the model has {n}")
        self.scorer = scorer

    def grade(self, member_texts: Sequence[str], job_texts: Sequence[str]) -> GradeDistribution:
        return GradeDistribution.from_logits(self.scorer.logits(member_texts, job_texts))


class FieldStudentJudge:
    """The field student as a grade model."""

    def __init__(self, student):
        self.student = student

    def grade_rows(self, members: pd.DataFrame, jobs: pd.DataFrame) -> GradeDistribution:
        return GradeDistribution.from_logits(self.student.logits(members, jobs))


def _cross_encoder(config: TeacherConfig, placement: Placement) -> Teacher:
    from udfs.cross_encoder import CrossEncoderScorer

    scorer = CrossEncoderScorer.load(
        config.model_dir,
        placement,
        max_length=config.max_length,
        token_budget=config.budget_for(placement),
        cpu_threads=config.cpu_threads,
    )
    return TextJudge(CrossEncoderJudge(scorer), config.member_template, config.job_template)


def _llm(config: TeacherConfig, placement: Placement) -> Teacher:
    from udfs.llm_judge import LLMJudge

    judge = LLMJudge.load(
        config.model_dir,
        config.policy_text,
        placement,
        token_budget=config.budget_for(placement),
        max_pair_tokens=config.max_length,
        prompt_format=config.prompt_format,
        cpu_threads=config.cpu_threads,
    )
    return TextJudge(judge, config.member_template, config.job_template)


def _vllm(config: TeacherConfig, placement: Placement) -> Teacher:
    from udfs.llm_judge import VLLMJudge

    judge = VLLMJudge.load(config.model_dir, config.policy_text, max_pair_tokens=config.max_length)
    return TextJudge(judge, config.member_template, config.job_template)


def _field_student(config: TeacherConfig, placement: Placement) -> Teacher:
    import torch

    from udfs.field_student import FieldStudent

    if placement.device == "cpu":
        torch.set_num_threads(max(1, config.cpu_threads))
    return FieldStudentJudge(FieldStudent.load(config.model_dir, device=placement.device))


def _rules(config: TeacherConfig, placement: Placement) -> Teacher:
    from udfs.policy_rules import PolicyRules

    return PolicyRules()


def _simulated(config: TeacherConfig, placement: Placement) -> Teacher:
    # The simulator is its own package: looked up by name so production never imports it.
    return importlib.import_module("sim.judge").load_judge(config.model_dir)


BACKENDS: dict[str, Callable[[TeacherConfig, Placement], Teacher]] = {
    "llm": _llm,
    "vllm": _vllm,
    "cross_encoder": _cross_encoder,
    "field_student": _field_student,
    "rules": _rules,
    "simulated": _simulated,
}


def load_teacher(config: TeacherConfig, placement: Placement) -> Teacher:
    return BACKENDS[config.backend](config, placement)


def grade_frames(teacher: Teacher, members: pd.DataFrame, jobs: pd.DataFrame) -> GradeDistribution:
    """Grade aligned member and job rows (the columns of :meth:`TeacherConfig.fields`)."""
    return teacher.grade_rows(members.reset_index(drop=True), jobs.reset_index(drop=True))


def teacher_for(config: TeacherConfig, gpu_addresses: Sequence[str]) -> Teacher:
    """The worker's cached grade model for ``config`` on the device these GPU addresses give
    (:func:`udfs.worker_cache.worker_model`: reloaded when the model folder changes)."""
    return worker_model(
        config, config.model_dir, gpu_addresses, lambda placement: load_teacher(config, placement)
    )


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
