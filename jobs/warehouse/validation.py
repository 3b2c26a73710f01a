"""Row rules for the input tables: clean what can be cleaned, quarantine what breaks a rule.

Every input row ends in exactly one of the two outputs, so ``rows in = passed + quarantined``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.config.settings import ValidationSettings
from jobs.runtime.errors import PolicyrankError
from jobs.warehouse.tables import Warehouse
from schemas.tables import JOBS, MEMBERS, Table
from schemas.vocab import SENIORITY_LEVELS, WORKPLACE_TYPES

RECORD_CHARS = 2000


@dataclass(frozen=True)
class RowRules:
    table: Table
    key: str
    enums: dict[str, tuple[str, ...]]


MEMBER_RULES = RowRules(
    MEMBERS, "member_id", {"seniority": SENIORITY_LEVELS, "remote_preference": WORKPLACE_TYPES}
)
JOB_RULES = RowRules(
    JOBS, "job_id", {"seniority": SENIORITY_LEVELS, "workplace_type": WORKPLACE_TYPES}
)


@dataclass(frozen=True)
class Validated:
    passed: DataFrame
    quarantined: DataFrame  # source_table, entity_id, reason, record


def clean_text(col: Column) -> Column:
    """Drop control and invisible format characters (zero-width, bidi overrides, BOM) and
    normalise odd spaces, so untrusted text cannot hide structure from prompts or tokenizers."""
    no_format = F.regexp_replace(col, r"[\p{Cc}\p{Cf}]", "")
    return F.trim(F.regexp_replace(no_format, r"[\p{Zs}\s]+", " "))


def validate_rows(df: DataFrame, rules: RowRules, *, max_text_chars: int) -> Validated:
    """Split raw rows into rows that pass ``rules`` (cleaned) and quarantined rows with a reason.

    Reasons, first match wins: ``missing_id``, ``missing:<col>`` for a null or blank required
    column, ``unknown_enum:<col>``, ``text_too_long:<col>``; then among rows sharing an id, all
    but one (the smallest hash of the raw row, so reruns keep the same one) get ``duplicate_id``.
    """
    table = rules.table
    strings = [c.name for c in table.columns if isinstance(c.dtype, T.StringType)]
    record = F.substring(F.to_json(F.struct(*[F.col(c) for c in table.names])), 1, RECORD_CHARS)
    cleaned = df.select(
        *[clean_text(F.col(c)).alias(c) if c in strings else F.col(c) for c in table.names],
        record.alias("_record"),
    )
    for col in rules.enums:
        cleaned = cleaned.withColumn(col, F.lower(F.col(col)))

    reason = F.when(F.col(rules.key).isNull() | (F.col(rules.key) == ""), F.lit("missing_id"))
    for col in table.required:
        reason = reason.when(F.col(col).isNull() | (F.col(col) == ""), F.lit(f"missing:{col}"))
    for col, allowed in rules.enums.items():
        reason = reason.when(~F.col(col).isin(*allowed), F.lit(f"unknown_enum:{col}"))
    for col in strings:
        reason = reason.when(F.length(col) > max_text_chars, F.lit(f"text_too_long:{col}"))
    checked = cleaned.withColumn("_reason", reason)

    # De-duplicate only among rows that passed the rules: a broken copy never wins an id.
    ok = F.col("_reason").isNull()
    by_key = Window.partitionBy(rules.key, ok).orderBy(F.sha2(F.col("_record"), 256), "_record")
    ranked = checked.withColumn(
        "_reason",
        F.when(~ok, F.col("_reason")).when(F.row_number().over(by_key) > 1, F.lit("duplicate_id")),
    )
    passed = ranked.where(F.col("_reason").isNull()).select(*table.names)
    quarantined = ranked.where(F.col("_reason").isNotNull()).select(
        F.lit(table.name).alias("source_table"),
        F.col(rules.key).alias("entity_id"),
        F.col("_reason").alias("reason"),
        F.col("_record").alias("record"),
    )
    return Validated(passed, quarantined)


INPUTS_HINT = "run `policyrank generate` first, or point `warehouse` at your tables"


def check_columns(df: DataFrame, table: Table) -> None:
    """The input contract, checked before anything is written: every column of ``table`` is
    present with its type (extra columns are ignored). A breach stops the run with one line
    naming the table, the column, the expected and the found type; nothing is cast silently."""
    found = {f.name: f.dataType for f in df.schema.fields}
    for col in table.columns:
        expected = col.dtype.simpleString()
        if col.name not in found:
            raise PolicyrankError(
                f"input table '{table.name}': column '{col.name}' is missing (expected {expected})"
            )
        if found[col.name] != col.dtype:
            raise PolicyrankError(
                f"input table '{table.name}': column '{col.name}' is "
                f"{found[col.name].simpleString()}, expected {expected}"
            )


@dataclass(frozen=True)
class Inputs:
    """The input tables of one run, each read once at one Delta version and split by the row
    rules: ``run-daily`` hands one ``Inputs`` to every step, so the whole run sees the same rows
    (a table updated mid-run cannot mix two snapshots) and validates them once. A step run on its
    own reads its own."""

    members: Validated
    jobs: Validated
    raw_members: DataFrame
    raw_jobs: DataFrame
    versions: dict[str, int]

    @classmethod
    def read(cls, wh: Warehouse, conf: ValidationSettings) -> Inputs:
        """``members`` and ``jobs`` at their current versions, held to their contract
        (:func:`check_columns`) and split by :func:`validate_rows`."""
        raw, versions = {}, {}
        for table in (MEMBERS, JOBS):
            raw[table.name], versions[table.name] = wh.read_pinned(table.name, hint=INPUTS_HINT)
            check_columns(raw[table.name], table)
        limit = conf.max_text_chars
        return cls(
            members=validate_rows(raw["members"], MEMBER_RULES, max_text_chars=limit),
            jobs=validate_rows(raw["jobs"], JOB_RULES, max_text_chars=limit),
            raw_members=raw["members"],
            raw_jobs=raw["jobs"],
            versions=versions,
        )

    @property
    def valid(self) -> tuple[DataFrame, DataFrame]:
        """The members and jobs that passed the row rules."""
        return self.members.passed, self.jobs.passed

    def persist(self) -> Inputs:
        """The same inputs with the passed rows kept (memory, then disk) once first computed:
        every later step reads them instead of validating again."""
        keep = StorageLevel.MEMORY_AND_DISK
        return dataclasses.replace(
            self,
            members=dataclasses.replace(self.members, passed=self.members.passed.persist(keep)),
            jobs=dataclasses.replace(self.jobs, passed=self.jobs.passed.persist(keep)),
        )

    def unpersist(self) -> None:
        self.members.passed.unpersist()
        self.jobs.passed.unpersist()

    def describe(self) -> str:
        return ", ".join(f"{name} version {v}" for name, v in sorted(self.versions.items()))


def read_validated(
    wh: Warehouse, conf: ValidationSettings, inputs: Inputs | None = None
) -> tuple[DataFrame, DataFrame]:
    """Members and jobs that pass the row rules: the run's ``inputs`` when given, else read now
    (quarantining them is the candidates job's)."""
    return (inputs or Inputs.read(wh, conf)).valid


@contextmanager
def held_inputs(
    wh: Warehouse, conf: ValidationSettings, inputs: Inputs | None = None
) -> Iterator[tuple[DataFrame, DataFrame]]:
    """Members and jobs that pass the row rules, for a step that joins them several times: the
    run's ``inputs`` when given, else read now and kept (memory, then disk) until the step is
    done, so a step run on its own validates them once, not once per join."""
    with held(wh, conf, inputs) as own:
        yield own.valid


@contextmanager
def held(wh: Warehouse, conf: ValidationSettings, inputs: Inputs | None = None) -> Iterator[Inputs]:
    """:func:`held_inputs`, as the :class:`Inputs` (their versions included)."""
    if inputs is not None:
        yield inputs
        return
    own = Inputs.read(wh, conf).persist()
    try:
        yield own
    finally:
        own.unpersist()
