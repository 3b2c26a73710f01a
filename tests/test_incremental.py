"""Days in a row on Delta, from a copy of the cookbook's warehouse: a day of churn
(sim/churn.py) changes exactly the rows it planned, once; the next day's incremental candidates
and scores equal a full run's row for row; another setting, another model or a change the feed
cannot show means a full run that says why."""

import dataclasses
import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from jobs.candidates import candidates_fingerprint
from jobs.cli import main
from jobs.config.settings import load_settings
from jobs.incremental import changes_since_last_day
from jobs.score import score_fingerprint
from jobs.warehouse.tables import Warehouse
from jobs.warehouse.validation import Inputs
from sim import churn
from tests.conftest import cookbook_args, copy_warehouse

pytestmark = pytest.mark.spark

# D1 is the cookbook's day (tests/conftest.py)
D1, D2, D3 = dt.date(2026, 11, 26), dt.date(2026, 11, 27), dt.date(2026, 11, 28)
KEY = ["member_id", "job_id"]
INPUTS = ("members", "jobs", "truth")
OUTPUTS = ("candidates", "candidate_scores", "scores")


def _args(warehouse, *extra):
    """The cookbook's settings (its day is D1), its production student scoring, and a day of
    churn big enough to touch many lists."""
    return [
        *cookbook_args(warehouse),
        "world.churn.edited_members_share=0.05",
        "world.churn.new_members_share=0.02",
        "world.churn.deleted_members_share=0.02",
        "world.churn.new_jobs_share=0.05",
        "world.churn.closed_jobs_share=0.05",
        "catalog.database=null",
        "maintenance.weekday=null",
        *extra,
    ]


def _day(spark, warehouse, table, day) -> pd.DataFrame:
    frame = spark.read.format("delta").load(f"{warehouse}/{table}").where(F.col("run_date") == day)
    return frame.drop("run_id").toPandas().sort_values(KEY).reset_index(drop=True)


def _steps(warehouse, day, *extra) -> None:
    for step in ("candidates", "score"):
        main([step, "--date", str(day), *_args(warehouse, *extra)])


def _rows(frame: pd.DataFrame) -> list[tuple]:
    """The rows as a sorted multiset, arrays as tuples and missing values as None."""

    def value(v):
        if isinstance(v, list | tuple | np.ndarray):
            return tuple(v)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        return v.item() if isinstance(v, np.generic) else v

    return sorted((tuple(value(v) for v in row) for row in frame.itertuples(False)), key=repr)


@pytest.fixture(scope="module")
def days(spark, tmp_path_factory, cookbook):
    """A copy of the cookbook (D1, run in full by its `run-daily`); a day of churn; D2
    incremental, then D2 again in full. The tables and the log lines of each, as they were."""
    import sys

    warehouse = copy_warehouse(cookbook, tmp_path_factory.mktemp("days") / "warehouse")
    args = _args(warehouse)
    settings = load_settings(None, args)
    wh = Warehouse.of(settings, spark)
    out: dict = {"warehouse": warehouse, "settings": settings, "wh": wh}
    out["versions"] = {n: wh.delta(n).history(1).first()["version"] for n in INPUTS}
    out["before"] = {n: wh.read(n, hint="").toPandas() for n in INPUTS}
    out["before_candidates"] = _day(spark, warehouse, "candidates", D1)
    out["lineage_d1"] = spark.read.format("delta").load(f"{warehouse}/step_inputs").toPandas()
    log = _Kept(sys.stderr)
    sys.stderr = log
    try:
        main(["advance", "--date", str(D2), *args])
        out["advance"] = log.take()
        out["after"] = {n: wh.read(n, hint="").toPandas() for n in INPUTS}
        out["metadata"] = {n: wh.delta(n).history(1).first()["userMetadata"] for n in INPUTS}
        _steps(warehouse, D2)
        out["incremental_log"] = log.take()
        out["incremental"] = {t: _day(spark, warehouse, t, D2) for t in OUTPUTS}
        out["lineage"] = spark.read.format("delta").load(f"{warehouse}/step_inputs").toPandas()
        _steps(warehouse, D2, "incremental.enabled=false")
        out["full_log"] = log.take()
        out["full"] = {t: _day(spark, warehouse, t, D2) for t in OUTPUTS}
    finally:
        sys.stderr = log.stream
    return out


class _Kept:
    """stderr, also kept (the steps' log lines) until taken."""

    def __init__(self, stream) -> None:
        self.stream, self.kept = stream, []

    def write(self, text: str) -> int:
        self.kept.append(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def take(self) -> str:
        text, self.kept = "".join(self.kept), []
        return text


def test_a_day_of_churn_changes_exactly_the_planned_rows_once(days, spark, monkeypatch, capsys):
    settings, wh, old = days["settings"], days["wh"], days["before"]
    plan = churn.plan_churn(old["members"], old["jobs"], old["truth"], settings.world, D2)
    n = plan.counts()
    assert min(n.values()) > 0, n
    assert f"advance {D2}: members {n['members_edited']} edited (" in days["advance"]
    new = days["after"]
    assert _rows(new["members"]) == _rows(plan.members_after(old["members"]))
    assert _rows(new["jobs"]) == _rows(plan.jobs_after(old["jobs"]))
    assert _rows(new["truth"]) == _rows(plan.truth_after(old["truth"]))
    for name in INPUTS:
        assert days["metadata"][name].startswith(f"{D2}-")
        assert days["metadata"][name].endswith(f" churn:{D2}")

    def version(name: str) -> int:
        return wh.delta(name).history(1).first()["version"]

    applied = {n: days["versions"][n] + 1 for n in INPUTS}
    assert {n: version(n) for n in INPUTS} == applied
    args = _args(days["warehouse"])
    main(["advance", "--date", str(D2), *args])
    assert f"advance {D2}: already applied" in capsys.readouterr().err
    assert {n: version(n) for n in INPUTS} == applied

    # a day that failed after its members MERGE: the rerun plans it from the tables as they
    # were before that commit and writes only what is missing
    merge = churn._merge

    def fail_on_jobs(spark, wh, name, *args, **kwargs):
        if name == "jobs":
            raise RuntimeError("killed")
        merge(spark, wh, name, *args, **kwargs)

    monkeypatch.setattr(churn, "_merge", fail_on_jobs)
    with pytest.raises(RuntimeError, match="killed"):
        main(["advance", "--date", str(D3), *args])
    monkeypatch.setattr(churn, "_merge", merge)
    crashed = {n: version(n) for n in INPUTS}
    assert crashed == {n: v + 1 if n == "members" else v for n, v in applied.items()}
    main(["advance", "--date", str(D3), *args])
    assert {n: version(n) for n in INPUTS} == {n: v + 1 for n, v in applied.items()}
    plan = churn.plan_churn(new["members"], new["jobs"], new["truth"], settings.world, D3)
    for name, after in (
        ("members", plan.members_after),
        ("jobs", plan.jobs_after),
        ("truth", plan.truth_after),
    ):
        assert _rows(wh.read(name, hint="").toPandas()) == _rows(after(new[name]))


def test_an_incremental_day_writes_what_a_full_run_writes(days):
    old = days["before"]
    plan = churn.plan_churn(old["members"], old["jobs"], old["truth"], days["settings"].world, D2)
    # the feed's distinct ids: a new row rendered broken may have no id (null counts once) or
    # repeat another new row's
    members = {*plan.edited_members.member_id, *plan.new_members.member_id, *plan.deleted_members}
    jobs = {*plan.new_jobs.job_id, *plan.closed_jobs}
    changed = f"since {D1}: {len(members)} members and {len(jobs)} jobs changed"
    log = days["incremental_log"]
    assert f"candidates: incremental {changed}" in log, log
    assert f"score: incremental {changed}: " in log, log
    carried = int(log.split(" scores carried over")[0].split()[-1].replace(",", ""))
    incremental, full = days["incremental"], days["full"]
    assert 0 < carried < len(incremental["candidates"])
    assert len(incremental["candidates"]) > len(incremental["scores"]) > 0
    # the churn reached the lists: new jobs and members came in, deleted members went
    cands, before = incremental["candidates"], days["before_candidates"]
    assert set(cands.job_id) - set(before.job_id) and set(cands.member_id) - set(before.member_id)
    assert set(before.member_id) - set(cands.member_id)
    lineage = days["lineage"]
    modes = lineage.assign(day=lineage.run_date.astype(str)).set_index(["day", "step"])["mode"]
    assert modes.to_dict() == {
        (str(D1), "candidates"): "full", (str(D1), "score"): "full",
        (str(D2), "candidates"): "incremental", (str(D2), "score"): "incremental",
    }  # fmt: skip
    assert len(days["lineage_d1"]) == 2, "the cookbook's run-daily recorded its day"
    assert "candidates: full run (incremental.enabled is false)" in days["full_log"]
    pd.testing.assert_frame_equal(incremental["candidates"], full["candidates"])
    for table in ("candidate_scores", "scores"):
        a, b = incremental[table], full[table]
        assert a[KEY].equals(b[KEY]), table
        # the same model on the same text; other batches, so floats may differ in the last bits
        np.testing.assert_allclose(a.score, b.score, atol=1e-6)
    assert incremental["scores"]["rank"].equals(full["scores"]["rank"])


def test_what_the_feed_cannot_show_means_a_full_run(days, spark, tmp_path):
    """Another setting or model, or a change the feed did not record (the feed switched off on
    members), each mean a full run, with the reason. On a copy of the module's world (the
    feed stays on there)."""
    warehouse = copy_warehouse(days["warehouse"], tmp_path / "warehouse")
    settings = load_settings(None, _args(warehouse))
    wh = Warehouse.of(settings, spark)

    def since_last(step: str, fingerprint: str) -> str:
        inputs = Inputs.read(wh, settings.validation)
        output = "candidates" if step == "candidates" else "candidate_scores"
        found, why = changes_since_last_day(
            wh, step, D3 + dt.timedelta(days=1), inputs.versions, fingerprint,
            settings.incremental, output=output,
        )  # fmt: skip
        if found:
            found.release()
        return why if found is None else found.describe()

    fingerprint = candidates_fingerprint(settings)
    other_k = dataclasses.replace(
        settings, candidates=dataclasses.replace(settings.candidates, top_k=5)
    )
    assert since_last("candidates", candidates_fingerprint(other_k)) == (
        f"candidates changed since {D2}"
    )
    assert since_last("score", score_fingerprint(settings, "student-fields-0123")) == (
        f"model changed since {D2}"
    )
    # the same model read from another folder is the same model
    version = wh.registry().production()["model_version"]
    moved = dataclasses.replace(settings.scoring, model_dir="/elsewhere/student")
    moved_fp = score_fingerprint(dataclasses.replace(settings, scoring=moved), version)
    assert since_last("score", moved_fp).startswith(f"since {D2}: ")
    members = DeltaTable.forPath(spark, str(warehouse / "members"))
    members.update(F.col("member_id") == "m0000003", {"summary": F.lit("Moved on.")})
    assert since_last("candidates", fingerprint).startswith(f"since {D2}: ")
    spark.sql(
        f"ALTER TABLE delta.`{warehouse}/members` "
        "SET TBLPROPERTIES (delta.enableChangeDataFeed = false)"
    )
    members.update(F.col("member_id") == "m0000004", {"summary": F.lit("Moved on.")})
    assert since_last("candidates", fingerprint).startswith(
        "the change data feed of members cannot be read from version"
    )
