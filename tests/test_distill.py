"""Distillation losses by hand, the truncated warm-start student, member batching, a tiny run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.conftest import train_config
from udfs.distill import (
    DistillationLoss,
    DistillConfig,
    GradeKLLoss,
    WithinMemberRankingLoss,
    distill,
    member_batches,
    truncated_student,
)


def _softmax(z: list[float]) -> list[float]:
    s = sum(math.exp(v) for v in z)
    return [math.exp(v) / s for v in z]


# --- GradeKLLoss ------------------------------------------------------------------------------


def test_kl_matches_a_hand_computed_value_with_zero_targets():
    teacher = [[0.1, 0.2, 0.4, 0.2, 0.1], [0.0, 0.0, 0.5, 0.5, 0.0]]  # row 2 has zero targets
    logits = [[0.0, 1.0, 2.0, 1.0, 0.0], [1.0, 0.0, 0.0, 2.0, -1.0]]
    # Row 1: softmax denominator 2 + 2e + e^2; KL = sum_g t_g (log t_g - log p_g).
    p1 = _softmax(logits[0])
    d1 = 2 + 2 * math.e + math.e**2
    assert p1 == pytest.approx([1 / d1, math.e / d1, math.e**2 / d1, math.e / d1, 1 / d1])
    kl1 = (
        0.1 * (math.log(0.1) - math.log(p1[0]))
        + 0.2 * (math.log(0.2) - math.log(p1[1]))
        + 0.4 * (math.log(0.4) - math.log(p1[2]))
        + 0.2 * (math.log(0.2) - math.log(p1[3]))
        + 0.1 * (math.log(0.1) - math.log(p1[4]))
    )
    # Row 2: zero targets drop out (0 * log 0 = 0), leaving grades 2 and 3.
    p2 = _softmax(logits[1])
    kl2 = 0.5 * (math.log(0.5) - math.log(p2[2])) + 0.5 * (math.log(0.5) - math.log(p2[3]))
    assert kl1 == pytest.approx(0.025548, abs=1e-6)  # the sums above, written out
    assert kl2 == pytest.approx(0.830597, abs=1e-6)
    expected = (kl1 + kl2) / 2  # mean over rows: 0.428073

    got = GradeKLLoss()(
        torch.tensor(logits, dtype=torch.float64), torch.tensor(teacher, dtype=torch.float64)
    )
    assert torch.isfinite(got)
    assert got.item() == pytest.approx(expected, abs=1e-6)
    # torch's own KL (batchmean) agrees
    ref = torch.nn.functional.kl_div(
        torch.log_softmax(torch.tensor(logits, dtype=torch.float64), -1),
        torch.tensor(teacher, dtype=torch.float64),
        reduction="batchmean",
    )
    assert got.item() == pytest.approx(ref.item(), abs=1e-9)


def test_kl_is_zero_when_the_student_matches_the_teacher():
    teacher = torch.tensor([[0.1, 0.2, 0.4, 0.2, 0.1], [0.0, 0.0, 1.0, 0.0, 0.0]])
    logits = torch.log(teacher.clamp(min=1e-30))  # softmax(log t) = t
    assert GradeKLLoss()(logits, teacher).item() == pytest.approx(0.0, abs=1e-6)
    # with a temperature, the student's logits are divided by T before the softmax
    assert GradeKLLoss(temperature=2.0)(2 * logits, teacher).item() == pytest.approx(0, abs=1e-6)


def test_kl_temperature_divides_only_the_student_logits():
    teacher = torch.tensor([[0.1, 0.2, 0.4, 0.2, 0.1]])
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.0, 1.0]])
    assert GradeKLLoss(temperature=2.0)(logits, teacher).item() == pytest.approx(
        GradeKLLoss()(logits / 2, teacher).item(), abs=1e-7
    )
    with pytest.raises(ValueError, match="temperature"):
        GradeKLLoss(temperature=0.0)


# --- WithinMemberRankingLoss ------------------------------------------------------------------


def test_ranking_loss_by_hand_on_two_members():
    # Rows 0, 1: member 0; row 2: member 1. Teacher expected grades 1.0, 3.0, 4.0.
    teacher_expected = torch.tensor([1.0, 3.0, 4.0])
    members = torch.tensor([0, 0, 1])
    # Student expected grades: row 0 uniform -> 2.0; row 1 p = [1,1,1,1,6]/10 -> 3.0; row 2 -> 2.0
    logits = torch.tensor(
        [[0.0] * 5, [0.0, 0.0, 0.0, 0.0, math.log(6.0)], [0.0] * 5], requires_grad=True
    )
    # Pairs (i, j), t_i > t_j + 0.1, same member: only (1, 0). (2, 0) and (2, 1) cross members.
    d = 3.0 - 2.0
    expected = math.log(1 + math.exp(-d))  # 0.31326...
    got = WithinMemberRankingLoss(margin=0.1)(logits, teacher_expected, members)
    assert got.item() == pytest.approx(expected, abs=1e-6)
    got.backward()
    assert logits.grad[2].abs().sum() == 0  # row 2 is in no pair
    assert logits.grad[:2].abs().sum() > 0

    # Misordered student (E_s[1] < E_s[0]): d = -1, a larger loss log(1 + e).
    flipped = logits.detach()[[1, 0, 2]]
    got = WithinMemberRankingLoss()(flipped, teacher_expected, members)
    assert got.item() == pytest.approx(math.log(1 + math.e), abs=1e-6)


def test_ranking_loss_is_a_zero_with_grad_when_there_are_no_pairs():
    # Member 0's two rows differ by 0.05 < margin; member 1 has a single row.
    logits = torch.randn(3, 5, requires_grad=True)
    loss = WithinMemberRankingLoss(margin=0.1)(
        logits, torch.tensor([3.0, 2.95, 0.0]), torch.tensor([0, 0, 1])
    )
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))
    with pytest.raises(ValueError, match="margin"):
        WithinMemberRankingLoss(margin=-0.1)


def test_distillation_loss_is_kl_plus_weighted_ranking():
    teacher = torch.tensor([[0.7, 0.2, 0.1, 0.0, 0.0], [0.0, 0.0, 0.1, 0.2, 0.7]])
    logits = torch.tensor([[0.0, 0.5, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    members = torch.tensor([4, 4])
    parts = DistillationLoss(ranking_weight=0.25)(logits, teacher, members)
    kl = GradeKLLoss()(logits, teacher)
    rank = WithinMemberRankingLoss()(logits, teacher @ torch.arange(5.0), members)
    assert parts.kl.item() == pytest.approx(kl.item())
    assert parts.rank.item() == pytest.approx(rank.item())
    assert parts.rank.item() > 0  # row 1 (teacher 3.6) vs row 0 (teacher 0.4) is a pair
    assert parts.total.item() == pytest.approx(kl.item() + 0.25 * rank.item())


# --- truncated_student ------------------------------------------------------------------------


def test_truncated_student_keeps_the_teachers_first_layers(tiny_grade_model, tmp_path):
    from transformers import AutoModelForSequenceClassification

    teacher = AutoModelForSequenceClassification.from_pretrained(
        tiny_grade_model, local_files_only=True
    )
    student, tokenizer = truncated_student(tiny_grade_model, 1)
    assert student.config.num_hidden_layers == 1
    assert len(student.bert.encoder.layer) == 1
    assert student.config.num_labels == 5
    t_state, s_state = teacher.state_dict(), student.state_dict()
    assert set(s_state) == {k for k in t_state if ".encoder.layer.1." not in k}
    for key, value in s_state.items():
        assert torch.equal(value, t_state[key]), key
    # The saved student reloads as a 1-layer model with the same outputs.
    student.save_pretrained(tmp_path / "student")
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "student")
    enc = tokenizer(["senior data engineer"], ["spark python"], return_tensors="pt")
    assert len(again.bert.encoder.layer) == 1
    with torch.no_grad():
        assert torch.allclose(again(**enc).logits, student.eval()(**enc).logits)


@pytest.mark.parametrize("n_layers", [0, 3])
def test_truncated_student_rejects_layer_counts_out_of_range(tiny_grade_model, n_layers):
    with pytest.raises(ValueError, match=r"n_layers must be in 1\.\.2"):
        truncated_student(tiny_grade_model, n_layers)


def test_truncated_student_rejects_other_architectures(tmp_path):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    config = DistilBertConfig(vocab_size=50, dim=16, n_layers=2, n_heads=2, hidden_dim=32)
    DistilBertForSequenceClassification(config).save_pretrained(tmp_path / "distilbert")
    with pytest.raises(ValueError, match="BERT-family"):
        truncated_student(tmp_path / "distilbert", 1)


# --- member_batches ---------------------------------------------------------------------------


def test_member_batches_keep_members_whole_and_are_deterministic():
    rng = np.random.default_rng(1)
    ids = [f"m{i}" for i in rng.integers(0, 11, size=60)]
    batches = member_batches(ids, batch_members=3, seed=7)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(60))  # every row once
    seen: dict[str, int] = {}
    for b, idx in enumerate(batches):
        members = {ids[i] for i in idx}
        assert len(members) <= 3
        for m in members:
            assert seen.setdefault(m, b) == b  # a member never spans two batches
            rows = [i for i in idx if ids[i] == m]
            assert rows == sorted(rows) and len(rows) == ids.count(m)
    assert len(batches) == math.ceil(len(set(ids)) / 3)
    again = member_batches(ids, batch_members=3, seed=7)
    assert [b.tolist() for b in again] == [b.tolist() for b in batches]
    other = member_batches(ids, batch_members=3, seed=8)
    assert [b.tolist() for b in other] != [b.tolist() for b in batches]
    assert member_batches([], 3, 0) == []
    with pytest.raises(ValueError, match="batch_members"):
        member_batches(ids, 0, 0)


# --- distill ----------------------------------------------------------------------------------

SKILLS = ["python", "spark", "sql", "airflow", "kafka", "aws", "docker", "java"]


def _pairs() -> tuple[list[str], list[str], list[str], np.ndarray]:
    """8 members x 5 jobs; the 'teacher' grade is the skill overlap, spread over nearby grades."""
    rng = np.random.default_rng(0)
    first, second, members, grades = [], [], [], []
    for m in range(8):
        have = set(rng.choice(SKILLS, size=4, replace=False))
        for _ in range(5):
            want = set(rng.choice(SKILLS, size=4, replace=False))
            first.append("senior engineer skills " + " ".join(sorted(have)))
            second.append("engineer at acme skills " + " ".join(sorted(want)))
            members.append(f"member-{m}")
            grades.append(len(have & want))
    g = np.arange(5)
    logits = -1.5 * (g[None, :] - np.array(grades)[:, None]) ** 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return first, second, members, probs.astype(np.float32)


def _config(**changes) -> DistillConfig:
    return train_config(DistillConfig, "student.distill", **changes)


def _run(teacher_dir, config: DistillConfig):
    student, tokenizer = truncated_student(teacher_dir, 1)
    first, second, members, probs = _pairs()
    history = distill(
        student, tokenizer, first, second, members, probs, config, max_length=32,
        show_progress=False,
    )  # fmt: skip
    return student, history


def test_tiny_distill_run_reduces_the_loss_and_is_reproducible(tiny_grade_model):
    config = _config(epochs=3, batch_members=2, learning_rate=3e-3, seed=3)
    student, history = _run(tiny_grade_model, config)
    assert len(history) == 3
    assert set(history[0]) == {"total", "kl", "rank"}
    for epoch in history:
        assert epoch["total"] == pytest.approx(epoch["kl"] + 0.5 * epoch["rank"], rel=1e-5)
    assert history[0]["rank"] > 0  # whole-member batches do give within-member pairs
    assert history[-1]["total"] < history[0]["total"]
    assert not student.training

    again, history_again = _run(tiny_grade_model, config)
    assert history_again == history
    s1, s2 = student.state_dict(), again.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)


def test_distill_checks_its_inputs(tiny_grade_model):
    student, tokenizer = truncated_student(tiny_grade_model, 1)
    with pytest.raises(ValueError, match="same length"):
        distill(
            student,
            tokenizer,
            ["a"],
            ["b"],
            ["m", "n"],
            np.full((1, 5), 0.2),
            _config(),
            max_length=8,
        )
    with pytest.raises(ValueError, match=r"\(n, 5\)"):
        distill(
            student, tokenizer, ["a"], ["b"], ["m"], np.full((1, 3), 1 / 3), _config(), max_length=8
        )


def test_grade_weights_lift_rare_grades_and_keep_the_mean():
    from udfs.fine_tune import grade_weights, soft_cross_entropy

    targets = np.eye(5)[[1, 1, 1, 1, 1, 1, 1, 1, 4, 0]]
    w = grade_weights(targets)
    assert w.mean() == pytest.approx(1.0)
    assert w[8] == pytest.approx(w[1] * math.sqrt(8))  # 1 / sqrt(count)
    # logits that favour grade 1: the rare rows (grades 4 and 0) cost more than the common ones
    logits = torch.tensor([[0.0, 2.0, 0.0, 0.0, 0.5]]).repeat(10, 1)
    t = torch.as_tensor(targets, dtype=torch.float32)
    per_row = -(t * torch.log_softmax(logits, dim=-1)).sum(dim=-1)
    plain = soft_cross_entropy(logits, t)
    assert plain.item() == pytest.approx(per_row.mean().item())
    assert soft_cross_entropy(logits, t, torch.ones(10)) == pytest.approx(plain.item())
    weighted = soft_cross_entropy(logits, t, torch.as_tensor(w, dtype=torch.float32))
    assert weighted.item() == pytest.approx((per_row * torch.as_tensor(w)).mean().item())
    assert weighted.item() > plain.item() + 0.1  # the weights moved it towards the rare rows
