"""Typed configuration: YAML file + ``key=value`` overrides, validated against known keys."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from jobs.runtime.errors import PolicyrankError
from udfs.training import DistillConfig

DEFAULT_CONF = Path(__file__).resolve().parents[2] / "conf" / "local.yaml"


# The values live in conf/local.yaml alone: these classes hold the keys, their types and the
# checks. A key missing from the YAML is an error, never a silent default.


@dataclass(frozen=True)
class SparkSettings:
    master: str
    app_name: str
    shuffle_partitions: int
    driver_memory: str
    arrow_batch_rows: int
    extra: dict[str, Any]


@dataclass(frozen=True)
class ChurnSettings:
    """Simulator only: one day of churn (`policyrank advance`), as shares of the current rows."""

    edited_members_share: float
    new_members_share: float
    deleted_members_share: float
    new_jobs_share: float
    closed_jobs_share: float


@dataclass(frozen=True)
class WorldSettings:
    seed: int
    members: int
    jobs: int
    bad_row_share: float
    injection_share: float
    generate_if_missing: bool
    partitions: int
    churn: ChurnSettings


@dataclass(frozen=True)
class ValidationSettings:
    max_text_chars: int


@dataclass(frozen=True)
class CandidateSettings:
    top_k: int
    skill_weight: float


@dataclass(frozen=True)
class IncrementalSettings:
    enabled: bool
    max_changed_share: float


@dataclass(frozen=True)
class InferenceSettings:
    """How a model runs over (member, job) pairs: scoring, the judge and the student alike."""

    max_length: int
    token_budget: int
    gpu_token_budget: int
    cpu_threads: int
    task_cpus: int | None
    task_gpus: float | None

    def batching(self) -> dict[str, int]:
        """What every model config takes: tokens per pair, token budgets, CPU threads."""
        keys = ("max_length", "token_budget", "gpu_token_budget", "cpu_threads")
        return {key: getattr(self, key) for key in keys}


@dataclass(frozen=True)
class InferenceOverrides:
    """One role's values where they differ from ``inference``; null keeps the shared value."""

    max_length: int | None
    token_budget: int | None
    gpu_token_budget: int | None
    cpu_threads: int | None
    task_cpus: int | None
    task_gpus: float | None


@dataclass(frozen=True)
class ScoringSettings:
    model_dir: str | None
    top_n: int
    member_template: str
    job_template: str
    inference: InferenceOverrides


@dataclass(frozen=True)
class SamplingSettings:
    seed: int
    members_share: float
    random_jobs_per_member: int
    hard_negatives_per_bucket: int


@dataclass(frozen=True)
class GoldSettings:
    sampling: SamplingSettings  # the gold sample is drawn like the teacher's, with its own knobs
    n_raters: int
    rater_pool: int
    rater_noise: float
    rater_disagreement: float
    red_team_pairs: int


@dataclass(frozen=True)
class FineTuneSettings:
    base_model_dir: str | None
    epochs: int
    batch_size: int
    learning_rate: float
    warmup_share: float
    seed: int
    balance_grades: bool
    lora_rank: int  # teacher.backend=llm: 0 trains every weight
    lora_alpha: int
    cpu_max_parameters: int  # teacher.backend=llm: bigger bases are refused on a CPU


@dataclass(frozen=True)
class SimulatedJudgeSettings:
    target_kappa: float
    alias_miss: float
    prose_miss: float
    field_trust: float
    title_trust: float
    stuffing_sway: float
    injection_sway: float
    noise: float
    borderline_bias: float
    spread: float
    seed: int


@dataclass(frozen=True)
class TeacherSettings:
    backend: str
    model_dir: str | None
    policy_path: str | None
    prompt_format: str
    member_template: str
    job_template: str
    inference: InferenceOverrides
    fine_tune: FineTuneSettings
    simulated: SimulatedJudgeSettings


@dataclass(frozen=True)
class StudentSettings:
    architecture: str
    base_model_dir: str | None
    max_pairs: int
    member_fields: str
    job_fields: str
    list_fields: str
    member_text: str
    job_text: str
    n_layers: int
    fields: DistillConfig  # the trainers' own config types: one list of knobs
    distill: DistillConfig


@dataclass(frozen=True)
class EvalSettings:
    heldout_share: float
    validation_share: float
    split_seed: int
    max_members: int
    bootstrap_samples: int
    seed: int


@dataclass(frozen=True)
class GateSettings:
    min_gain_over_rules: float
    min_gain_over_prefilter: float
    max_regression_vs_production: float
    min_teacher_ndcg_share: float
    max_stratum_regression: float
    min_stratum_members: int


@dataclass(frozen=True)
class MaintenanceSettings:
    keep_days: int
    weekday: int | None
    allow_short_retention: bool
    lock_wait_s: float


@dataclass(frozen=True)
class CatalogSettings:
    database: str | None
    metastore_dir: str | None


@dataclass(frozen=True)
class Settings:
    warehouse: str
    models_dir: str | None
    reports_dir: str | None
    spark: SparkSettings
    world: WorldSettings
    validation: ValidationSettings
    candidates: CandidateSettings
    incremental: IncrementalSettings
    inference: InferenceSettings
    scoring: ScoringSettings
    sampling: SamplingSettings
    gold: GoldSettings
    teacher: TeacherSettings
    student: StudentSettings
    eval: EvalSettings
    gate: GateSettings
    maintenance: MaintenanceSettings
    catalog: CatalogSettings

    def inference_for(self, role: str) -> InferenceSettings:
        """``inference`` with ``<role>.inference``'s non-null values on top (role: ``scoring``
        or ``teacher``; the student is trained for scoring's)."""
        overrides = {"scoring": self.scoring.inference, "teacher": self.teacher.inference}
        if role not in overrides:
            raise PolicyrankError(f"no inference role {role!r}; roles: scoring, teacher")
        changed = {k: v for k, v in vars(overrides[role]).items() if v is not None}
        return dataclasses.replace(self.inference, **changed)


def load_settings(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> Settings:
    """conf/local.yaml, then the YAML at ``path`` on top of it, then ``dotted.key=value``
    overrides; every key is checked against the known ones."""
    raw = _read_yaml(DEFAULT_CONF)
    if path is not None and Path(path).resolve() != DEFAULT_CONF:
        _merge(raw, _read_yaml(Path(path)))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PolicyrankError(f"override {item!r} is not key=value (e.g. scoring.top_n=5)")
        _set_dotted(raw, key.strip(), yaml.safe_load(value))
    settings = _build(Settings, raw, "")
    if settings.warehouse and "://" not in settings.warehouse:
        # Relative warehouses resolve against the working directory, once, so Spark and
        # deltalake agree on one absolute path.
        settings = dataclasses.replace(settings, warehouse=str(Path(settings.warehouse).resolve()))
    return settings


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise PolicyrankError(f"config file not found: {path}")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise PolicyrankError(f"{path}: expected a mapping at the top level")
    return raw


def _merge(base: dict, top: dict) -> None:
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key != "extra":
            _merge(base[key], value)
        else:
            base[key] = value


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise PolicyrankError(f"override {key!r}: {part!r} is not a section")
    node[leaf] = value


def _build(cls: type, raw: dict, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        name = prefix + unknown[0]
        raise PolicyrankError(
            f"unknown config key {name!r}; known keys here: {', '.join(sorted(known))}"
        )
    missing = sorted(known - set(raw))
    if missing:
        raise PolicyrankError(
            f"config key {prefix + missing[0]!r} is missing: every key has its value in "
            f"{DEFAULT_CONF} (a --conf file and overrides only change values)"
        )
    kwargs = {}
    for key, value in raw.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise PolicyrankError(f"config key {prefix + key!r} must be a section")
            kwargs[key] = _build(hint, value, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, hint, prefix + key)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, name: str) -> Any:
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in allowed:
        return None
    for typ in allowed:
        origin = typing.get_origin(typ) or typ
        if origin is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if origin in (str, bool, dict) and isinstance(value, origin):
            return value
    expected = " or ".join(getattr(t, "__name__", str(t)) for t in allowed)
    raise PolicyrankError(f"config key {name!r} must be {expected}, got {value!r}")
