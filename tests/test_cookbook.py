"""The whole cookbook on tiny data: run-daily labels with the simulated judge, distils a field
student, evaluates it against gold (and the simulator's truth), gates, promotes and scores."""

import datetime as dt
import json
import shutil

import pytest
from pyspark.sql import functions as F

from jobs.cli import main
from jobs.config.settings import load_settings
from jobs.models.registry import Registry
from jobs.quality.splits import is_heldout, is_training, is_validation
from tests.conftest import DAY, cookbook_args, copy_warehouse


def _table(spark, warehouse, name):
    return spark.read.format("delta").load(f"{warehouse}/{name}")


def test_run_daily_trains_evaluates_promotes_and_scores(spark, cookbook):
    production = Registry(cookbook / "models" / "registry").production()
    assert production["model_version"].startswith("student-fields-")
    card = json.loads(
        (
            cookbook / "models" / "students" / production["model_version"] / "policyrank_model.json"
        ).read_text()
    )
    assert card["teacher_model_id"].startswith("simulated-llm-judge-")
    assert card["training_data"]["delta_version"] >= 0 and "eval" not in card  # written once
    assert card["templates"]["member"] == load_settings().scoring.member_template
    scores = _table(spark, cookbook, "scores").toPandas()
    assert set(scores.model_version) == {production["model_version"]}
    assert scores.score.between(0, 4).all()  # a student's score is its expected grade
    metrics = _table(spark, cookbook, "eval_metrics").toPandas()
    assert set(metrics.model) == {"student", "teacher", "rules", "prefilter", "random"}
    assert set(metrics.label_source) == {"gold", "truth"}
    numeric = metrics[["ndcg_at_10", "poor_match_rate_at_10", "auc_grade_ge_3"]]
    assert numeric.notna().all().all() and numeric.apply(lambda c: c.between(0, 1)).all().all()
    compared = _table(spark, cookbook, "eval_comparisons").toPandas()
    assert {"rules", "prefilter", "random", "teacher"} <= set(compared.baseline)
    assert (metrics.ndcg_at_10_ci_low <= metrics.ndcg_at_10).all()
    assert (metrics.ndcg_at_10 <= metrics.ndcg_at_10_ci_high).all()
    assert (compared.ci_low <= compared.estimate).all()
    assert (compared.estimate <= compared.ci_high).all()
    report = cookbook / "reports" / f"eval-{DAY}"
    assert (report / "report.md").is_file()
    page = (report / "report.html").read_text()  # one self-contained page, its plot inside
    assert page.count("<table>") >= 3 and 'src="data:image/png;base64,' in page
    assert "ndcg.png" not in page


def test_evaluation_members_never_reach_training(spark, cookbook):
    settings = load_settings(None, cookbook_args(cookbook))
    heldout = is_heldout(settings.eval)
    untrained = heldout | is_validation(settings.eval)
    assert _table(spark, cookbook, "sampled_pairs").where(untrained).count() == 0
    assert _table(spark, cookbook, "teacher_labels").where(untrained).count() == 0
    evaluated = _table(spark, cookbook, "gold_labels").where(heldout).count()
    assert evaluated > 0  # ...and evaluation does have held-out members to score
    production = Registry(cookbook / "models" / "registry").production()
    card = json.loads(
        (
            cookbook / "models" / "students" / production["model_version"] / "policyrank_model.json"
        ).read_text()
    )
    labels = _table(spark, cookbook, "teacher_labels").where(is_training(settings.eval))
    assert card["training_data"]["rows"] == labels.count()
    # the student's epoch was chosen on the validation members' gold, never the held-out's
    chosen = [h for h in card["history"] if h.get("selected")]
    assert len(chosen) == 1 and 0 < chosen[0]["validation"] <= 1


def test_a_refused_student_leaves_production_alone(spark, cookbook, tmp_path, capsys):
    warehouse = copy_warehouse(cookbook, tmp_path / "warehouse")  # the refusal is recorded
    registry = Registry(warehouse / "models" / "registry")
    before = registry.production()["model_version"]
    with pytest.raises(SystemExit) as refused:
        main(
            [
                "promote",
                "--date",
                DAY,
                *cookbook_args(warehouse),
                "gate.min_teacher_ndcg_share=100",
            ]
        )
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert "refused" in err and "teacher NDCG share" in err and "needs >= 100" in err
    assert registry.production()["model_version"] == before
    assert registry.history()[-1]["event"] == "refused"


def test_a_warehouse_without_the_simulator_evaluates_and_promotes(
    spark, cookbook, tiny_grade_model, tiny_encoder, tmp_path, capsys
):
    """members, jobs, human gold labels, a policy and a judge: no truth, nothing simulated. The
    tables are given as a ``file://`` URI and the models live apart from them (``models_dir``)."""
    real, models = tmp_path / "real", tmp_path / "elsewhere" / "models"
    for table in ("members", "jobs", "gold_labels", "candidates", "sampled_pairs"):
        shutil.copytree(cookbook / table, real / table)
    args = [
        *cookbook_args(f"file://{real}"),
        f"models_dir={models}",
        "world.generate_if_missing=false",
        "teacher.backend=cross_encoder",
        f"teacher.fine_tune.base_model_dir={tiny_grade_model}",
        "teacher.fine_tune.epochs=1",
        "teacher.inference.max_length=64",  # its tiny vocabulary fills any length: keep it short
        # the wiring, not the quality (test_gate.py has the numbers): a tiny random encoder
        f"student.base_model_dir={tiny_encoder}",
        "student.fields.epochs=3",
        "student.member_text=''",  # fields only: the wiring, not the reading
        "student.job_text=''",
        "eval.bootstrap_samples=100",
        # a tiny random judge teaches nothing: this test is about the wiring, the gate's
        # decisions are tested on real numbers in tests/test_gate.py
        "gate.min_gain_over_rules=-10",
        "gate.min_gain_over_prefilter=-10",
        "gate.min_teacher_ndcg_share=0",
        "gate.max_stratum_regression=10",
    ]
    for step in ("train-judge", "label", "train", "evaluate", "promote", "score"):
        main([step, *(["--date", DAY] if step not in ("train-judge", "train") else []), *args])
    out = capsys.readouterr().out
    assert "against gold grades" in out and "against truth" not in out
    assert not (real / "truth").exists() and not (real / "true_grades").exists()
    metrics = _table(spark, real, "eval_metrics").toPandas()
    assert set(metrics.label_source) == {"gold"}
    production = Registry(models / "registry").production()
    assert production["model_version"].startswith("student-fields-")
    assert production["model_dir"].startswith(str(models))
    assert not (real / "models").exists() and (real / "reports").is_dir()
    judge_card = models / "judge-minilm-l6-grade5" / "policyrank_model.json"
    judge = json.loads(judge_card.read_text())
    settings = load_settings(None, args)
    selection = _table(spark, real, "gold_labels").where(is_training(settings.eval)).count()
    assert judge["training_data"]["pairs"] == selection  # the judge never saw held-out gold
    scores = _table(spark, real, "scores").where(F.col("run_date") == DAY).toPandas()
    assert set(scores.model_version) == {production["model_version"]}


def test_before_any_promotion_the_day_is_ranked_by_the_prefilter(spark, cookbook, tmp_path):
    fresh = tmp_path / "fresh"
    for table in ("members", "jobs", "candidates"):
        shutil.copytree(cookbook / table, fresh / table)
    main(["score", "--date", DAY, *cookbook_args(fresh)])
    scores = _table(spark, fresh, "scores").toPandas()
    cands = _table(spark, fresh, "candidates").where(F.col("run_date") == DAY).toPandas()
    assert set(scores.model_version) == {"prefilter"}
    merged = scores.merge(cands, on=["member_id", "job_id"])
    assert len(merged) == len(scores)
    assert (merged.score - merged.prefilter_score).abs().max() < 1e-6
    assert (merged["rank"] == merged.prefilter_rank).all()  # same order, same tie-break


def test_tables_are_created_from_the_schemas(spark, cookbook):
    """Column comments, NOT NULL and the table comment come from schemas/tables.py; raw inputs
    stay nullable (validation quarantines their bad rows); a NOT NULL breach is refused."""
    from delta.tables import DeltaTable

    from jobs.warehouse.tables import Warehouse
    from schemas.tables import MEMBERS, SCORES, TEACHER_LABELS

    for table in (SCORES, TEACHER_LABELS):
        delta = DeltaTable.forPath(spark, str(cookbook / table.name))
        fields = {f.name: f for f in delta.toDF().schema}
        assert [f for f in fields] == table.names
        assert {n: f.nullable for n, f in fields.items()} == {
            c.name: c.nullable for c in table.columns
        }
        assert {n: f.metadata.get("comment") for n, f in fields.items()} == {
            c.name: c.doc for c in table.columns
        }
        assert delta.detail().first()["description"] == table.doc
    members = spark.read.format("delta").load(str(cookbook / "members")).schema
    assert all(f.nullable for f in members) and MEMBERS.required  # the contract is validation's
    wh = Warehouse.of(load_settings(None, cookbook_args(cookbook)), spark)
    row = wh.day("scores", dt.date.fromisoformat(DAY)).limit(1)
    broken = row.withColumn("member_id", F.lit(None).cast("string"))
    with pytest.raises(Exception, match="NOT NULL|null"):
        wh.append(broken, "scores", run_id="test-not-null")
