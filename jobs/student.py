"""`policyrank train`: distil the teacher's soft labels into a smaller student cross-encoder.

The student keeps the teacher's first ``student.n_layers`` layers (warm start), reads what the
daily scoring renders (``scoring.*_template``), and learns KL(teacher || student) plus a
within-member ranking term (``udfs.distill``). Its score is its expected grade. Training data is
read from Delta through Spark and trained on in one process.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.errors import PolicyrankError
from jobs.judge import teacher_config
from jobs.models import CARD, content_hash, model_version
from jobs.policy import load_policy
from jobs.runlog import log
from jobs.settings import Settings
from jobs.tables_io import read_table
from jobs.validation import read_validated
from schemas.tables import TEACHER_LABELS
from udfs.pair_text import render

STUDENTS = "students"


def code_version() -> str:
    """The git commit of the running code, when it runs from a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        from importlib import metadata

        return f"policyrank {metadata.version('policyrank')}"


def latest_student(settings: Settings) -> Path:
    root = Path(settings.warehouse) / "models" / STUDENTS
    cards = sorted(root.glob(f"*/{CARD}"), key=lambda p: p.stat().st_mtime)
    if not cards:
        raise PolicyrankError(f"no trained student under {root}: run `policyrank train` first")
    return cards[-1].parent


def train(spark: SparkSession, settings: Settings, *, run_id: str) -> dict:
    import torch

    from udfs.distill import DistillConfig, distill, truncated_student

    policy = load_policy(settings.teacher.policy_path)
    teacher = teacher_config(settings, policy)
    teacher_id = model_version(teacher.model_dir)
    if settings.teacher.backend != "cross_encoder":
        raise PolicyrankError("the student is cut from a cross_encoder teacher's first layers")
    path = settings.table_path("teacher_labels")
    labels = read_table(
        spark, path, TEACHER_LABELS, hint="run `policyrank label --date D` first"
    ).where(
        (F.col("teacher_model_id") == teacher_id)
        & (F.col("policy_version") == policy.version)
        & (F.col("prompt_hash") == teacher.prompt_hash)
    )
    data_version = DeltaTable.forPath(spark, path).history(1).first()["version"]
    rows = labels.select("member_id", "job_id", "grade_probs").orderBy("member_id", "job_id")
    members, jobs = read_validated(spark, settings)
    m = members.join(rows.select("member_id").distinct(), "member_id").toPandas()
    j = jobs.join(rows.select("job_id").distinct(), "job_id").toPandas()
    rows = rows.toPandas()
    if rows.empty:
        raise PolicyrankError(f"no teacher labels by {teacher_id} under policy {policy.version}")
    s = settings.scoring
    first = render(s.member_template, m.set_index("member_id").loc[rows.member_id].reset_index())
    second = render(s.job_template, j.set_index("job_id").loc[rows.job_id].reset_index())
    probs = np.stack(rows.grade_probs.to_numpy()).astype(np.float32)
    conf = DistillConfig(max_length=settings.student.max_length, **vars(settings.student.distill))
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(conf.seed)
    model, tokenizer = truncated_student(teacher.model_dir, settings.student.n_layers)
    log(
        f"train: student = first {settings.student.n_layers} layers of {teacher_id}; "
        f"{len(rows):,} soft labels (teacher_labels version {data_version}), {conf}"
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    history = distill(
        model, tokenizer, first, second, rows.member_id.tolist(), probs, conf, device=device
    )
    staging = Path(settings.warehouse) / "models" / STUDENTS / f".staging-{run_id}"
    model.to("cpu").save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    version = f"student-l{settings.student.n_layers}-{content_hash(staging)}"
    dest = staging.parent / version
    card = {
        "model_version": version,
        "role": "student",
        "trained": True,
        "teacher_model_id": teacher_id,
        "policy_version": policy.version,
        "prompt_hash": teacher.prompt_hash,
        "training_data": {"table": path, "delta_version": data_version, "rows": len(rows)},
        "hyper_parameters": {"n_layers": settings.student.n_layers, **vars(conf)},
        "templates": {"member": s.member_template, "job": s.job_template},
        "history": history,
        "code_version": code_version(),
        "eval": None,
        "run_id": run_id,
    }
    (staging / CARD).write_text(json.dumps(card, indent=2))
    if dest.exists():  # same content, same version: training is reproducible
        import shutil

        shutil.rmtree(staging)
    else:
        staging.rename(dest)
    log(f"train: {version} -> {dest} (final loss {history[-1]['total']:.3f})")
    return {"model_version": version, "model_dir": str(dest), "rows": len(rows)}
