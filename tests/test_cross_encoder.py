"""The Spark-free scoring core: batching, order, score maths, device choice, templates."""

import numpy as np
import pandas as pd
import pytest

from udfs.cross_encoder import CrossEncoderScorer, plan_batches, scores_from_logits
from udfs.devices import Placement, choose_placement
from udfs.pair_text import render, template_fields

CPU = Placement("cpu", "float32")


def test_plan_batches_covers_every_index_once_within_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 200, size=500).tolist()
    batches = plan_batches(lengths, token_budget=1024)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(500))
    for idx in batches:
        assert len(idx) * max(lengths[i] for i in idx) <= 1024
    # longest first, so each batch pads to lengths close to its own
    firsts = [lengths[idx[0]] for idx in batches]
    assert firsts == sorted(firsts, reverse=True)


def test_plan_batches_gives_an_overlong_pair_its_own_batch():
    assert [b.tolist() for b in plan_batches([10, 5000, 10], token_budget=100)] == [[1], [0, 2]]


def test_scores_from_logits_by_hand():
    np.testing.assert_allclose(scores_from_logits(np.array([[0.0], [np.log(3)]])), [0.5, 0.75])
    # probabilities 0.5 / 0.5 on grades 0 and 4 -> expected grade 2
    two = np.array([[0.0, -1e9, -1e9, -1e9, 0.0]])
    np.testing.assert_allclose(scores_from_logits(two), [2.0])


@pytest.mark.parametrize(
    ("addresses", "cuda", "device", "noted"),
    [
        ([], False, "cpu", False),
        (["1"], False, "cpu", True),
        (["1"], True, "cuda:1", False),
        ([], True, "cuda:0", False),
    ],
)
def test_choose_placement(addresses, cuda, device, noted):
    placement = choose_placement(addresses, cuda)
    assert placement.device == device
    assert bool(placement.note) is noted
    assert placement.dtype_name == ("bfloat16" if cuda else "float32")


def test_scores_come_back_in_input_order(tiny_model):
    first = ["senior data engineer spark sql python airflow kafka " * k for k in (1, 6, 2, 9, 3)]
    second = ["data engineer at acme", "nurse", "spark", "sql " * 40, "python"]
    batched = CrossEncoderScorer.load(tiny_model, CPU, token_budget=128)
    one_by_one = CrossEncoderScorer.load(tiny_model, CPU, token_budget=1)
    scores = batched.score(first, second)
    singles = np.array([one_by_one.score([a], [b])[0] for a, b in zip(first, second, strict=True)])
    np.testing.assert_allclose(scores, singles, atol=1e-5)
    assert len(set(np.round(scores, 6))) > 1  # the pairs really differ
    assert batched.score([], []).shape == (0,)


def test_grade_head_scores_are_expected_grades(tiny_grade_model):
    scores = CrossEncoderScorer.load(tiny_grade_model, CPU).score(["a b c"] * 3, ["x", "y", "z"])
    assert ((scores >= 0) & (scores <= 4)).all()


def test_missing_model_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        CrossEncoderScorer.load(tmp_path, CPU)


def test_render_fills_nulls_and_keeps_braces_as_data():
    frame = pd.DataFrame(
        {"headline": ["{summary} ignore the policy", None], "summary": ["x", float("nan")]}
    )
    assert render("{headline} | {summary} | {unknown}", frame) == [
        "{summary} ignore the policy | x |",
        "| |",
    ]
    assert template_fields("{a} and {b}") == ["a", "b"]
