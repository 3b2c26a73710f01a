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


def _reference_logits(model_dir, first, second, max_length):
    """The plain path: the tokenizer's own pair encoding, one padded batch."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    enc = tokenizer(first, second, truncation=True, max_length=max_length, padding=True)
    with torch.inference_mode():
        return model(**{k: torch.tensor(v) for k, v in enc.items()}).logits.numpy()


@pytest.mark.parametrize("max_length", [256, 24])
@pytest.mark.parametrize("entity_tokens", [True, False])
def test_scores_equal_the_tokenizer_pair_encoding_path(tiny_grade_model, max_length, entity_tokens):
    rng = np.random.default_rng(3)
    words = [
        "senior",
        "data",
        "engineer",
        "spark",
        "sql",
        "python",
        "airflow",
        "kafka",
        "nurse",
        "at",
        "acme",
        "berlin",
    ]
    members = [" ".join(rng.choice(words, rng.integers(1, 30))) for _ in range(40)]
    jobs = [" ".join(rng.choice(words, rng.integers(1, 30))) for _ in range(120)]
    first, second = list(rng.choice(members, 600)), list(rng.choice(jobs, 600))
    scorer = CrossEncoderScorer.load(tiny_grade_model, CPU, max_length=max_length, token_budget=900)
    assert scorer.layout is not None
    if not entity_tokens:
        scorer.layout = None  # the fallback for tokenizers whose layout cannot be assembled
    got = scorer.logits(first, second)
    want = _reference_logits(tiny_grade_model, first, second, max_length)
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


def test_worker_cache_reloads_a_model_replaced_in_place(tmp_path):
    import os
    import time

    from tests.tiny_models import build_tiny_cross_encoder
    from udfs.cross_encoder import ScorerConfig, scorer_for

    folder = build_tiny_cross_encoder(tmp_path / "student", seed=1)
    config = ScorerConfig(str(folder), "{headline}", "{title}")
    first = scorer_for(config, [])
    assert scorer_for(config, []) is first  # cached across tasks
    before = first.score(["data engineer"], ["spark"])
    time.sleep(0.01)
    build_tiny_cross_encoder(folder, seed=2)  # a new model saved over the old one
    os.utime(folder / "model.safetensors")
    second = scorer_for(config, [])
    assert second is not first
    assert not np.allclose(second.score(["data engineer"], ["spark"]), before)


def test_map_ahead_keeps_order_runs_one_ahead_and_raises_where_taken():
    import threading

    from udfs.overlap import map_ahead

    threads = set()

    def square(x):
        threads.add(threading.current_thread().name)
        if x == 3:
            raise ValueError("bad item 3")
        return x * x

    results = map_ahead(square, range(5))
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    with pytest.raises(ValueError, match="bad item 3"):
        next(results)
    assert threads and all(name.startswith("policyrank-prepare") for name in threads)
    assert list(map_ahead(square, range(3), enabled=False)) == [0, 1, 4]
