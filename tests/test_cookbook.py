"""The whole cookbook on tiny data: run-daily builds judge and student, evaluates, gates,
promotes and scores with the promoted student; a refused student leaves production alone."""

import json

import pytest

from jobs.cli import main
from jobs.registry import Registry
from tests.conftest import DAY, cookbook_args


def test_run_daily_trains_evaluates_promotes_and_scores(spark, cookbook, capsys):
    registry = Registry(cookbook / "registry")
    production = registry.production()
    assert production["model_version"].startswith("student-l1-")
    card = json.loads(
        (
            cookbook / "models" / "students" / production["model_version"] / "policyrank_model.json"
        ).read_text()
    )
    assert card["teacher_model_id"].startswith("judge-minilm-l6-grade5-")
    assert card["training_data"]["delta_version"] >= 0 and card["eval"]["student"]
    scores = spark.read.format("delta").load(f"{cookbook}/scores").toPandas()
    assert set(scores.model_version) == {production["model_version"]}
    assert scores.score.between(0, 4).all()  # a student's score is its expected grade
    metrics = spark.read.format("delta").load(f"{cookbook}/eval_metrics").toPandas()
    assert set(metrics.model) == {"untrained", "teacher", "student"}
    assert (cookbook / "reports" / f"eval-{DAY}" / "report.md").is_file()


def test_a_refused_student_leaves_production_alone(spark, cookbook, tiny_model, capsys):
    # Tiny random models carry no signal, so which of two tiny students is "worse" is noise;
    # tests/test_gate.py covers each check on known metrics. Here: the refusal's wiring.
    registry = Registry(cookbook / "registry")
    before = registry.production()["model_version"]
    with pytest.raises(SystemExit) as refused:
        main(
            [
                "promote",
                "--date",
                DAY,
                *cookbook_args(cookbook, tiny_model),
                "gate.min_teacher_ndcg_share=100",
            ]
        )
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert "refused" in err and "teacher NDCG share" in err and "needs >= 100" in err
    assert registry.production()["model_version"] == before
    assert registry.history()[-1]["event"] == "refused"
