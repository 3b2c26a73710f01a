"""A PySpark worker daemon that imports the model stack once, before it forks workers.

Spark runs one daemon per executor (``python -m pyspark.daemon``) and forks a Python worker from
it for each task slot. A worker idle for a minute is stopped (Spark's ``PythonWorkerFactory``,
not configurable), and the next task forks a new one. Each fresh worker then imports torch and
transformers on its first model UDF: about 12 s of CPU per worker on the development machine
(``bench/worker_start.py``). With ``spark.python.daemon.module=udfs.worker_daemon`` (the
default :func:`jobs.runtime.spark_session.build_spark` sets) the daemon imports them once and
every forked worker starts with them in memory, shared copy-on-write.

Importing torch does not initialise CUDA, so forked workers still pick their own GPU. A preload
that fails is reported on stderr and the daemon carries on as Spark's own: workers import what
they need themselves, as before. Anything an import prints goes to stderr too: the JVM reads the
daemon's port from its stdout.

Example::

    spark-submit --conf spark.python.daemon.module=udfs.worker_daemon jobs/cli.py score ...
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator

# What every model UDF imports: torch, transformers' Auto* classes (the bulk of transformers'
# import time) and policyrank's model cores.
PRELOAD = ("torch", "transformers", "udfs.cross_encoder", "udfs.field_student", "udfs.teacher")
AUTO_CLASSES = ("AutoConfig", "AutoTokenizer", "AutoModel", "AutoModelForSequenceClassification")


def preload(modules: tuple[str, ...] = PRELOAD) -> list[str]:
    """Import ``modules`` (and resolve transformers' Auto* classes); return the ones that failed,
    each as ``"name: error"``."""
    failed = []
    for name in modules:
        try:
            module = importlib.import_module(name)
            if name == "transformers":
                for auto in AUTO_CLASSES:
                    getattr(module, auto)
        except Exception as err:  # a broken optional import must not stop the daemon
            failed.append(f"{name}: {type(err).__name__}: {err}")
    return failed


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send what is printed to stdout (by Python or by a library's C code) to stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main() -> None:
    with stdout_to_stderr():
        failed = preload()
    for failure in failed:
        print(f"[policyrank worker_daemon] preload skipped {failure}", file=sys.stderr)
    from pyspark import daemon

    daemon.manager()


if __name__ == "__main__":
    main()
