"""End to end, as production meets the daily run, on a copy of the cookbook warehouse (a student
in production, so no retraining) with an explicit scoring model and a sentinel planted in every
profile and job post:

- two dates run at once and both land, each pair labelled once, while a second run of the same
  date (a `policyrank` process) is refused before it writes anything;
- no output shows the planted text: a `policyrank` process's whole output (driver, JVM, Python
  workers, CLI error) and, with fd capture, the in-process runs;
- a rerun replaces exactly its date; `show` compares against the day's previous write;
- a run SIGKILLed mid-write leaves the table at its last version, and a rerun whose Python
  worker fails its first attempt (Spark retries it) writes the same day as a clean run.
"""

import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from jobs.cli import main
from tests.conftest import cookbook_args

# The cookbook's own date stays untouched by runs of other ones.
COOKBOOK_DAY, DAY, OTHER_DAY = "2026-11-26", "2026-11-28", "2026-11-30"
SENTINEL = "ZQX-sentinel-7f3a"
# The suite's session settings, so subprocess runs and in-process reruns batch alike.
SESSION = ["spark.shuffle_partitions=2", "spark.arrow_batch_rows=512", "spark.driver_memory=1g"]
KEY = ["member_id", "job_id"]


def _plant(spark, warehouse, table, columns):
    """Append the sentinel to free-text columns of every row (one rewrite of the snapshot)."""
    path = f"{warehouse}/{table}"
    df = spark.read.format("delta").load(path)
    for col in columns:
        df = df.withColumn(col, F.concat_ws(" ", F.col(col), F.lit(SENTINEL)))
    df.localCheckpoint().write.format("delta").mode("overwrite").save(path)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, cookbook, spark):
    copy = tmp_path_factory.mktemp("daily") / "warehouse"
    shutil.copytree(cookbook, copy, ignore=shutil.ignore_patterns("_catalog"))
    _plant(spark, copy, "members", ["headline", "summary", "skills"])
    _plant(spark, copy, "jobs", ["title", "description"])
    return copy


def _args(warehouse, tiny_model, *extra):
    return [
        *cookbook_args(warehouse),
        f"scoring.model_dir={tiny_model}",
        "scoring.top_n=3",
        "catalog.database=null",  # registration is tested on the cookbook (test_catalog.py)
        "maintenance.weekday=null",
        "sampling.members_share=0.3",  # the two days' samples still overlap; fewer to label
        *extra,
    ]


def _day(spark, warehouse, table, day):
    return spark.read.format("delta").load(f"{warehouse}/{table}").where(f"run_date = '{day}'")


class Run:
    """A `policyrank` process in its own process group (driver, JVM, Python workers), its
    output in files so a full pipe never stalls it."""

    def __init__(self, logs: Path, name: str, *args: str, fault: str = "") -> None:
        self.out, self.err = logs / f"{name}.out", logs / f"{name}.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from jobs.cli import main; main()", *args],
                env={**os.environ, "POLICYRANK_FAULT": fault},
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def finish(self, timeout: float) -> tuple[int, str, str]:
        code = self.proc.wait(timeout)
        return code, self.out.read_text(), self.err.read_text()

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)


def _wait(predicate, timeout: float, what: str, run: Run) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if run.proc.poll() is not None:
            err = run.err.read_text()[-3000:]
            pytest.fail(f"{what}: the run ended first (exit {run.proc.returncode}): {err}")
        if time.monotonic() > end:
            run.kill()
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def daily_runs(warehouse, tiny_model, tmp_path_factory):
    """`run-daily` for DAY and OTHER_DAY at once (two driver threads sharing this process's warm
    Spark, as two jobs on one cluster would; the date lock and Delta's conflict detection work the
    same across processes), and DAY again, a `policyrank` process, while DAY's run holds the
    date."""
    logs = tmp_path_factory.mktemp("daily-logs")
    args = _args(warehouse, tiny_model)
    codes: dict[str, object] = {}

    def run_day(day: str) -> None:
        try:
            main(["run-daily", "--date", day, *args])
            codes[day] = 0
        except SystemExit as exit_:
            codes[day] = exit_.code

    threads = {day: threading.Thread(target=run_day, args=(day,)) for day in (DAY, OTHER_DAY)}
    for thread in threads.values():
        thread.start()
    lock = warehouse / "_locks" / f"run-daily-{DAY}.lock"
    end = time.monotonic() + 60
    while not (lock.exists() and lock.stat().st_size > 0) and time.monotonic() < end:
        time.sleep(0.1)
    refused = Run(logs, "same-day", "run-daily", "--date", DAY, *args).finish(120)
    overlapped = threads[DAY].is_alive()
    for thread in threads.values():
        thread.join(600)
    return {"codes": codes, "refused": refused, "overlapped": overlapped, "lock": lock}


@pytest.fixture(scope="module")
def first_run(spark, warehouse, daily_runs):
    return {
        t: _day(spark, warehouse, t, DAY).toPandas() for t in ("candidates", "scores", "quarantine")
    }


def test_two_dates_run_side_by_side_and_one_date_runs_once(spark, warehouse, daily_runs):
    code, out, err = daily_runs["refused"]
    assert code == 2 and daily_runs["overlapped"], "the refused run overlapped DAY's run"
    assert f"run-daily {DAY} is already running (run {DAY}-" in err
    assert "stopped before writing anything" in err
    assert SENTINEL not in out + err
    assert daily_runs["codes"] == {DAY: 0, OTHER_DAY: 0}
    run_ids = set()
    for day in (DAY, OTHER_DAY):
        scores = _day(spark, warehouse, "scores", day).toPandas()
        candidates = _day(spark, warehouse, "candidates", day).toPandas()
        labels = _day(spark, warehouse, "teacher_labels", day).toPandas()
        # Each day is whole and one run's: never rows of two runs in a table or across tables.
        assert set(scores.run_id) == set(candidates.run_id) == set(labels.run_id)
        assert scores.run_id.nunique() == 1 and set(scores.member_id) == set(candidates.member_id)
        run_ids |= set(scores.run_id)
    assert len(run_ids) == 2
    # Both days sampled pairs the other labelled too; each pair is still labelled once.
    labels = spark.read.format("delta").load(f"{warehouse}/teacher_labels").toPandas()
    assert not labels.duplicated([*KEY, "teacher_model_id", "prompt_hash"]).any()
    assert not daily_runs["lock"].read_text(), "the lock is released, its holder cleared"


def test_run_daily_writes_reconciled_tables(spark, warehouse, first_run):
    members = spark.read.format("delta").load(f"{warehouse}/members").count()
    jobs = spark.read.format("delta").load(f"{warehouse}/jobs").count()
    q = first_run["quarantine"]
    q_in = q[q.stage == "candidates"].source_table.value_counts()
    assert q_in.get("members", 0) > 0  # the 5 % bad rows arrived there
    cands, scores = first_run["candidates"], first_run["scores"]
    passed_members = members - q_in.get("members", 0)
    # rows in = passed + quarantined: every valid member has candidates here (the input-contract
    # tests count the ones that get none, with a reason)
    assert cands.member_id.nunique() == passed_members
    assert jobs == 150 and members == 400
    # every candidate was scored (none quarantined at the score stage here)
    assert (q.stage == "score").sum() == 0
    assert scores.groupby("member_id").size().max() <= 3
    assert set(scores.member_id) == set(cands.member_id)
    assert scores["rank"].min() == 1 and scores.score.between(0, 1).all()
    assert scores.model_version.str.startswith("tiny-cross-encoder-").all()
    # ranks follow scores within each member
    for _, g in scores.groupby("member_id"):
        assert g.sort_values("rank").score.is_monotonic_decreasing


def test_outputs_are_readable_by_spark_sql_and_deltalake(spark, warehouse, first_run):
    sql = spark.sql(f"SELECT count(*) AS n FROM delta.`{warehouse}/scores` WHERE run_date='{DAY}'")
    assert sql.first().n == len(first_run["scores"])
    day = dt.date.fromisoformat(DAY)
    rows = DeltaTable(f"{warehouse}/scores").to_pandas(filters=[("run_date", "=", day)])
    assert len(rows) == len(first_run["scores"])
    assert DeltaTable(f"{warehouse}/quarantine").to_pandas().reason.notna().all()
    # Without Spark, as the README shows: polars, and DuckDB over the Delta table's Arrow dataset
    import duckdb
    import polars as pl

    scores = pl.read_delta(f"{warehouse}/scores").filter(pl.col("run_date") == day)
    assert scores.height == len(first_run["scores"])
    dataset = DeltaTable(f"{warehouse}/scores").to_pyarrow_dataset()  # noqa: F841 (DuckDB reads it)
    n = duckdb.sql(f"SELECT count(*) FROM dataset WHERE run_date = DATE '{DAY}'").fetchone()[0]
    assert n == len(first_run["scores"])


@pytest.mark.spark
def test_missing_inputs_and_model_are_one_line_errors(tmp_path, tiny_model, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["candidates", "--date", DAY, f"warehouse={tmp_path}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "input table 'members' not found" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["score", "--date", DAY, f"warehouse={tmp_path}", f"scoring.model_dir={tmp_path}/x"])
    assert "has no config.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run-daily", "scoring.top_nn=1"])
    assert "unknown config key 'scoring.top_nn'" in capsys.readouterr().err


@pytest.mark.spark
def test_a_decoder_too_big_for_the_cpu_is_refused_before_reading_gold(
    tmp_path, smollm2_folder, capsys
):
    # SmolLM2-135M on a CPU; the warehouse has no gold, so reading it first would fail otherwise
    with pytest.raises(SystemExit) as exit_:
        main(["train-judge", f"warehouse={tmp_path}", "teacher.backend=llm",
              f"teacher.fine_tune.base_model_dir={smollm2_folder}"])  # fmt: skip
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "135M parameters, over the 20M" in err and "cpu_max_parameters" in err, err


def _files(warehouse: Path, table: str, day: str) -> set[str]:
    return {p.name for p in (warehouse / table / f"run_date={day}").glob("part-*")}


def test_a_missing_interpreter_on_the_executors_is_one_error_line(
    spark, warehouse, tiny_model, first_run, monkeypatch, capsys
):
    """Executors that cannot start Python: exit 2, one `error:` line naming the cause and what
    to check, the trace in a file, and nothing written."""
    version = DeltaTable(str(warehouse / "scores")).version()
    # every UDF made from now on names this interpreter to the executors (sc.pythonExec)
    monkeypatch.setattr(spark.sparkContext, "pythonExec", "/nonexistent/venv/bin/python")
    with pytest.raises(SystemExit) as exit_:
        main(["score", "--date", DAY, *_args(warehouse, tiny_model)])
    monkeypatch.undo()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert '"/nonexistent/venv/bin/python" does not exist' in errors[0]
    assert "spark.pyspark.python" in errors[0]
    trace = Path(re.search(r"the whole trace: (\S+)\)", errors[0]).group(1))
    assert "Cannot run program" in trace.read_text()
    assert DeltaTable(str(warehouse / "scores")).version() == version


def test_a_killed_write_keeps_the_last_version(warehouse, tiny_model, first_run, tmp_path):
    """SIGKILL a whole `policyrank score` (driver, JVM, Python workers) once one task of the
    scores write has written its file while the other stalls: nothing is committed."""
    scores = DeltaTable(str(warehouse / "scores"))
    before, version = scores.to_pandas(), scores.version()
    assert (before.run_date.astype(str) == DAY).sum() > 0
    old_files = _files(warehouse, "scores", DAY)  # replaced versions' files stay until VACUUM
    # Two write tasks: AQE would coalesce this small day into one.
    two_tasks = tmp_path / "two-tasks.yaml"
    two_tasks.write_text(
        "spark:\n  extra:\n    spark.sql.adaptive.coalescePartitions.enabled: false\n"
        "    spark.databricks.delta.snapshotPartitions: 2\n"
        "    spark.driver.extraJavaOptions: -XX:TieredStopAtLevel=1\n"
    )
    args = ["--date", DAY, "--conf", str(two_tasks), *_args(warehouse, tiny_model), *SESSION]
    killed = Run(tmp_path, "killed", "score", *args, fault="stall:scores:0:600")
    _wait(lambda: _files(warehouse, "scores", DAY) - old_files, 300, "a scores file", killed)
    killed.kill()
    assert killed.finish(30)[0] == -signal.SIGKILL
    printed = killed.out.read_text() + killed.err.read_text()  # the driver's lines
    # the JVM's and the Python workers' output went to the log file the driver named
    spark_log = re.search(r"Spark's output -> (\S+)", printed)
    assert spark_log, printed[-2000:]
    jvm = Path(spark_log.group(1)).read_text()
    assert "TEST FAULT" in printed and "score: " in printed and "TaskSetManager" not in printed
    assert "Setting default log level" in jvm and SENTINEL not in printed + jvm
    # the console keeps policyrank's own lines (issue 23: at most 10 others)
    others = [line for line in printed.splitlines() if not line.startswith("[policyrank ")]
    assert len(others) <= 10, others
    table = DeltaTable(str(warehouse / "scores"))
    assert table.version() == version, "a killed write committed"
    live = {Path(uri).name for uri in table.file_uris()}
    assert _files(warehouse, "scores", DAY) - old_files - live, "no file was written before"
    pd.testing.assert_frame_equal(table.to_pandas().sort_values(KEY), before.sort_values(KEY))


def test_a_rerun_with_a_failing_worker_replaces_exactly_that_date(
    spark, warehouse, tiny_model, first_run, tmp_path, monkeypatch, capfd
):
    """After the kill, rerun the day's `candidates`, then the killed `score` with a Python worker
    that fails its first attempt on the scores write: Spark retries it (the suite's session is
    local[2,2], one retry, as a cluster allows), and the day equals the clean run's, other dates
    untouched."""
    other_before = _day(spark, warehouse, "scores", COOKBOOK_DAY).toPandas()
    assert len(other_before)
    fired = tmp_path / "faults.log"
    monkeypatch.setenv("POLICYRANK_FAULT", "fail:scores:0")
    monkeypatch.setenv("POLICYRANK_FAULT_LOG", str(fired))
    capfd.readouterr()
    main(["candidates", "--date", DAY, *_args(warehouse, tiny_model)])
    main(["score", "--date", DAY, *_args(warehouse, tiny_model)])
    printed = capfd.readouterr()
    assert fired.read_text() == "fail partition 0 attempt 0\n"  # it failed once, then passed
    assert "TEST FAULT" in printed.err and "score: " in printed.err
    assert SENTINEL not in printed.out + printed.err
    for table in ("candidates", "scores", "quarantine"):
        again = _day(spark, warehouse, table, DAY).toPandas()
        assert len(again) == len(first_run[table]), table  # replaced, never added to
        if table != "quarantine":  # (its label-stage rows are the first run's)
            assert again.run_id.nunique() == 1, table
            assert set(again.run_id) != set(first_run[table].run_id), table  # really rewritten
    scores = _day(spark, warehouse, "scores", DAY).toPandas()
    assert not scores.duplicated(KEY).any()
    cols = [*KEY, "rank", "model_version"]
    before = first_run["scores"].sort_values(KEY).reset_index(drop=True)
    scores = scores.sort_values(KEY).reset_index(drop=True)
    assert before[cols].equals(scores[cols])
    np.testing.assert_allclose(scores.score, before.score, atol=1e-6)
    other_after = _day(spark, warehouse, "scores", COOKBOOK_DAY).toPandas()
    assert other_after.run_id.tolist() == other_before.run_id.tolist()
    # `show` sees the rerun through time travel: the same pairs as the day's previous write
    main(["show", "--date", DAY, *_args(warehouse, tiny_model)])
    shown = capfd.readouterr().out
    assert f"scores: {len(scores):,} rows for {scores.member_id.nunique():,} members" in shown
    assert f"vs {COOKBOOK_DAY}: " in shown
    assert f"{len(scores):,} pairs kept, 0 new, 0 dropped" in shown.split("rerun:")[1]
    # without --date, the latest scored date
    latest = spark.read.format("delta").load(f"{warehouse}/scores").agg({"run_date": "max"})
    main(["show", *_args(warehouse, tiny_model)])
    assert f"policyrank {latest.first()[0]}\n" in capfd.readouterr().out
