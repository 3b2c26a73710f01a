"""Typed configuration: YAML file + ``key=value`` overrides, validated against known keys."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jobs.runtime.errors import PolicyrankError

DEFAULT_CONF = Path(__file__).resolve().parents[2] / "conf" / "local.yaml"


@dataclass(frozen=True)
class SparkSettings:
    master: str = "local[2]"
    app_name: str = "policyrank"
    shuffle_partitions: int = 4
    driver_memory: str = "4g"
    arrow_batch_rows: int = 4096
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WorldSettings:
    seed: int = 7
    members: int = 2000
    jobs: int = 500
    bad_row_share: float = 0.02
    injection_share: float = 0.02
    generate_if_missing: bool = True
    partitions: int = 4


@dataclass(frozen=True)
class ValidationSettings:
    max_text_chars: int = 20000


@dataclass(frozen=True)
class CandidateSettings:
    top_k: int = 20
    skill_weight: float = 0.7


@dataclass(frozen=True)
class ScoringSettings:
    model_dir: str | None = None
    top_n: int = 10
    max_length: int = 256
    token_budget: int = 8192
    gpu_token_budget: int = 65536
    cpu_threads: int = 1
    task_cpus: int | None = None
    task_gpus: float | None = None
    member_template: str = "{headline}. Skills: {skills}."
    job_template: str = "{title}. Required skills: {skills}."


@dataclass(frozen=True)
class SamplingSettings:
    seed: int = 17
    members_share: float = 0.5
    random_jobs_per_member: int = 4
    hard_negatives_per_bucket: int = 150


@dataclass(frozen=True)
class GoldSettings:
    seed: int = 29
    members_share: float = 0.4
    random_jobs_per_member: int = 4
    hard_negatives_per_bucket: int = 150
    n_raters: int = 3
    rater_noise: float = 0.1
    rater_disagreement: float = 0.1
    red_team_pairs: int = 300

    @property
    def sampling(self) -> SamplingSettings:
        """The gold sample is drawn like the teacher's, with the gold knobs."""
        return SamplingSettings(
            self.seed,
            self.members_share,
            self.random_jobs_per_member,
            self.hard_negatives_per_bucket,
        )


@dataclass(frozen=True)
class FineTuneSettings:
    base_model_dir: str | None = None
    epochs: int = 3
    batch_size: int = 16
    learning_rate: float = 5e-5
    warmup_share: float = 0.1
    seed: int = 0
    balance_grades: bool = True


@dataclass(frozen=True)
class SimulatedJudgeSettings:
    noise: float = 0.28
    spread: float = 0.6
    borderline_bias: float = 0.15
    ignore_dimension: float = 0.08
    injection_sway: float = 0.3
    seed: int = 0


@dataclass(frozen=True)
class TeacherSettings:
    backend: str = "simulated"
    model_dir: str | None = None
    policy_path: str | None = None
    member_template: str = "{headline}. Skills: {skills}. {summary}"
    job_template: str = "{title}. Skills: {skills}. {description}"
    max_length: int = 256
    token_budget: int = 8192
    gpu_token_budget: int = 65536
    cpu_threads: int = 1
    task_cpus: int | None = None
    task_gpus: float | None = None
    fine_tune: FineTuneSettings = field(default_factory=FineTuneSettings)
    simulated: SimulatedJudgeSettings = field(default_factory=SimulatedJudgeSettings)


@dataclass(frozen=True)
class DistillSettings:
    epochs: int = 2
    batch_members: int = 8
    learning_rate: float = 1e-4
    warmup_share: float = 0.1
    ranking_weight: float = 0.5
    temperature: float = 1.0
    margin: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class FieldDistillSettings:
    epochs: int = 30
    batch_members: int = 16
    learning_rate: float = 3e-3
    weight_decay: float = 0.01
    ranking_weight: float = 0.5
    temperature: float = 1.0
    margin: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class StudentSettings:
    architecture: str = "field_encoder"
    base_model_dir: str | None = None
    max_pairs: int = 60000
    member_fields: str = ""
    job_fields: str = ""
    list_fields: str = "skills:skills"
    n_layers: int = 3
    max_length: int = 128
    fields: FieldDistillSettings = field(default_factory=FieldDistillSettings)
    distill: DistillSettings = field(default_factory=DistillSettings)


@dataclass(frozen=True)
class EvalSettings:
    heldout_share: float = 0.3
    split_seed: int = 31
    max_members: int = 300
    bootstrap_samples: int = 1000
    seed: int = 0


@dataclass(frozen=True)
class GateSettings:
    min_gain_over_prefilter: float = 0.0
    max_regression_vs_production: float = 0.01
    min_teacher_ndcg_share: float = 0.95
    max_stratum_regression: float = 0.10
    min_stratum_members: int = 20


@dataclass(frozen=True)
class MaintenanceSettings:
    keep_days: int = 7
    weekday: int | None = 6


@dataclass(frozen=True)
class CatalogSettings:
    database: str | None = "policyrank"
    metastore_dir: str | None = None


@dataclass(frozen=True)
class Settings:
    warehouse: str = "warehouse"
    spark: SparkSettings = field(default_factory=SparkSettings)
    world: WorldSettings = field(default_factory=WorldSettings)
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    candidates: CandidateSettings = field(default_factory=CandidateSettings)
    scoring: ScoringSettings = field(default_factory=ScoringSettings)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    gold: GoldSettings = field(default_factory=GoldSettings)
    teacher: TeacherSettings = field(default_factory=TeacherSettings)
    student: StudentSettings = field(default_factory=StudentSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    maintenance: MaintenanceSettings = field(default_factory=MaintenanceSettings)
    catalog: CatalogSettings = field(default_factory=CatalogSettings)

    def table_path(self, name: str) -> str:
        return f"{self.warehouse.rstrip('/')}/{name}"

    @property
    def models_dir(self) -> Path:
        return Path(self.warehouse) / "models"

    @property
    def warehouse_reports(self) -> Path:
        return Path(self.warehouse) / "reports"

    @property
    def registry_dir(self) -> Path:
        return Path(self.warehouse) / "registry"

    @property
    def metastore_dir(self) -> Path:
        """Where the table names live: ``catalog.metastore_dir``, else ``<warehouse>/_catalog``
        for a warehouse on the local file system."""
        if self.catalog.metastore_dir:
            return Path(self.catalog.metastore_dir).resolve()
        if "://" in self.warehouse and not self.warehouse.startswith("file://"):
            raise PolicyrankError(
                f"catalog.metastore_dir must be set for a warehouse at {self.warehouse}: the "
                "metastore is a local folder"
            )
        return Path(self.warehouse.removeprefix("file://")) / "_catalog"


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
