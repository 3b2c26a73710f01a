"""`policyrank maintain`: compaction and time travel, a short retention only when asked (through a
session of its own), and the warehouse lock: no VACUUM while a day is being written, and
run-daily's own maintenance skips while another run writes."""

from __future__ import annotations

import datetime as dt
import fcntl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from jobs import maintain
from jobs.cli import main
from jobs.config.settings import load_settings
from jobs.runtime.errors import PolicyrankError
from jobs.warehouse.day_lock import (
    hold_warehouse,
    hold_warehouse_exclusive,
    try_warehouse_exclusive,
    warehouse_lock_path,
)
from jobs.warehouse.tables import Warehouse

DAY = dt.date(2026, 11, 26)
CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
TUNED = "spark.databricks.delta.vacuum.parallelDelete.enabled"


def _settings(root: Path, *overrides: str):
    return load_settings(None, [f"warehouse={root}", "maintenance.lock_wait_s=120", *overrides])


def _rows(spark, day: dt.date, n: int, *, parts: int = 1, run_id: str = "r"):
    """``n`` candidate rows of ``day`` in ``parts`` partitions (no shuffle: one write task each)."""
    return spark.range(0, n, 1, parts).select(
        F.lit(day).alias("run_date"),
        F.concat(F.lit("m"), F.col("id").cast("string")).alias("member_id"),
        F.lit("j1").alias("job_id"),
        F.lit(1).alias("shared_keys"),
        F.lit(0.5).alias("prefilter_score"),
        F.lit(1).alias("prefilter_rank"),
        F.lit(run_id).alias("run_id"),
    )


def _files(root: Path) -> set[str]:
    return {p.name for p in (root / "candidates").rglob("*.parquet")}


def _lockable(settings, mode: int) -> bool:
    """Whether a new holder could take the warehouse lock in ``mode`` now."""
    with open(warehouse_lock_path(settings), "a+") as handle:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


@contextmanager
def _another_run(settings) -> Iterator[None]:
    """A run in another thread that holds the warehouse lock shared until the block ends."""
    holding, done = threading.Event(), threading.Event()

    def run() -> None:
        with hold_warehouse(settings, run_id="other"):
            holding.set()
            done.wait(120)

    thread = threading.Thread(target=run)
    thread.start()
    assert holding.wait(30)
    try:
        yield
    finally:
        done.set()
        thread.join(30)


# ------------------------------------------------------------ without Spark


def test_the_warehouse_lock_converts_a_runs_shared_hold_and_takes_it_back(tmp_path):
    settings = _settings(tmp_path)
    with hold_warehouse(settings, run_id="mine"):
        assert _lockable(settings, fcntl.LOCK_SH) and not _lockable(settings, fcntl.LOCK_EX)
        with _another_run(settings), try_warehouse_exclusive(settings, run_id="mine") as alone:
            assert not alone
        # the failed conversion dropped this run's shared hold (Linux): it was taken back
        assert not _lockable(settings, fcntl.LOCK_EX)
        with try_warehouse_exclusive(settings, run_id="mine") as alone:
            assert alone and not _lockable(settings, fcntl.LOCK_SH)
            assert '"run_id": "mine"' in warehouse_lock_path(settings).read_text()
        assert _lockable(settings, fcntl.LOCK_SH) and not _lockable(settings, fcntl.LOCK_EX)
    assert _lockable(settings, fcntl.LOCK_EX)


def test_maintain_gives_up_after_lock_wait_s_and_a_remote_warehouse_has_no_lock(tmp_path, capsys):
    settings = _settings(tmp_path, "maintenance.lock_wait_s=0")
    exclusive = hold_warehouse_exclusive(settings, run_id="m")
    with _another_run(settings), pytest.raises(PolicyrankError) as refused, exclusive:
        pytest.fail("maintain ran while a run was writing")
    assert "waiting 0 s to hold" in str(refused.value) and "\n" not in str(refused.value)
    remote = load_settings(None, ["warehouse=s3a://bucket/wh"])
    with hold_warehouse_exclusive(remote, run_id="m"):
        pass
    assert "maintain: no lock taken on s3a://bucket/wh" in capsys.readouterr().err


def test_run_dailys_maintenance_skips_while_another_run_writes_and_runs_alone(
    tmp_path, monkeypatch, capsys
):
    settings = _settings(
        tmp_path, "maintenance.keep_days=0", "maintenance.allow_short_retention=true"
    )
    ran = []
    monkeypatch.setattr(maintain, "_maintain", lambda *args: ran.append(args[2]) or {"t": {}})
    with hold_warehouse(settings, run_id="mine"):  # as run-daily holds it
        with _another_run(settings):
            assert maintain.run_in_daily(None, settings, run_id="mine") is None
        assert ran == []
        assert "maintain: skipped: another run is writing the warehouse" in capsys.readouterr().err
        assert maintain.run_in_daily(None, settings, run_id="mine") == {"t": {}}
        assert ran == [0]
        assert not _lockable(settings, fcntl.LOCK_EX)  # this run holds it shared again


def test_a_short_retention_without_the_flag_is_refused_and_nothing_is_vacuumed(
    tmp_path, monkeypatch, capsys
):
    started = []  # Spark is never started, maintenance never begins
    monkeypatch.setattr("jobs.cli._session", lambda settings: started.append("spark"))
    monkeypatch.setattr(maintain, "_maintain", lambda *args: started.append("maintain"))
    with pytest.raises(SystemExit) as exit_:
        main(["maintain", f"warehouse={tmp_path}", "maintenance.keep_days=3"])
    assert exit_.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert "maintenance.keep_days=3 is under Delta's 7-day default" in errors[0]
    assert "nothing vacuumed; use --allow-short-retention to vacuum" in errors[0]
    in_run = _settings(tmp_path, "maintenance.keep_days=3")
    with pytest.raises(PolicyrankError, match="use maintenance.allow_short_retention=true to"):
        maintain.run_in_daily(None, in_run, run_id="r")
    with pytest.raises(PolicyrankError, match="use --allow-short-retention to"):
        maintain.run(None, in_run, run_id="r")
    assert started == []
    assert not warehouse_lock_path(in_run).exists()  # refused before taking the lock


# ------------------------------------------------------------ with Spark


def test_maintain_compacts_keeps_the_time_travel_and_vacuums_short_in_a_session_of_its_own(
    spark, tmp_path, capsys, monkeypatch, request
):
    root = tmp_path / "warehouse"
    wh = Warehouse.of(_settings(root), spark)
    for i in range(2):  # two appends: two small files
        wh.append(_rows(spark, DAY, 1, run_id=f"r{i}"), "candidates", run_id=f"r{i}")
    path = wh.path("candidates")
    assert DeltaTable.forPath(spark, path).detail().first()["numFiles"] == 2
    main(["maintain", f"warehouse={root}", "maintenance.keep_days=7"])
    table = DeltaTable.forPath(spark, path)
    assert table.detail().first()["numFiles"] == 1
    assert "OPTIMIZE" in [r.operation for r in table.history().collect()]
    # files replaced today are inside the 7 days kept: version 1 (one append) still reads
    assert spark.read.format("delta").option("versionAsOf", 1).load(path).count() == 1
    spark.conf.set(TUNED, "true")  # a caller's own Delta setting, not in the SparkConf
    request.addfinalizer(lambda: spark.conf.unset(TUNED))
    before = spark.conf.getAll
    assert before.get(CHECK) != "false"
    during: dict = {}
    maintain_table = maintain.maintain_table

    def watched(own_wh, name, keep_days):
        # while maintain's session has the check off, the caller's session still refuses
        during["check"] = own_wh.spark.conf.get(CHECK)
        during["tuned"] = own_wh.spark.conf.get(TUNED)
        during["conf"] = spark.conf.getAll
        with pytest.raises(Exception, match="DELTA_VACUUM_RETENTION_PERIOD_TOO_SHORT"):
            spark.sql(f"VACUUM delta.`{path}` RETAIN 0 HOURS")
        return maintain_table(own_wh, name, keep_days)

    monkeypatch.setattr(maintain, "maintain_table", watched)
    main(["maintain", "--allow-short-retention", f"warehouse={root}", "maintenance.keep_days=0"])
    assert during["check"] == "false" and during["conf"] == before
    assert during["tuned"] == "true"  # the rest as the caller's
    assert spark.conf.getAll == before
    assert len(_files(root)) == 1  # RETAIN 0 HOURS in maintain's session: old files are gone
    assert spark.read.format("delta").load(path).count() == 2  # and no row is lost
    assert "maintain: candidates: " in capsys.readouterr().err


def test_a_vacuum_while_a_day_is_being_written_loses_nothing(spark, tmp_path, monkeypatch, capsys):
    """A day's write holds the warehouse lock shared, as a run does; one of its two tasks has
    written its file (not committed yet) while the other stalls. `maintain` with keep_days=0
    waits for the write: without the lock its VACUUM deletes that file and the committed day
    misses it."""
    root = tmp_path / "warehouse"
    settings = _settings(root, "maintenance.keep_days=0")
    wh = Warehouse.of(settings, spark)
    day_dir = root / "candidates" / f"run_date={DAY}"
    release = tmp_path / "release"
    monkeypatch.setenv("POLICYRANK_FAULT", "stall:candidates:0:300")
    monkeypatch.setenv("POLICYRANK_FAULT_RELEASE", str(release))
    outcome: dict = {}

    def write_day() -> None:
        try:
            with hold_warehouse(settings, run_id="writer"):
                rows = _rows(spark, DAY, 200, parts=2, run_id="writer")
                wh.replace_day(rows, "candidates", DAY, run_id="writer")
        except Exception as err:  # reported below
            outcome["write"] = err

    def run_maintain() -> None:
        try:
            outcome["maintain"] = maintain.run(
                spark, settings, run_id="m", allow_short_retention=True
            )
        except Exception as err:
            outcome["maintain"] = err

    writer = threading.Thread(target=write_day)
    writer.start()
    _wait(lambda: day_dir.is_dir() and any(day_dir.glob("*.parquet")), writer, "a written file")
    maintainer = threading.Thread(target=run_maintain)
    maintainer.start()
    err = ""

    def waited_or_done() -> bool:
        nonlocal err
        err += capsys.readouterr().err
        return "maintain: waiting for the runs writing" in err or not maintainer.is_alive()

    _wait(waited_or_done, writer, "maintain to wait or end")
    release.touch()  # the stalled task goes on; the write commits
    writer.join(120)
    maintainer.join(120)
    assert "write" not in outcome, outcome
    assert not isinstance(outcome["maintain"], Exception), outcome["maintain"]
    table = DeltaTable.forPath(spark, wh.path("candidates"))
    missing = [f for f in table.toDF().inputFiles() if not Path(f.removeprefix("file:")).exists()]
    assert missing == [], "VACUUM deleted files of the write under way"
    day = wh.day("candidates", DAY).collect()
    assert sorted(r.member_id for r in day) == sorted(f"m{i}" for i in range(200))
    assert "maintain: waiting for the runs writing the warehouse to end" in err


def _wait(condition, thread: threading.Thread, what: str, seconds: float = 120) -> None:
    """Poll ``condition`` until it holds; fail if ``thread`` ended first or ``seconds`` pass."""
    end = time.monotonic() + seconds
    while not condition():
        assert thread.is_alive(), f"the write ended before {what}"
        assert time.monotonic() < end, f"no {what} after {seconds} s"
        time.sleep(0.1)
