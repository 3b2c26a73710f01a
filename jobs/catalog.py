"""`policyrank catalog`: register the warehouse's Delta tables by name (``policyrank.scores``, ...).

The names live in a Hive metastore (embedded Derby, the one pyspark ships) under
``catalog.metastore_dir``; each entry is an external Delta table at its warehouse location, so
the data stays where the jobs write it and new days appear without re-registering. The jobs
themselves never open the metastore (embedded Derby admits one JVM at a time, and two daily runs
may overlap): registration runs in a short child JVM, under a file lock, and only when a table is
not registered yet. ``spark-sql`` then reads the names with the properties file written beside
the metastore::

    spark-sql --properties-file warehouse/_catalog/spark-sql.conf \\
        -e "SELECT count(*) FROM policyrank.scores"

``registered.json`` lists the tables registered, by location; it is replaced atomically and
claims a table only once the child that registered it exited cleanly: the tables a child is
about to (re)register lose their claim first, so a child killed mid-registration (SIGKILL, its
JVM with it) leaves them unclaimed and the next run registers them again (``DROP``/``CREATE``
is idempotent, and Derby recovers its files once the dead JVM's file locks are gone). An
unreadable ``registered.json`` claims nothing.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import subprocess
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from jobs.config.settings import Settings
from jobs.models.publish import replace_file
from jobs.runtime.errors import PolicyrankError
from jobs.runtime.faults import crash_point
from jobs.runtime.runlog import log
from jobs.warehouse.tables import Warehouse, beside_tables
from schemas.tables import TABLES

# The simulator's hidden truth is not an analyst's table.
SIMULATOR_ONLY = ("truth", "true_grades")
_REGISTERED = "registered.json"


def metastore_dir(settings: Settings) -> Path:
    """Where the names live: ``catalog.metastore_dir``, else ``<warehouse>/_catalog``."""
    return beside_tables(
        settings, settings.catalog.metastore_dir, "_catalog", "catalog.metastore_dir"
    )


def metastore_conf(metastore_dir: Path) -> dict[str, str]:
    """Spark settings that put the session catalog in a Derby metastore under ``metastore_dir``."""
    home = metastore_dir.resolve()
    return {
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": str(home / "managed"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={home / 'metastore_db'};create=true"
        ),
        # derby.log goes beside the metastore, not into the working directory.
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={home}",
    }


def properties_file(settings: Settings) -> Path:
    return metastore_dir(settings) / "spark-sql.conf"


def write_properties_file(settings: Settings) -> Path:
    """The ``spark-sql --properties-file`` that sees the registered names, with Delta enabled."""
    from jobs.runtime.spark_session import DELTA_SQL_CONF, delta_package

    conf = {
        "spark.jars.packages": delta_package(),
        **DELTA_SQL_CONF,
        **metastore_conf(metastore_dir(settings)),
        "spark.master": settings.spark.master,
        "spark.ui.enabled": "false",
    }
    path = properties_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key} {value}\n" for key, value in conf.items()))
    return path


def product_tables(spark: SparkSession, settings: Settings) -> dict[str, str]:
    """Name -> location of every product table the warehouse holds (simulator truth left out)."""
    wh = Warehouse.of(settings, spark)
    return {
        name: wh.path(name) for name in TABLES if name not in SIMULATOR_ONLY and wh.exists(name)
    }


def registered(settings: Settings) -> dict[str, str]:
    """Name -> location of the tables registered; none when the file is missing or unreadable
    (cut off by a crash before it was written atomically): they are registered again."""
    path = metastore_dir(settings) / _REGISTERED
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        return {}


def _claim(home: Path, tables: dict[str, str]) -> None:
    replace_file(home / _REGISTERED, json.dumps(tables, indent=1))


def ensure_registered(spark: SparkSession, settings: Settings) -> dict:
    """Register the tables not registered yet (a child JVM); a no-op once all are.

    Returns ``{"database", "registered", "new", "properties_file"}``; on failure (for example a
    ``spark-sql`` holding the metastore) ``"error"`` says why and the day's data is untouched.
    """
    database = settings.catalog.database
    try:
        home = metastore_dir(settings)
    except PolicyrankError as err:
        log(f"catalog: tables not registered: {err}")
        return {"database": database, "error": str(err)}
    tables = product_tables(spark, settings)
    wanted = {name: path for name, path in tables.items() if registered(settings).get(name) != path}
    result = {"database": database, "registered": sorted(tables), "new": sorted(wanted)}
    result["properties_file"] = str(write_properties_file(settings))
    if not wanted:
        return result
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # overlapping runs register one after the other
        wanted = {n: p for n, p in tables.items() if registered(settings).get(n) != p}
        if wanted:
            log(f"catalog: registering {len(wanted)} tables as {database}.* (a child JVM)")
            claims = registered(settings)
            kept = {n: p for n, p in claims.items() if n not in wanted}
            if kept != claims:  # the child drops a table before it creates it again
                _claim(home, kept)
            request = {
                "metastore_dir": str(home),
                "database": database,
                "tables": wanted,
                "master": "local[1]",
            }
            child = subprocess.run(
                [sys.executable, "-m", "jobs.catalog", json.dumps(request)],
                capture_output=True,
                text=True,
            )
            if child.returncode != 0:
                reason = (child.stderr.strip().splitlines() or ["no output"])[-1]
                log(f"catalog: tables not registered: {reason}; run `policyrank catalog` later")
                return {**result, "error": reason}
            _claim(home, {**kept, **wanted})
    log(f"catalog: {len(tables)} tables readable as {database}.<table>")
    return result


def format_catalog(result: dict) -> str:
    """One summary line: the names registered, or why they are not."""
    if "error" in result:
        return f"catalog     not registered: {result['error']}"
    new = f", {len(result['new'])} new" if result["new"] else ""
    return f"catalog     {result['database']}.<table> ({len(result['registered'])} tables{new})"


def spark_sql_command(result: dict, query: str) -> str:
    return f'spark-sql --properties-file {result["properties_file"]} -e "{query}"'


def _register(request: dict) -> None:
    """In the child JVM: CREATE DATABASE and one external Delta table per location."""
    from jobs.config.settings import load_settings
    from jobs.runtime.spark_session import build_spark

    conf = metastore_conf(Path(request["metastore_dir"]))
    # A JVM that lives seconds: C1 alone compiles faster and nothing runs long enough for C2.
    conf["spark.driver.extraJavaOptions"] += " -XX:TieredStopAtLevel=1"
    base = load_settings().spark
    spark = build_spark(dataclasses.replace(base, master=request["master"], extra=conf))
    database = request["database"]
    jvm = spark._jvm.java.lang.ProcessHandle.current().pid()  # a crash point kills it too
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {database} COMMENT 'policyrank Delta tables'")
    for name, location in request["tables"].items():
        comment = TABLES[name].doc.replace("'", "\\'")
        spark.sql(f"DROP TABLE IF EXISTS {database}.{name}")  # external: the data stays
        spark.sql(
            f"CREATE TABLE {database}.{name} USING DELTA LOCATION '{location}' COMMENT '{comment}'"
        )
        crash_point("catalog-register", jvm)  # one registered, the rest not
    spark.stop()


if __name__ == "__main__":
    _register(json.loads(sys.argv[1]))
