"""Analysts query the warehouse by name: `spark-sql` (pyspark's own) reads policyrank.scores
from the metastore the daily run registered, and sees the rows polars and DuckDB see; a
registration killed midway (SIGKILL, its JVM with it) is completed by the next run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from jobs import catalog
from jobs.config.settings import load_settings
from jobs.runtime.faults import ENV, LOG_ENV
from tests.conftest import DAY, cookbook_args


def test_an_unreadable_registered_json_claims_nothing(tmp_path):
    settings = load_settings(None, [f"warehouse={tmp_path}"])
    home = catalog.metastore_dir(settings)
    home.mkdir(parents=True)
    (home / "registered.json").write_text('{"scores": "/wh/sco')  # cut off (written in place)
    assert catalog.registered(settings) == {}  # so every table is registered again


def test_spark_sql_reads_the_registered_names(spark, cookbook, tmp_path, monkeypatch):
    home = cookbook / "_catalog"
    registered = json.loads((home / "registered.json").read_text())
    assert {"scores", "candidates", "quarantine", "teacher_labels"} <= set(registered)
    assert not set(registered) & set(catalog.SIMULATOR_ONLY)  # hidden truth is not registered
    assert registered["scores"] == f"{cookbook}/scores"
    settings = load_settings(None, cookbook_args(cookbook))

    # Two claims gone stale (as after the tables moved): the child that registers them again is
    # killed, with its JVM, after the first; neither may stay claimed. Then the next run
    # completes the registration on the metastore the dead JVM left, and spark-sql reads it.
    moved = ("candidates", "scores")
    stale = {**registered, **{name: f"/moved/{name}" for name in moved}}
    (home / "registered.json").write_text(json.dumps(stale))
    fired = tmp_path.parent / f"{tmp_path.name}-faults.log"  # tmp_path stays empty (below)
    monkeypatch.setenv(ENV, "kill:catalog-register")
    monkeypatch.setenv(LOG_ENV, str(fired))
    killed = catalog.ensure_registered(spark, settings)
    assert "error" in killed and killed["new"] == list(moved)
    assert fired.read_text().startswith("kill catalog-register")
    assert catalog.registered(settings) == {k: v for k, v in stale.items() if k not in moved}
    monkeypatch.delenv(ENV)
    rerun = catalog.ensure_registered(spark, settings)
    assert "error" not in rerun and rerun["new"] == list(moved)
    assert catalog.registered(settings) == registered

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    # test speed only: C1 alone warms this short-lived JVM up faster (docs/benchmarks.md); the
    # properties file keeps its own driver options (derby.system.home)
    env["JAVA_TOOL_OPTIONS"] = "-XX:TieredStopAtLevel=1"
    query = (
        f"SELECT count(*), sum(rank), count(DISTINCT member_id) FROM policyrank.scores "
        f"WHERE run_date = '{DAY}'; SHOW TABLES IN policyrank"
    )
    sql = subprocess.run(
        [bin_dir / "spark-sql", "--properties-file", home / "spark-sql.conf", "-S", "-e", query],
        cwd=tmp_path,  # any working directory: the metastore is found by the properties file
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert sql.returncode == 0, sql.stderr[-3000:]
    lines = sql.stdout.strip().splitlines()
    scores = pl.read_delta(str(cookbook / "scores")).filter(pl.col("run_date").cast(str) == DAY)
    expected = f"{scores.height}\t{scores['rank'].sum()}\t{scores['member_id'].n_unique()}"
    assert lines[0] == expected
    shown = {field for line in lines[1:] for field in line.split("\t")}
    assert set(registered) <= shown, lines[1:]
    assert not list(tmp_path.iterdir()), "no derby.log or metastore_db in the working directory"

    # Registered once: a second daily run finds nothing new and starts no child JVM.
    again = catalog.ensure_registered(spark, settings)
    assert again["new"] == [] and again["registered"] == sorted(registered)
    assert catalog.format_catalog(again).endswith(f"({len(registered)} tables)")
