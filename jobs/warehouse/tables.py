"""The warehouse: every Delta read and write, by table name, with the schema from ``schemas/``,
and the local folders beside the tables (models, registry, reports).

Tables live at any URI Spark can write (a folder, ``file://``, ``s3a://``, ...). Models and the
registry are read by executors and by plain Python, so they live on a local or mounted path of
their own (``models_dir``), never derived from a remote table URI.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config.settings import Settings
from jobs.models.registry import Registry
from jobs.runtime.errors import PolicyrankError
from jobs.runtime.faults import inject_write_fault
from jobs.runtime.spark_session import session_like
from schemas.tables import QUARANTINE, TABLES, Table


def local_path(location: str) -> Path | None:
    """The local folder behind ``location`` (a path or ``file://`` URI), else None.

    >>> local_path("file:///data/wh"), local_path("/data/wh"), local_path("s3a://bucket/wh")
    (PosixPath('/data/wh'), PosixPath('/data/wh'), None)
    """
    if location.startswith("file://"):
        return Path(location.removeprefix("file://"))
    return None if "://" in location else Path(location)


def beside_tables(settings: Settings, explicit: str | None, folder: str, key: str) -> Path:
    """``explicit`` when set, else ``<warehouse>/<folder>`` for a local warehouse; a remote
    warehouse must name the folder in ``key``."""
    if explicit:
        return Path(explicit.removeprefix("file://")).resolve()
    root = local_path(settings.warehouse)
    if root is None:
        raise PolicyrankError(
            f"{key} must be set for a warehouse at {settings.warehouse}: it is a local or "
            "mounted folder that the driver and the executors can read"
        )
    return root / folder


@dataclass(frozen=True)
class Warehouse:
    """The tables of one warehouse by name, and where its models, registry and reports live.

    >>> wh = Warehouse("file:///data/wh", models_dir=Path("/mnt/models"), reports_dir=Path("/r"))
    >>> wh.path("scores"), wh.registry_dir
    ('file:///data/wh/scores', PosixPath('/mnt/models/registry'))
    >>> wh.path("score")
    Traceback (most recent call last):
    ...
    jobs.runtime.errors.PolicyrankError: no table named 'score' in schemas/tables.py
    """

    location: str
    models_dir: Path
    reports_dir: Path
    spark: SparkSession | None = None

    @classmethod
    def of(cls, settings: Settings, spark: SparkSession | None = None) -> Warehouse:
        """The warehouse ``settings`` describe; ``spark`` is needed for table I/O only."""
        return cls(
            location=settings.warehouse.rstrip("/"),
            models_dir=beside_tables(settings, settings.models_dir, "models", "models_dir"),
            reports_dir=beside_tables(settings, settings.reports_dir, "reports", "reports_dir"),
            spark=spark,
        )

    # ------------------------------------------------------------ locations

    @property
    def registry_dir(self) -> Path:
        return self.models_dir / "registry"

    def registry(self) -> Registry:
        return Registry(self.registry_dir)

    def path(self, name: str) -> str:
        return f"{self.location}/{_schema(name).name}"

    # ------------------------------------------------------------ reads

    def exists(self, name: str) -> bool:
        path = self.path(name)
        local = local_path(path)
        if local is not None and not (local / "_delta_log").is_dir():
            return False
        return DeltaTable.isDeltaTable(self._spark, path)

    def read(self, name: str, *, hint: str, version: int | None = None) -> DataFrame:
        """The table (at ``version``, else the latest), or one line saying how to create it."""
        self._require(name, hint)
        return self._load(name, version)

    def read_pinned(self, name: str, *, hint: str) -> tuple[DataFrame, int]:
        """The table at its current version, and that version: lineage records what was read."""
        self._require(name, hint)
        version = self.delta(name).history(1).first()["version"]
        return self._load(name, version), version

    def _require(self, name: str, hint: str) -> None:
        if not self.exists(name):
            raise PolicyrankError(f"input table '{name}' not found at {self.path(name)}: {hint}")

    def _load(self, name: str, version: int | None) -> DataFrame:
        reader = self._spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(self.path(name))

    def day(
        self, name: str, run_date: dt.date, *, hint: str = "", version: int | None = None
    ) -> DataFrame:
        """One run date of a table partitioned by ``run_date`` (at ``version``, else latest)."""
        hint = hint or f"run the step that writes `{name}` for {run_date} first"
        return self.read(name, hint=hint, version=version).where(F.col("run_date") == run_date)

    def delta(self, name: str) -> DeltaTable:
        return DeltaTable.forPath(self._spark, self.path(name))

    # ------------------------------------------------------------ writes

    def create_if_missing(self, name: str) -> None:
        """Create the table from its schema: column comments, NOT NULL where the schema says so
        (input tables excepted: bad raw rows are validation's to quarantine), partitioning."""
        table = _schema(name)
        local = local_path(self.path(name))
        if local is not None and (local / "_delta_log").is_dir():
            return  # the common case, without a round trip to the JVM
        # A local table by its plain path: Delta qualifies file:///x as file:/x and would see
        # two locations in one CREATE.
        location = str(local) if local is not None else self.path(name)
        builder = DeltaTable.createIfNotExists(self._spark).location(location).comment(table.doc)
        for column in table.columns:
            nullable = column.nullable or not table.enforce_not_null
            builder = builder.addColumn(
                column.name, column.dtype, nullable=nullable, comment=column.doc
            )
        if table.partition_by:
            builder = builder.partitionedBy(*table.partition_by)
        for key, value in table.properties:
            builder = builder.property(key, value)
        builder.execute()

    def overwrite(self, df: DataFrame, name: str, *, run_id: str) -> None:
        """Replace a whole snapshot table (the synthetic world, gold labels) atomically, schema
        included."""
        self.create_if_missing(name)
        _conform(df, _schema(name)).write.format("delta").mode("overwrite").option(
            "overwriteSchema", "true"
        ).option("userMetadata", run_id).save(self.path(name))

    def append(self, df: DataFrame, name: str, *, run_id: str) -> None:
        """Append rows. Like :meth:`replace_day`, it adds the columns a newer schema has to a
        table an older policyrank created (``mergeSchema``); nothing else changes."""
        table = _schema(name)
        self.create_if_missing(name)
        (
            inject_write_fault(_conform(df, table), table.name)
            .write.format("delta")
            .mode("append")
            .option("mergeSchema", "true")
            .option("userMetadata", run_id)
            .save(self.path(name))
        )

    def insert_new(self, df: DataFrame, name: str, keys: list[str], *, run_id: str) -> None:
        """Insert the rows of ``df`` whose ``keys`` the table lacks (an insert-only MERGE).

        Unlike an append of rows pre-filtered by a read of the table (a blind append to Delta,
        which two runs commit side by side), the MERGE reads the table inside its transaction,
        so Delta refuses it (``ConcurrentAppendException``) when another run inserted meanwhile:
        the caller retries, and a key is never inserted twice. Schema evolution as
        :meth:`append`."""
        table = _schema(name)
        self.create_if_missing(name)
        # The run id goes into the commit through a session of its own: the SQL conf that
        # carries it is shared by every thread of the caller's session.
        session = session_like(self._spark)
        session.conf.set("spark.databricks.delta.commitInfo.userMetadata", run_id)
        on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        (
            DeltaTable.forPath(session, self.path(name))
            .alias("t")
            .merge(inject_write_fault(_conform(df, table), table.name).alias("s"), on)
            .whenNotMatchedInsertAll()
            .withSchemaEvolution()
            .execute()
        )

    def replace_day(
        self, df: DataFrame, name: str, run_date: dt.date, *, run_id: str, where: str = ""
    ) -> None:
        """Atomically replace the rows of one run date (and ``where``), leaving other dates
        untouched. ``replaceWhere`` makes Delta check that every written row matches the
        predicate, so a rerun of a date can neither duplicate rows nor touch another date."""
        table = _schema(name)
        self.create_if_missing(name)
        predicate = f"run_date = DATE'{run_date.isoformat()}'" + (f" AND {where}" if where else "")
        (
            inject_write_fault(_conform(df, table), table.name)
            .write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", predicate)
            .option("mergeSchema", "true")  # columns a newer schema adds
            .option("userMetadata", run_id)
            .save(self.path(name))
        )

    def replace_quarantine(
        self, rows: DataFrame, run_date: dt.date, stage: str, *, run_id: str
    ) -> DataFrame:
        """Replace ``stage``'s quarantine rows of ``run_date`` with ``rows`` (``source_table,
        entity_id, reason, record``); returns what was written, for counting."""
        out = rows.select(
            F.lit(run_date).alias("run_date"),
            F.lit(stage).alias("stage"),
            "*",
            F.lit(run_id).alias("run_id"),
        )
        self.replace_day(out, QUARANTINE.name, run_date, run_id=run_id, where=f"stage = '{stage}'")
        return out

    @property
    def _spark(self) -> SparkSession:
        if self.spark is None:
            raise PolicyrankError("this Warehouse was made without a SparkSession: no table I/O")
        return self.spark


def _schema(name: str) -> Table:
    if name not in TABLES:
        raise PolicyrankError(f"no table named {name!r} in schemas/tables.py")
    return TABLES[name]


def _conform(df: DataFrame, table: Table) -> DataFrame:
    """The table's columns in its order and types: a column the job forgot fails here, by name."""
    missing = [c.name for c in table.columns if c.name not in df.columns]
    if missing:
        raise PolicyrankError(f"rows for '{table.name}' lack the column(s) {', '.join(missing)}")
    types = dict(df.dtypes)
    return df.select(
        *[
            F.col(c.name)
            if types[c.name] == c.dtype.simpleString()
            else F.col(c.name).cast(c.dtype).alias(c.name)
            for c in table.columns
        ]
    )
