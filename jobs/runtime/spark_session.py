"""One way to build a SparkSession with Delta Lake, for the CLI, spark-submit and tests.

Delta's JARs come the standard way: ``configure_spark_with_delta_pip`` adds
``io.delta:delta-spark_4.1_2.13:<delta-spark version>`` to ``spark.jars.packages`` and Ivy
resolves it from Maven Central on the first start, caching it under ``~/.ivy2.5.2`` (Spark 4).
The JAR list Ivy resolved is then kept (``~/.cache/policyrank``), and later starts hand it to
``spark.jars`` without asking Ivy again, as long as every file is still there.
Under spark-submit the JVM is already running, so the package must be on the submit command.

The JVM's own output (Ivy's report, Spark's start-up warnings, later log lines and what Python
workers print) goes to a log file when one is given (the CLI's default): the console keeps
policyrank's own lines.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

from delta import configure_spark_with_delta_pip
from pyspark import SparkContext
from pyspark.sql import SparkSession

from jobs.config.settings import SparkSettings
from jobs.runtime.errors import PolicyrankError
from udfs import worker_daemon

# Delta's SQL extension and catalog: for the jobs' sessions and spark-sql's properties file.
DELTA_SQL_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def build_spark(conf: SparkSettings, *, log_file: Path | None = None) -> SparkSession:
    """Return the active SparkSession, or start one from ``conf`` with Delta enabled.

    Under ``spark-submit`` on a cluster the master comes from the submit command; ``conf.master``
    only applies when no master was given there. With ``log_file``, a JVM started here writes
    its output there (appending) instead of this process's console.
    """
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    # Python workers must run the driver's interpreter (the venv policyrank is installed in),
    # not whatever `python3` is first on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.appName(conf.app_name)
        .config(map=DELTA_SQL_CONF)
        .config("spark.sql.shuffle.partitions", str(conf.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(conf.arrow_batch_rows))
        # Keep Python workers (and the model each one caches) alive between tasks.
        .config("spark.python.worker.reuse", "true")
        # Fork workers from a daemon that has imported torch and transformers already: a fresh
        # worker (the first, or one after a minute idle) then starts in a fraction of a second.
        .config("spark.python.daemon.module", worker_daemon.__name__)
        .config("spark.ui.showConsoleProgress", "false")
    )
    if not _under_spark_submit():
        builder = (
            builder.master(conf.master)
            .config("spark.driver.memory", conf.driver_memory)
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false")
        )
    for key, value in conf.extra.items():
        builder = builder.config(key, str(value))
    # a JVM starts only when this process has no SparkContext yet (any thread's)
    starting = SparkContext._active_spark_context is None and not _under_spark_submit()
    jars = _cached_jars() if starting else None
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    else:
        builder = configure_spark_with_delta_pip(builder)
    with _jvm_output_to(log_file if starting else None):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    _require_delta(spark)
    if starting:
        _say_where_jars_came_from(spark, jars, log_file)
    return spark


def session_like(spark: SparkSession) -> SparkSession:
    """A session of its own on ``spark``'s SparkContext, with ``spark``'s SQL settings: a
    setting changed in it (a commit's user metadata, a VACUUM's) reaches no other thread that
    shares ``spark`` (``newSession()`` alone starts from the SparkConf, losing runtime ones)."""
    own = spark.newSession()
    for key, value in spark.conf.getAll.items():
        if spark.conf.isModifiable(key):
            own.conf.set(key, value)
    return own


def jars_list_file() -> Path:
    """Where the JAR list Ivy resolved for :func:`delta_package` is kept between starts."""
    import pyspark

    cache = Path(os.environ.get("POLICYRANK_CACHE", "~/.cache/policyrank")).expanduser()
    name = f"delta-jars-{delta_package().replace(':', '_')}-pyspark-{pyspark.__version__}.txt"
    return cache / name


def _cached_jars() -> list[str] | None:
    try:
        jars = jars_list_file().read_text().split()
    except OSError:
        return None
    return jars if jars and all(Path(j).is_file() for j in jars) else None


def _say_where_jars_came_from(spark: SparkSession, jars: list[str] | None, log_file) -> None:
    from jobs.runtime.runlog import log

    output = f"; Spark's output -> {log_file}" if log_file else ""
    if jars:
        log(f"spark: Delta JARs from {jars_list_file()} ({len(jars)} files, no Ivy){output}")
        return
    resolved = spark.sparkContext.getConf().get("spark.jars", "")
    paths = [urlparse(j).path or j for j in resolved.split(",") if j]
    if paths and all(Path(p).is_file() for p in paths):
        target = jars_list_file()
        with contextlib.suppress(OSError):  # a read-only home only costs Ivy next time
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text("\n".join(paths) + "\n")
            tmp.replace(target)  # atomic: a concurrent start reads the old list or the new
    log(f"spark: Delta JARs resolved by Ivy ({delta_package()}, ~/.ivy2.5.2){output}")


@contextlib.contextmanager
def _jvm_output_to(log_file: Path | None) -> Iterator[None]:
    """Point fds 1 and 2 at ``log_file`` while the JVM starts: it inherits them for its whole
    life. If the start fails, the log's last lines come to stderr, since they hold the cause."""
    if log_file is None:
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    except Exception:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        tail = log_file.read_text(errors="replace").splitlines()[-15:]
        print("\n".join([f"Spark did not start; the end of {log_file}:", *tail]), file=sys.stderr)
        raise
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)


def delta_package() -> str:
    """The Maven coordinate of the Delta JAR matching the installed pyspark and delta-spark."""
    import pyspark

    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    return f"io.delta:delta-spark_{spark_minor}_2.13:{metadata.version('delta-spark')}"


def _require_delta(spark: SparkSession) -> None:
    try:
        # --packages JARs live in Spark's context class loader, not the system one.
        loader = spark._jvm.java.lang.Thread.currentThread().getContextClassLoader()
        loader.loadClass("io.delta.sql.DeltaSparkSessionExtension")
    except Exception as err:  # py4j wraps ClassNotFoundException
        raise PolicyrankError(
            f"Delta Lake is not on this Spark's classpath: pass --packages {delta_package()} "
            "to spark-submit (or let policyrank start Spark itself)"
        ) from err


def _under_spark_submit() -> bool:
    """spark-submit starts the Python driver itself and hands it a gateway port."""
    return "PYSPARK_GATEWAY_PORT" in os.environ
