"""One model-card type: written once by training, read back, and checked when a model loads."""

from __future__ import annotations

import json

import pytest

from jobs.config.settings import load_settings
from jobs.models.cards import CARD, ModelCard, model_version
from jobs.models.inference import grade_model
from jobs.runtime.errors import PolicyrankError


def _student(folder, templates):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"num_labels": 1}))
    card = ModelCard("student-l3-abc", role="student", base="b", trained=True, templates=templates)
    card.write(folder)
    return folder


def test_a_card_round_trips_and_names_the_version(tmp_path):
    s = load_settings().scoring
    folder = _student(tmp_path / "m", {"member": s.member_template, "job": s.job_template})
    assert ModelCard.read(folder).templates["job"] == s.job_template
    assert model_version(folder) == "student-l3-abc"
    assert ModelCard.read(tmp_path) is None  # a plain Hugging Face folder has no card


def test_a_student_trained_on_other_templates_is_refused_at_load(tmp_path):
    s = load_settings().scoring
    same = _student(tmp_path / "same", {"member": s.member_template, "job": s.job_template})
    assert grade_model(same, load_settings()) is None  # a 1-logit scorer, accepted
    other = _student(tmp_path / "other", {"member": "{headline}", "job": s.job_template})
    with pytest.raises(PolicyrankError, match="trained on member_template '{headline}'"):
        grade_model(other, load_settings())
    # ...and the same folder is accepted once scoring uses the templates it was trained on
    assert grade_model(other, load_settings(None, ["scoring.member_template='{headline}'"])) is None


def test_an_unreadable_card_is_one_clear_error(tmp_path):
    (tmp_path / CARD).write_text("{not json")
    with pytest.raises(PolicyrankError, match="is not readable"):
        ModelCard.read(tmp_path)
