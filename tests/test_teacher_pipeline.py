"""The teacher's steps on the tiny cookbook warehouse: sampling, gold, labels, calibration."""

import datetime as dt

import pytest
from pyspark.sql import functions as F

from jobs.cli import main
from jobs.config.settings import load_settings
from jobs.quality.splits import is_heldout
from jobs.warehouse.tables import Warehouse
from tests.conftest import DAY, cookbook_args, copy_warehouse


def _table(spark, warehouse, name):
    return spark.read.format("delta").load(f"{warehouse}/{name}")


@pytest.fixture(scope="module")
def warehouse(cookbook, tmp_path_factory):
    """The cookbook's copy: these tests sample, label and calibrate again."""
    return copy_warehouse(cookbook, tmp_path_factory.mktemp("teacher") / "warehouse")


@pytest.fixture(scope="module")
def small_day(spark, warehouse) -> str:
    """A small day of its own for the label tests (the wiring, on a CPU): 80 of the cookbook
    day's sampled pairs, re-dated."""
    day = "2026-11-25"
    wh = Warehouse.of(load_settings(None, cookbook_args(warehouse)), spark)
    few = wh.day("sampled_pairs", dt.date.fromisoformat(DAY)).orderBy("member_id", "job_id")
    few = few.limit(80).withColumn("run_date", F.lit(day).cast("date"))
    wh.replace_day(few, "sampled_pairs", dt.date.fromisoformat(day), run_id="test-small-day")
    return day


def _dated(spark, warehouse, name, day=DAY):
    """One date's rows: the module's tests add other dates, in whatever order they run."""
    return _table(spark, warehouse, name).where(F.col("run_date") == day)


def test_sampling_is_deterministic_and_has_every_source(spark, warehouse):
    first = _dated(spark, warehouse, "sampled_pairs").toPandas()
    main(["sample", "--date", DAY, *cookbook_args(warehouse)])
    again = _dated(spark, warehouse, "sampled_pairs").toPandas()
    key = ["member_id", "job_id", "source", "stratum", "policy_bucket"]
    assert sorted(map(tuple, first[key].values)) == sorted(map(tuple, again[key].values))
    assert set(again.run_id) != set(first.run_id)  # really rewritten, same pairs
    assert set(first.source) == {"candidate", "hard_negative", "random"}
    assert not first.duplicated(["member_id", "job_id"]).any()
    assert (first[first.source == "hard_negative"].policy_bucket != "none").all()
    # a drawn member's whole candidate list is sampled, so the ranking term sees the ordering
    cands = _table(spark, warehouse, "candidates").where(F.col("run_date") == DAY).toPandas()
    drawn = set(first[first.source == "candidate"].member_id)
    lists = cands[cands.member_id.isin(drawn)]
    sampled = first[first.source == "candidate"]
    assert len(lists) == len(sampled) and sampled.groupby("member_id").size().max() > 2
    # another date draws other members (its candidates first)
    main(["candidates", "--date", "2026-11-27", *cookbook_args(warehouse)])
    args = [*cookbook_args(warehouse), "sampling.members_share=0.3"]
    main(["sample", "--date", "2026-11-27", *args])
    other = _table(spark, warehouse, "sampled_pairs").where(F.col("run_date") == "2026-11-27")
    other = other.where(F.col("source") == "candidate").toPandas()
    assert 0.1 < other.member_id.nunique() / len(drawn) < 0.5
    again = _table(spark, warehouse, "sampled_pairs").where(F.col("run_date") == DAY).toPandas()
    assert len(again) == len(first)  # the other date left this one alone


def test_gold_labels_are_versioned_and_carry_the_truth_apart(spark, warehouse):
    gold = _table(spark, warehouse, "gold_labels").toPandas()
    truth = _table(spark, warehouse, "true_grades").toPandas()
    assert len(truth) == len(gold) and "true_grade" not in gold.columns
    assert gold.policy_version.str.match(r"^\d+\.\d+\.\d+\+[0-9a-f]{12}$").all()
    assert gold.injected.any()
    assert gold.rater_grades.apply(len).eq(3).all()


def test_labels_are_soft_complete_and_made_once(spark, warehouse, small_day):
    labels = _dated(spark, warehouse, "teacher_labels").toPandas()
    sampled = _dated(spark, warehouse, "sampled_pairs").count()
    quarantined = _dated(spark, warehouse, "quarantine").where("stage = 'label'").count()
    assert len(labels) + quarantined == sampled
    assert ((labels.grade_probs.apply(sum) - 1).abs() < 1e-4).all()
    argmax = labels.grade_probs.apply(lambda p: max(range(5), key=p.__getitem__))
    assert (labels.grade == argmax).all()
    assert labels.teacher_model_id.str.startswith("simulated-llm-judge-").all()
    assert labels.policy_version.nunique() == 1 and labels.prompt_hash.nunique() == 1
    assert labels.grade.nunique() >= 4  # the stand-in judge uses the whole scale

    main(["label", "--date", DAY, *cookbook_args(warehouse)])
    assert _dated(spark, warehouse, "teacher_labels").count() == len(labels)  # none relabelled
    # another prompt (on the small day: the same rule, fewer pairs to label)
    main(
        ["label", "--date", small_day, *cookbook_args(warehouse), "teacher.inference.max_length=64"]
    )
    simulated = F.col("teacher_model_id").startswith("simulated-llm-judge-")
    hashes = _table(spark, warehouse, "teacher_labels").where(simulated)
    assert hashes.select("prompt_hash").distinct().count() == 2  # another prompt, another set


def test_the_llm_judge_labels_through_the_same_job(spark, warehouse, small_day, tmp_path):
    from tests.tiny_causal_lm import build_tiny_causal_lm

    llm = build_tiny_causal_lm(tmp_path / "tiny-llm-judge")
    args = [
        *cookbook_args(warehouse),
        "teacher.backend=llm",
        f"teacher.model_dir={llm}",
        "teacher.inference.max_length=96",
    ]
    day = small_day
    main(["label", "--date", day, *args])
    by_llm = F.col("teacher_model_id").startswith("tiny-llm-judge-")
    labels = _table(spark, warehouse, "teacher_labels").where(by_llm).toPandas()
    that_day = F.col("run_date") == day
    sampled = _table(spark, warehouse, "sampled_pairs").where(that_day).count()
    quarantined = _table(spark, warehouse, "quarantine").where(
        that_day & (F.col("stage") == "label")
    )
    assert len(labels) > 0 and len(labels) + quarantined.count() == sampled
    assert labels.grade_probs.apply(lambda p: abs(sum(p) - 1) < 1e-4).all()
    main(["label", "--date", day, *args])
    assert _table(spark, warehouse, "teacher_labels").where(by_llm).count() == len(labels)


def test_calibration_reports_kappa_per_slice(spark, warehouse, capsys):
    args = cookbook_args(warehouse)
    main(["calibrate", "--date", DAY, *args])
    out = capsys.readouterr().out
    assert "| overall |" in out and "| injected |" in out and "| clean |" in out
    rows = _table(spark, warehouse, "judge_calibration").where(F.col("run_date") == DAY).toPandas()
    settings = load_settings(None, args)
    heldout = _table(spark, warehouse, "gold_labels").where(is_heldout(settings.eval)).count()
    overall = rows.set_index("slice").loc["overall"]
    assert overall.pairs == heldout
    # the simulated judge is tuned to agree with gold like an LLM judge (kappa 0.72-0.77)
    assert 0.5 < overall.weighted_kappa < 0.95
    assert any(s.startswith("occupation:") for s in rows.slice)
    # The red-team slice makes the injected slice readable: at least gold.red_team_pairs pairs,
    # every one of them injected, beside the clean slice.
    by_slice = rows.set_index("slice")
    red_team = by_slice.loc["source:red_team"].pairs
    assert red_team == settings.gold.red_team_pairs == 100
    assert by_slice.loc["injected"].pairs >= red_team
    assert by_slice.loc["clean"].pairs + by_slice.loc["injected"].pairs == overall.pairs
