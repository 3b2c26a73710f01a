"""End to end, as production meets the daily run, on a copy of the cookbook warehouse (a student
in production, so no retraining) with an explicit scoring model and a sentinel planted in every
profile and job post:

- two dates run at once, one in this process and one as a `policyrank` process, and both land:
  they overlap (timestamps), both need the same unlabelled pairs, and one's teacher-label append,
  held open by a test fault until the other's labels commit, meets Delta's conflict and retries
  (its log line), so each pair is labelled once; a second run of the same date (a process) is
  refused before it writes anything;
- no output shows the planted text: the whole output (driver, JVM log, Python workers) of the
  `run-daily`, `score` and `show` processes;
- SIGKILLed mid-write, a `score` and a `run-daily` (in its teacher-label append) leave their
  tables at the last version, and a rerun equals a clean run; a quarantine write whose task fails
  (no retries: the suite's session is local[2]) commits nothing;
- a rerun replaces exactly its date, with a Python worker that fails its first attempt in a
  `policyrank score` process on local[2,2] (Spark retries it); `show`, run after it in the same
  process, compares against the day's previous write.
"""

import contextlib
import datetime as dt
import io
import json
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
COOKBOOK_DAY, DAY, OTHER_DAY, KILL_DAY = "2026-11-26", "2026-11-28", "2026-11-30", "2026-12-01"
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


# `policyrank` commands in one process, one after the other (one JVM start for several)
_COMMANDS = "import json, sys; from jobs.cli import main\nfor a in json.loads(sys.argv[1]): main(a)"


class Run:
    """A `policyrank` process in its own process group (driver, JVM, Python workers), its
    output in files so a full pipe never stalls it; ``then`` runs more commands after the
    first in the same process. Its JVM compiles with C1 alone, as the suite's other
    short-lived JVMs do (docs/benchmarks.md)."""

    def __init__(
        self,
        logs: Path,
        name: str,
        *args: str,
        then: tuple[list[str], ...] = (),
        fault: str = "",
        fault_log: str = "",
    ) -> None:
        self.out, self.err = logs / f"{name}.out", logs / f"{name}.err"
        env = {
            **os.environ,
            "POLICYRANK_FAULT": fault,
            "POLICYRANK_FAULT_LOG": fault_log,
            "JAVA_TOOL_OPTIONS": "-XX:TieredStopAtLevel=1",
        }
        commands = json.dumps([list(args), *then])
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _COMMANDS, commands],
                env=env,
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


def _labels(warehouse) -> pd.DataFrame:
    return DeltaTable(str(warehouse / "teacher_labels")).to_pandas()


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values([*KEY, "teacher_model_id", "prompt_hash"]).reset_index(drop=True)


def _commits(warehouse, table: str, run_prefix: str) -> list[dict]:
    """The table's commits whose run id (the commit's userMetadata) starts with ``run_prefix``."""
    history = DeltaTable(str(warehouse / table)).history()
    return [c for c in history if str(c.get("userMetadata", "")).startswith(run_prefix)]


def _spark_log(printed: str) -> str:
    """The JVM's and Python workers' output, in the file a `policyrank` process names."""
    found = re.search(r"Spark's output -> (\S+)", printed)
    assert found, printed[-2000:]
    return Path(found.group(1)).read_text()


class _Tee(io.TextIOBase):
    """This process's stderr, also kept: the in-process run's log lines, for assertions."""

    def __init__(self, stream) -> None:
        self.stream, self.kept = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.kept.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


@pytest.fixture(scope="module")
def daily_runs(spark, warehouse, tiny_model, tmp_path_factory):
    """`run-daily` for DAY (a driver thread on this process's warm Spark) and for OTHER_DAY (a
    `policyrank` process) at once, as two jobs on one cluster would. DAY's teacher-label append
    is held open by a test fault until OTHER_DAY's labels have committed, so DAY's commit meets
    a concurrent append to the table it read and must retry. Meanwhile DAY again, a process, is
    refused while DAY's run holds the date."""
    logs = tmp_path_factory.mktemp("daily-logs")
    args = _args(warehouse, tiny_model)
    labelled_before = set(map(tuple, _labels(warehouse)[KEY].to_numpy()))
    fired, release = logs / "faults.log", logs / "release"
    fault = {
        "POLICYRANK_FAULT": "stall:teacher_labels:0:300",
        "POLICYRANK_FAULT_LOG": str(fired),
        "POLICYRANK_FAULT_RELEASE": str(release),
    }
    result: dict[str, object] = {}
    tee = _Tee(sys.stderr)

    def run_day() -> None:
        result["day_start"] = time.time()
        try:
            with contextlib.redirect_stderr(tee):
                main(["run-daily", "--date", DAY, *args])
            result["day_code"] = 0
        except SystemExit as exit_:
            result["day_code"] = exit_.code
        result["day_end"] = time.time()

    os.environ.update(fault)  # read by DAY's writes as they are built; the processes get ""
    try:
        day = threading.Thread(target=run_day)
        day.start()
        other = Run(logs, "other-day", "run-daily", "--date", OTHER_DAY, *args, *SESSION)
        lock = warehouse / "_locks" / f"run-daily-{DAY}.lock"
        _wait(lambda: lock.exists() and lock.stat().st_size > 0, 60, "DAY's date lock", other)
        result["refused"] = Run(logs, "same-day", "run-daily", "--date", DAY, *args).finish(120)
        result["refused_while_held"] = day.is_alive()
        _wait(fired.exists, 400, "DAY's held teacher-label append", other)
        result["held_at"] = fired.stat().st_mtime
        _wait(lambda: _commits(warehouse, "teacher_labels", OTHER_DAY), 400, "OTHER_DAY's labels",
              other)  # fmt: skip
        release.touch()
        day.join(600)
        result["other"] = other.finish(600)
        result["other_end"] = time.time()
    finally:
        for key in fault:
            os.environ.pop(key, None)
    result.update(day_log=tee.kept.getvalue(), lock=lock, labelled_before=labelled_before)
    # The tables as the two runs left them: later tests of this module rerun DAY's steps.
    result["labels"] = _labels(warehouse)
    result["tables"] = {
        (table, day): _day(spark, warehouse, table, day).toPandas()
        for table in ("sampled_pairs", "candidates", "scores", "teacher_labels")
        for day in (DAY, OTHER_DAY)
    }
    return result


@pytest.fixture(scope="module")
def first_run(spark, warehouse, daily_runs):
    return {
        t: _day(spark, warehouse, t, DAY).toPandas() for t in ("candidates", "scores", "quarantine")
    }


def test_two_dates_overlap_race_on_the_same_labels_and_one_date_runs_once(
    spark, warehouse, daily_runs
):
    runs = daily_runs
    code, out, err = runs["refused"]
    assert code == 2 and runs["refused_while_held"], "the refused run overlapped DAY's run"
    assert f"run-daily {DAY} is already running (run {DAY}-" in err
    assert "stopped before writing anything" in err
    other_code, other_out, other_err = runs["other"]
    assert (runs["day_code"], other_code) == (0, 0), other_err[-3000:]
    # The premise: both dates sampled pairs that no run had labelled before ...
    tables = runs["tables"]
    sampled = {
        d: set(map(tuple, tables["sampled_pairs", d][KEY].to_numpy())) for d in (DAY, OTHER_DAY)
    }
    both = (sampled[DAY] & sampled[OTHER_DAY]) - runs["labelled_before"]
    assert both, "the two dates never needed the same unlabelled pair"
    # ... and they overlapped: OTHER_DAY's labels committed while DAY's append was open.
    [other_labels] = _commits(warehouse, "teacher_labels", OTHER_DAY)
    [day_labels] = _commits(warehouse, "teacher_labels", DAY)
    assert runs["day_start"] < runs["held_at"] < other_labels["timestamp"] / 1000
    assert other_labels["timestamp"] < day_labels["timestamp"]
    assert (
        runs["day_end"] > other_labels["timestamp"] / 1000 and runs["other_end"] > runs["day_start"]
    )
    # DAY's append met the conflict and its retry skipped what OTHER_DAY had labelled
    assert (
        "label: another run appended teacher labels meanwhile (attempt 1 of 3)" in runs["day_log"]
    )
    assert "of them were labelled meanwhile by another run" in runs["day_log"]
    # Each pair is labelled once, and the labels are the set a serial run of the two dates makes.
    labels = runs["labels"]
    assert not labels.duplicated([*KEY, "teacher_model_id", "prompt_hash"]).any()
    new = labels[labels.run_id.str.startswith((DAY, OTHER_DAY))]
    assert (
        set(map(tuple, new[KEY].to_numpy()))
        == (sampled[DAY] | sampled[OTHER_DAY]) - runs["labelled_before"]
    )
    assert both <= set(map(tuple, new[KEY].to_numpy()))
    run_ids = set()
    for day in (DAY, OTHER_DAY):
        scores, candidates, day_labels_ = (
            tables[t, day] for t in ("scores", "candidates", "teacher_labels")
        )
        # Each day is whole and one run's: never rows of two runs in a table or across tables.
        assert set(scores.run_id) == set(candidates.run_id) == set(day_labels_.run_id)
        assert scores.run_id.nunique() == 1 and set(scores.member_id) == set(candidates.member_id)
        run_ids |= set(scores.run_id)
    assert len(run_ids) == 2
    assert not daily_runs["lock"].read_text(), "the lock is released, its holder cleared"
    # The whole output of the OTHER_DAY process: its driver's lines, its JVM's and workers' log
    assert "run-daily" in other_err and SENTINEL not in other_out + other_err
    jvm = _spark_log(other_err)
    assert "Setting default log level" in jvm and SENTINEL not in jvm
    assert SENTINEL not in runs["day_log"]


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


def _two_tasks(tmp_path: Path) -> Path:
    """Settings that keep a small write in two tasks (AQE would coalesce it into one)."""
    conf = tmp_path / "two-tasks.yaml"
    conf.write_text(
        "spark:\n  extra:\n    spark.sql.adaptive.coalescePartitions.enabled: false\n"
        "    spark.databricks.delta.snapshotPartitions: 2\n"
    )
    return conf


def test_killed_writes_keep_the_last_version(
    spark, warehouse, tiny_model, first_run, tmp_path, capsys
):
    """SIGKILL two whole processes (driver, JVM, Python workers) at once: a `policyrank score`
    once one task of the scores write has written its file while the other stalls, and a
    `run-daily` of a new date while its teacher-label MERGE is open. Nothing is committed;
    rerun, the label step inserts exactly the pairs still unlabelled."""
    scores = DeltaTable(str(warehouse / "scores"))
    before, version = scores.to_pandas(), scores.version()
    assert (before.run_date.astype(str) == DAY).sum() > 0
    old_files = _files(warehouse, "scores", DAY)  # replaced versions' files stay until VACUUM
    labels_table = DeltaTable(str(warehouse / "teacher_labels"))
    labels_before, labels_version = labels_table.to_pandas(), labels_table.version()
    conf = ["--conf", str(_two_tasks(tmp_path))]
    common = [*conf, *_args(warehouse, tiny_model), *SESSION]
    killed = Run(tmp_path, "killed", "score", "--date", DAY, *common,
                 fault="stall:scores:0:600")  # fmt: skip
    fired = tmp_path / "label-fault.log"
    killed_label = Run(tmp_path, "killed-label", "run-daily", "--date", KILL_DAY, *common,
                       fault="stall:teacher_labels:0:600", fault_log=str(fired))  # fmt: skip
    _wait(lambda: _files(warehouse, "scores", DAY) - old_files, 300, "a scores file", killed)
    killed.kill()
    _wait(fired.exists, 300, "the open teacher-label MERGE", killed_label)
    killed_label.kill()
    assert killed.finish(30)[0] == killed_label.finish(30)[0] == -signal.SIGKILL
    printed = killed.out.read_text() + killed.err.read_text()  # the driver's lines
    # the JVM's and the Python workers' output went to the log file the driver named
    jvm = _spark_log(printed)
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
    # the killed MERGE: the labels are as they were
    labels_table = DeltaTable(str(warehouse / "teacher_labels"))
    assert labels_table.version() == labels_version, "a killed MERGE committed"
    pd.testing.assert_frame_equal(_sorted(_labels(warehouse)), _sorted(labels_before))
    # rerun: the label step inserts exactly the date's sampled pairs nobody had labelled
    main(["label", "--date", KILL_DAY, *_args(warehouse, tiny_model)])
    assert "label: " in capsys.readouterr().err
    after = _labels(warehouse)
    kept = after.run_id.isin(labels_before.run_id)
    pd.testing.assert_frame_equal(_sorted(after[kept]), _sorted(labels_before))
    added = after[~kept]
    sampled = _day(spark, warehouse, "sampled_pairs", KILL_DAY).toPandas()
    todo = set(map(tuple, sampled[KEY].to_numpy())) - set(map(tuple, labels_before[KEY].to_numpy()))
    assert todo and set(map(tuple, added[KEY].to_numpy())) == todo
    assert len(added) == len(todo) and added.run_id.nunique() == 1


def test_a_rerun_with_a_failing_worker_replaces_exactly_that_date(
    spark, warehouse, tiny_model, first_run, tmp_path, monkeypatch, capfd
):
    """After the kills: a `candidates` rerun whose quarantine write fails (no retry in this
    local[2] session) commits nothing; then the day's `candidates`, and the killed `score` as a
    process on local[2,2] (one retry, as a cluster allows) whose Python worker fails its first
    attempt on the scores write: Spark retries it, and the day equals the clean run's, other
    dates untouched. `show`, after it in that process, compares against the day's previous
    write."""
    other_before = _day(spark, warehouse, "scores", COOKBOOK_DAY).toPandas()
    assert len(other_before)
    versions = {t: DeltaTable(str(warehouse / t)).version() for t in ("quarantine", "candidates")}
    monkeypatch.setenv("POLICYRANK_FAULT", "fail:quarantine:0")
    # a worker's own error is no operator error: it surfaces whole, as the task's exception
    with pytest.raises(Exception, match="first attempt of partition 0 fails"):
        main(["candidates", "--date", DAY, *_args(warehouse, tiny_model)])
    assert {t: DeltaTable(str(warehouse / t)).version() for t in versions} == versions
    monkeypatch.delenv("POLICYRANK_FAULT")
    main(["candidates", "--date", DAY, *_args(warehouse, tiny_model)])
    fired = tmp_path / "faults.log"
    # then `show`, in the same process: it compares against the day's previous write
    show = ["show", "--date", DAY, *_args(warehouse, tiny_model), *SESSION]
    code, shown, err = Run(
        tmp_path, "retried", "score", "--date", DAY, *_args(warehouse, tiny_model), *SESSION,
        "spark.master=local[2,2]", then=(show,), fault="fail:scores:0", fault_log=str(fired),
    ).finish(400)  # fmt: skip
    assert code == 0, err[-3000:]
    assert fired.read_text() == "fail partition 0 attempt 0\n"  # it failed once, then passed
    assert "TEST FAULT" in err and "score: " in err
    jvm = _spark_log(err)
    assert "first attempt of partition 0 fails" in jvm  # the worker's error, in the JVM's log
    assert SENTINEL not in shown + err + jvm  # `score`'s and `show`'s whole output
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
    # `show` saw the rerun through time travel: the same pairs as the day's previous write
    assert f"scores: {len(scores):,} rows for {scores.member_id.nunique():,} members" in shown
    assert f"vs {COOKBOOK_DAY}: " in shown
    assert f"{len(scores):,} pairs kept, 0 new, 0 dropped" in shown.split("rerun:")[1]
    # without --date, the latest scored date
    latest = spark.read.format("delta").load(f"{warehouse}/scores").agg({"run_date": "max"})
    main(["show", *_args(warehouse, tiny_model)])
    assert f"policyrank {latest.first()[0]}\n" in capfd.readouterr().out
