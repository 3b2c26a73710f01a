"""`policyrank train`: distil the teacher's soft labels into a small student.

Two architectures (``student.architecture``):

* ``field_encoder`` (default) -- :mod:`udfs.field_student`: a frozen MiniLM-L6 embeds each
  member and job field once and a small head learns the policy's match from them. It trains in
  seconds on a CPU, and scoring encodes each distinct entity once instead of every pair.
* ``cross_encoder`` -- the first ``student.n_layers`` layers of the cross_encoder teacher (or of
  MiniLM-L6 when the teacher is not a cross-encoder), fine-tuned end to end on rendered pairs
  (``udfs.distill``); it needs a GPU to train well.

Both learn KL(teacher || student) plus a within-member ranking term, from the labels of members
that are not held out for evaluation. Training data is read from Delta through Spark and
trained on in one process.
"""

from __future__ import annotations

import os

import numpy as np
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.config.policy import load_policy
from jobs.config.settings import Settings
from jobs.models.cards import ModelCard, content_hash
from jobs.models.publish import publish, staging_folder
from jobs.models.roles import (
    STUDENTS,
    code_version,
    field_config,
    shipped_minilm,
    teacher_config,
    teacher_version,
)
from jobs.quality import metrics
from jobs.quality.splits import is_training, is_validation
from jobs.runtime.errors import PolicyrankError
from jobs.runtime.runlog import log
from jobs.warehouse.tables import Warehouse
from jobs.warehouse.validation import Inputs, read_validated
from udfs.pair_text import render


def validation_lists(wh: Warehouse, settings: Settings, members, jobs):
    """The validation members' gold pairs and NDCG@10 against their gold grades, for choosing
    the student's epoch (:class:`udfs.field_student.Validation`); None without any."""
    from udfs.field_student import Validation

    if not wh.exists("gold_labels"):
        return None
    gold = (
        wh.read("gold_labels", hint="")
        .where(is_validation(settings.eval))
        .select("member_id", "job_id", "gold_grade")
    )
    m = members.join(gold.select("member_id").distinct(), "member_id").toPandas()
    j = jobs.join(gold.select("job_id").distinct(), "job_id").toPandas()
    pairs = gold.orderBy("member_id", "job_id").toPandas()
    pairs = pairs[pairs.member_id.isin(m.member_id) & pairs.job_id.isin(j.job_id)]
    if pairs.empty:
        return None
    pairs = pairs.reset_index(drop=True)
    m, j = m.set_index("member_id"), j.set_index("job_id")

    def ndcg(scores: np.ndarray) -> float:
        return metrics.ndcg_at_k(pairs.assign(score=scores), 10, "gold_grade")

    return Validation(m.loc[pairs.member_id].reset_index(), j.loc[pairs.job_id].reset_index(), ndcg)


def train(
    spark: SparkSession, settings: Settings, *, run_id: str, inputs: Inputs | None = None
) -> dict:
    """Train a student on this teacher's labels; writes it under models/students/<version>."""
    import torch

    policy = load_policy(settings.teacher.policy_path)
    teacher = teacher_config(settings, policy)
    teacher_id = teacher_version(teacher)
    wh = Warehouse.of(settings, spark)
    # lineage: the version recorded is the one read
    table, data_version = wh.read_pinned(
        "teacher_labels", hint="run `policyrank label --date D` first"
    )
    labels = table.where(
        (F.col("teacher_model_id") == teacher_id)
        & (F.col("policy_version") == policy.version)
        & (F.col("prompt_hash") == teacher.prompt_hash)
        & is_training(settings.eval)  # held-out and validation members never reach training
    )
    rows = (
        labels.select("run_date", "member_id", "job_id", "grade_probs")
        .orderBy(F.desc("run_date"), "member_id", "job_id")
        .limit(settings.student.max_pairs)
        .orderBy("member_id", "job_id")
    )
    members, jobs = read_validated(wh, settings.validation, inputs)
    m = members.join(rows.select("member_id").distinct(), "member_id").toPandas()
    j = jobs.join(rows.select("job_id").distinct(), "job_id").toPandas()
    rows = rows.toPandas()
    if rows.empty:
        raise PolicyrankError(f"no teacher labels by {teacher_id} under policy {policy.version}")
    m, j = m.set_index("member_id"), j.set_index("job_id")
    rows = rows[rows.member_id.isin(m.index) & rows.job_id.isin(j.index)].reset_index(drop=True)
    probs = np.stack(rows.grade_probs.to_numpy()).astype(np.float32)
    torch.set_num_threads(os.cpu_count() or 1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    st = settings.student
    base = st.base_model_dir or shipped_minilm()
    log(
        f"train: {st.architecture} student from {teacher_id}'s {len(rows):,} soft labels of "
        f"{rows.member_id.nunique():,} members (teacher_labels version {data_version}; held-out "
        "and validation members excluded)"
    )
    # saved beside the published students, renamed into place by publish() once complete
    staging = staging_folder(wh.models_dir / STUDENTS, run_id)
    if st.architecture == "field_encoder":
        from udfs.field_student import FieldStudent, train_field_student

        config = field_config(settings)
        hyper = st.fields
        student = FieldStudent.from_base(base, config, seed=hyper.seed, device=device)
        validation = validation_lists(wh, settings, members, jobs)
        history = train_field_student(
            student,
            m.loc[rows.member_id].reset_index(),
            j.loc[rows.job_id].reset_index(),
            rows.member_id.tolist(),
            probs,
            hyper,
            validation=validation,
        )
        if validation is not None:
            chosen = next(k for k, h in enumerate(history, 1) if h.get("selected"))
            log(
                f"train: epoch {chosen} of {len(history)} kept: NDCG@10 "
                f"{history[chosen - 1]['validation']:.3f} on the gold of "
                f"{validation.members.member_id.nunique():,} validation members"
            )
        student.save(staging)
        hyper_parameters = {"architecture": st.architecture, **vars(hyper), **config.to_dict()}
        prefix = "student-fields"
    elif st.architecture == "cross_encoder":
        from udfs.distill import distill, truncated_student

        s = settings.scoring
        first = render(s.member_template, m.loc[rows.member_id].reset_index())
        second = render(s.job_template, j.loc[rows.job_id].reset_index())
        max_length = settings.inference_for("scoring").max_length  # the length it is served at
        conf = st.distill
        torch.manual_seed(conf.seed)
        start = teacher.model_dir if teacher.backend == "cross_encoder" else base
        model, tokenizer = truncated_student(start, st.n_layers, num_labels=5)
        history = distill(
            model, tokenizer, first, second, rows.member_id.tolist(), probs, conf,
            max_length=max_length, device=device,
        )  # fmt: skip
        model.to("cpu").save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        hyper_parameters = {
            "architecture": st.architecture, "n_layers": st.n_layers, "max_length": max_length,
            **vars(conf),
        }  # fmt: skip
        prefix = f"student-l{st.n_layers}"
    else:
        raise PolicyrankError(
            f"student.architecture must be field_encoder or cross_encoder, got {st.architecture!r}"
        )
    version = f"{prefix}-{content_hash(staging)}"
    s = settings.scoring
    card = ModelCard(
        version,
        role="student",
        base=str(base),
        trained=True,
        run_id=run_id,
        policy_version=policy.version,
        prompt_hash=teacher.prompt_hash,
        teacher_model_id=teacher_id,
        teacher_backend=teacher.backend,
        templates={"member": s.member_template, "job": s.job_template},
        training_data={
            "table": wh.path("teacher_labels"),
            "delta_version": data_version,
            "rows": len(rows),
            "members": int(rows.member_id.nunique()),
        },
        hyper_parameters=hyper_parameters,
        history=history,
        code_version=code_version(),
    )
    dest = publish(staging, card)  # same content, same version: a rerun finds it published
    log(f"train: {version} -> {dest} (final loss {history[-1]['total']:.3f})")
    return {"model_version": version, "model_dir": str(dest), "rows": len(rows)}
