"""The count guards and the score stage's quarantine on a three-member world, and a real Delta
conflict through the CLI (exit 3):

- a pair whose member or job is no longer valid at score time is quarantined with its reason,
  and the score stage still reconciles;
- each count guard (candidates' rows in = passed + quarantined, its valid members = with + without
  candidates, score's candidates = scored + quarantined) stops the step before it writes, so the
  day keeps its last good state;
- a write that loses a commit race on the day's partition ends with exit 3 and one `error:` line,
  and the table holds the winner's rows only.
"""

import contextlib
import datetime as dt
import io
import threading
import time

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import functions as F

from jobs.cli import main
from jobs.config.settings import load_settings
from jobs.warehouse.tables import Warehouse
from schemas.tables import JOBS, MEMBERS
from tests.test_input_contract import JOB
from tests.test_validation import GOOD as MEMBER

DAY, OTHER_DAY = "2026-11-26", "2026-11-27"
TABLES = ("candidates", "quarantine", "scores")


def _write_input(root, table, base, changes) -> None:
    """An input table as an upstream load would leave it (delta-rs: no Spark job needed)."""
    types = {"string": pa.string(), "boolean": pa.bool_()}
    schema = pa.schema([(c.name, types[c.dtype.simpleString()]) for c in table.columns])
    write_deltalake(
        root / table.name, pa.Table.from_pylist([{**base, **c} for c in changes], schema)
    )


@pytest.fixture(scope="module")
def day(spark, tmp_path_factory):
    """DAY's candidates name all 9 pairs of m1-m3 and j1-j3, but by score time m2 has left the
    members and j2 has become invalid (an unknown seniority); then DAY's `score` (by the
    prefilter: no model yet). m4 is a bad row for the candidates stage to quarantine. The
    warehouse and what `score` printed."""
    root = tmp_path_factory.mktemp("guards") / "warehouse"
    members = [{"member_id": "m1"}, {"member_id": "m3"}, {"member_id": "m4", "seniority": "x"}]
    jobs = [{"job_id": "j1"}, {"job_id": "j2", "seniority": "x"}, {"job_id": "j3"}]
    _write_input(root, MEMBERS, MEMBER, members)
    _write_input(root, JOBS, JOB, jobs)
    settings = load_settings(None, [f"warehouse={root}"])
    pairs = [(f"m{m}", f"j{j}", 1, 1 / (m + j), j) for m in (1, 2, 3) for j in (1, 2, 3)]
    columns = ["member_id", "job_id", "shared_keys", "prefilter_score", "prefilter_rank"]
    candidates = spark.createDataFrame(pairs, columns).select(
        F.lit(dt.date.fromisoformat(DAY)).alias("run_date"), "*", F.lit("before").alias("run_id")
    )
    Warehouse.of(settings, spark).replace_day(
        candidates, "candidates", dt.date.fromisoformat(DAY), run_id="before"
    )
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        main(["score", "--date", DAY, f"warehouse={root}"])
    return root, printed.getvalue()


def _versions(root):
    return {t: DeltaTable(str(root / t)).version() for t in TABLES}


def _rows(root, table, run_date=DAY, **where):
    df = DeltaTable(str(root / table)).to_pandas()
    df = df[df.run_date.astype(str) == run_date]
    for col, value in where.items():
        df = df[df[col] == value]
    return df


def test_pairs_that_cannot_be_scored_are_quarantined_with_their_reason(day):
    root, printed = day
    pairs = {(r.member_id, r.job_id) for r in _rows(root, "candidates").itertuples()}
    assert len(pairs) == 9
    expected = {
        f"{m}|{j}": "member_not_valid" if m == "m2" else "job_not_valid"
        for m, j in pairs
        if m == "m2" or j == "j2"
    }
    quarantined = _rows(root, "quarantine", stage="score")
    assert dict(zip(quarantined.entity_id, quarantined.reason, strict=True)) == expected
    assert set(quarantined.source_table) == {"candidates"}
    assert "score: 9 in = 4 scored + 5 quarantined [ok]" in printed
    scored = {(r.member_id, r.job_id) for r in _rows(root, "scores").itertuples()}
    assert scored == {p for p in pairs if f"{p[0]}|{p[1]}" not in expected}


def _tripped(root, capsys, step: str) -> tuple[str, str]:
    """Run ``step`` of DAY, which must stop at a guard; its error and console."""
    capsys.readouterr()
    with pytest.raises(RuntimeError) as error:
        main([step, "--date", DAY, f"warehouse={root}"])
    return str(error.value), capsys.readouterr().err


def test_the_score_guard_stops_a_lost_pair_before_any_write(day, monkeypatch, capsys):
    from jobs import score

    def loses_a_pair(*args):
        scored, bad = prefilter_scores(*args)
        return scored.where((F.col("member_id") != "m1") | (F.col("job_id") != "j1")), bad

    prefilter_scores = score.prefilter_scores
    monkeypatch.setattr(score, "prefilter_scores", loses_a_pair)
    before = _versions(day[0])
    message, err = _tripped(day[0], capsys, "score")
    assert message == "score: 9 candidates but 3 scored + 5 quarantined; nothing written"
    assert "score: 9 in = 3 scored + 5 quarantined [MISMATCH]" in err
    assert _versions(day[0]) == before


def test_the_input_guard_stops_a_lost_row_before_any_write(day, monkeypatch, capsys):
    from jobs.warehouse import validation

    def loses_m3(df, rules, **kwargs):
        checked = validate_rows(df, rules, **kwargs)
        passed = checked.passed.where(F.col(rules.key) != "m3")
        return validation.Validated(passed, checked.quarantined)

    validate_rows = validation.validate_rows
    monkeypatch.setattr(validation, "validate_rows", loses_m3)
    before = _versions(day[0])
    message, err = _tripped(day[0], capsys, "candidates")
    assert message == "members: 3 rows in but 1 passed + 1 quarantined"
    assert "candidates: members: 3 in = 1 passed + 1 quarantined [MISMATCH]" in err
    assert _versions(day[0]) == before


def test_the_member_guard_stops_a_stray_pair_before_any_write(day, monkeypatch, capsys):
    from jobs import candidates

    def adds_a_stranger(*args):
        pairs = candidate_pairs(*args)
        stranger = pairs.sparkSession.createDataFrame([("m9", "j1", 1, 0.5, 1)], pairs.schema)
        return pairs.unionByName(stranger)

    candidate_pairs = candidates.candidate_pairs
    monkeypatch.setattr(candidates, "candidate_pairs", adds_a_stranger)
    before = _versions(day[0])
    message, err = _tripped(day[0], capsys, "candidates")
    assert message.startswith("candidates: valid members do not reconcile: ")
    assert "2 valid members = 3 with candidates + 0 without (none) [MISMATCH]" in err
    assert _versions(day[0]) == before


def test_a_write_that_loses_a_delta_conflict_exits_3_and_commits_nothing(
    spark, day, tmp_path, monkeypatch, capsys
):
    """`candidates` of another date holds its first write (the date's quarantine) open, a task
    stalled, while another writer replaces the same rows: the held write's commit is refused, the
    run stops there, and the table holds the other writer's rows only."""
    uri = f"warehouse=file://{day[0]}"  # a URI warehouse, as a remote one is given
    fired, release = tmp_path / "fired.log", tmp_path / "release"
    monkeypatch.setenv("POLICYRANK_FAULT", "stall:quarantine:0:120")
    monkeypatch.setenv("POLICYRANK_FAULT_LOG", str(fired))
    monkeypatch.setenv("POLICYRANK_FAULT_RELEASE", str(release))  # ends the stall early
    codes: list[object] = []

    def loser() -> None:
        try:
            main(["candidates", "--date", OTHER_DAY, uri])
            codes.append(0)
        except SystemExit as exit_:
            codes.append(exit_.code)

    thread = threading.Thread(target=loser)
    thread.start()
    end = time.monotonic() + 120
    while not (fired.exists() and fired.read_text()):
        assert thread.is_alive(), f"the run ended before its write stalled: {codes}"
        assert time.monotonic() < end, "the quarantine write never stalled"
        time.sleep(0.1)
    monkeypatch.delenv("POLICYRANK_FAULT")  # the winner's write is a plain one
    other_day = dt.date.fromisoformat(OTHER_DAY)
    winner = spark.createDataFrame(
        [("members", "m4", "winner", "{}")],
        "source_table string, entity_id string, reason string, record string",
    )
    wh = Warehouse.of(load_settings(None, [uri]), spark)
    wh.replace_quarantine(winner, other_day, "candidates", run_id="winner")
    assert thread.is_alive(), "the stalled write ended before the other writer committed"
    release.touch()
    thread.join(120)
    assert codes == [3]
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1, errors
    assert "error: another run wrote the same Delta table at the same time: " in errors[0]
    assert "nothing of this write was committed" in errors[0]
    rows = _rows(day[0], "quarantine", OTHER_DAY)
    assert list(zip(rows.entity_id, rows.reason, rows.run_id, strict=True)) == [
        ("m4", "winner", "winner")
    ]
    assert _rows(day[0], "candidates", OTHER_DAY).empty  # the run stopped at the conflict
