"""The worker daemon: Python workers fork from a process that has imported the model stack."""

import os
import sys
from pathlib import Path

from pyspark.sql import functions as F
from pyspark.sql import types as T

from udfs.worker_daemon import preload, stdout_to_stderr


def test_a_failed_preload_is_reported_and_the_rest_still_imported():
    failed = preload(("json", "policyrank_no_such_module"))
    assert len(failed) == 1 and failed[0].startswith("policyrank_no_such_module: ")
    assert "json" in sys.modules


def test_what_a_preload_prints_never_reaches_stdout(capfd):
    # The JVM reads the daemon's port from its stdout: an import's print would corrupt it.
    with stdout_to_stderr():
        print("from python")
        os.write(1, b"from C\n")
    print("after")
    out, err = capfd.readouterr()
    assert out == "after\n"
    assert "from python" in err and "from C" in err


def test_python_workers_start_with_torch_already_imported(spark):
    assert spark.conf.get("spark.python.daemon.module") == "udfs.worker_daemon"

    @F.udf(T.StringType())
    def parent_and_torch(_):  # imports nothing itself (no hints: a plain UDF, not a pandas one)
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().replace(b"\0", b" ")
        return f"{parent.decode()}|{'torch' in sys.modules}|{'transformers' in sys.modules}"

    rows = spark.range(2).select(parent_and_torch("id").alias("seen")).collect()
    for row in rows:
        parent, torch_loaded, transformers_loaded = row.seen.split("|")
        assert "-m udfs.worker_daemon" in parent
        assert torch_loaded == transformers_loaded == "True"
