"""Running a model over (member, job) pairs in Spark: the shared piece of label, score and
evaluate. Pairs whose member or job did not pass validation come back apart, for quarantine."""

from __future__ import annotations

import json
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.config.settings import InferenceSettings, ScoringSettings, Settings
from jobs.models.cards import ModelCard
from udfs.cross_encoder import ScorerConfig
from udfs.field_student import META_FILE, FieldStudent, FieldStudentConfig
from udfs.grades import GRADES
from udfs.pair_text import template_fields
from udfs.score_udf import TaskResources, score_pairs_udf, with_task_resources
from udfs.teacher import TeacherConfig
from udfs.teacher_udf import teacher_labels_udf


def attach_fields(
    pairs: DataFrame,
    members: DataFrame,
    jobs: DataFrame,
    member_fields: list[str],
    job_fields: list[str],
) -> DataFrame:
    """Pairs with ``member`` and ``job`` structs: the key plus the fields a model reads; a
    struct is null when its member or job is not among the validated rows.

    The result is spread over every task slot: adaptive execution would otherwise coalesce a
    small day's pairs into one partition, and model inference would run on a single core/GPU.
    """
    m_cols = ["member_id", *[f for f in member_fields if f in members.columns and f != "member_id"]]
    j_cols = ["job_id", *[f for f in job_fields if f in jobs.columns and f != "job_id"]]
    slots = pairs.sparkSession.sparkContext.defaultParallelism
    return (
        pairs.select("member_id", "job_id")
        .join(members.select("member_id", F.struct(*m_cols).alias("member")), "member_id", "left")
        .join(jobs.select("job_id", F.struct(*j_cols).alias("job")), "job_id", "left")
        .repartition(max(slots, 1))
    )


def unscorable(pairs: DataFrame) -> DataFrame:
    """Pairs whose member or job did not pass validation, in the quarantine's shape."""
    return pairs.where(F.col("member").isNull() | F.col("job").isNull()).select(
        F.lit("candidates").alias("source_table"),
        F.concat_ws("|", "member_id", "job_id").alias("entity_id"),
        F.when(F.col("member").isNull(), "member_not_valid")
        .otherwise("job_not_valid")
        .alias("reason"),
        F.to_json(F.struct("member_id", "job_id")).alias("record"),
    )


def _valid(pairs: DataFrame) -> DataFrame:
    return pairs.where(F.col("member").isNotNull() & F.col("job").isNotNull())


def label_pairs(
    pairs: DataFrame,
    members: DataFrame,
    jobs: DataFrame,
    config: TeacherConfig,
    resources: TaskResources | None = None,
) -> tuple[DataFrame, DataFrame]:
    """(pairs with the grade model's ``grade_probs, expected_grade, grade, entropy``, pairs
    that cannot be graded); the grading stage's tasks hold ``resources`` when given."""
    with_fields = attach_fields(pairs, members, jobs, *config.fields())
    label = teacher_labels_udf(config)
    labelled = (
        _valid(with_fields)
        .select("member_id", "job_id", label("member", "job").alias("label"))
        .select("member_id", "job_id", "label.*")
    )
    return with_task_resources(labelled, resources), unscorable(with_fields)


def grade_model(model_dir: Path, settings: Settings) -> TeacherConfig | None:
    """A student folder as a grade model (p of grades 0-4): a field student, or a cross-encoder
    with a 5-way head; None for a plain 1-logit scorer. A student whose card's templates are not
    the scoring templates is refused: it would be served text it was not trained on."""
    s, inf = settings.scoring, settings.inference_for("scoring")
    card = ModelCard.read(model_dir)
    if card is not None:
        card.check_templates(s.member_template, s.job_template)
    if FieldStudent.is_field_student(model_dir):
        member_columns, job_columns = _field_config(model_dir).columns()
        return TeacherConfig(
            "field_student",
            str(model_dir),
            s.member_template,
            s.job_template,
            cpu_threads=inf.cpu_threads,
            member_fields=tuple(member_columns),
            job_fields=tuple(job_columns),
        )
    if _num_labels(model_dir) == len(GRADES):
        return TeacherConfig(
            "cross_encoder",
            str(model_dir),
            s.member_template,
            s.job_template,
            **inf.batching(),
        )
    return None


def scored_pairs(
    pairs: DataFrame, members: DataFrame, jobs: DataFrame, model_dir: Path, settings: Settings
) -> tuple[DataFrame, DataFrame]:
    """(``member_id, job_id, score`` of the gradable pairs, pairs that cannot be scored).

    A grade model's score is its expected grade (0-4); a 1-logit cross-encoder's its sigmoid.
    """
    graded = grade_model(model_dir, settings)
    if graded is not None:
        resources = task_resources(settings.inference_for("scoring"))
        labelled, bad = label_pairs(pairs, members, jobs, graded, resources)
        score = F.col("expected_grade").cast("float").alias("score")
        return labelled.select("member_id", "job_id", score), bad
    s, inf = settings.scoring, settings.inference_for("scoring")
    config = scorer_config(s, inf, str(model_dir))
    fields = template_fields(s.member_template), template_fields(s.job_template)
    with_fields = attach_fields(pairs, members, jobs, *fields)
    score = score_pairs_udf(config)
    scored = _valid(with_fields).select(
        "member_id", "job_id", score("member", "job").alias("score")
    )
    return with_task_resources(scored, task_resources(inf)), unscorable(with_fields)


def task_resources(inf: InferenceSettings) -> TaskResources:
    """The per-task cores and GPUs a model stage asks for (``task_cpus`` / ``task_gpus``)."""
    return TaskResources(inf.task_cpus, inf.task_gpus)


def scorer_config(s: ScoringSettings, inf: InferenceSettings, model_dir: str) -> ScorerConfig:
    """The scoring UDF's config for a 1-logit cross-encoder in ``model_dir``."""
    return ScorerConfig(
        model_dir=model_dir,
        member_template=s.member_template,
        job_template=s.job_template,
        **inf.batching(),
    )


def _field_config(model_dir: Path) -> FieldStudentConfig:
    meta = json.loads((Path(model_dir) / META_FILE).read_text())
    return FieldStudentConfig.from_dict(meta["config"])


def _num_labels(model_dir: Path) -> int:
    config = Path(model_dir) / "config.json"
    if not config.is_file():
        return 0
    raw = json.loads(config.read_text())
    return len(raw.get("id2label", {})) or int(raw.get("num_labels", 1))
