"""Field student on a tiny random BERT encoder: features, cache, save/load, training, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import train_config
from tests.tiny_models import build_tiny_encoder
from udfs.field_student import (
    DistillConfig,
    FieldEncoder,
    FieldStudent,
    FieldStudentConfig,
    FieldStudentHead,
    train_field_student,
)

SKILLS = ["python", "sql", "java", "excel", "spark", "tableau", "kubernetes", "docker"]
CONFIG = FieldStudentConfig(
    member_fields=("headline", "skills", "seniority"),
    job_fields=("title", "skills", "seniority"),
    projection_dim=4,
    hidden_dim=32,
)
FAST = train_config(DistillConfig, "student.fields", epochs=40, batch_members=8, seed=0)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny ops: with other processes busy on the 2 cores, 2 intra-op threads spin and the
    training tests run ~30x slower; one thread is as fast when the machine is idle."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return build_tiny_encoder(tmp_path_factory.mktemp("models") / "tiny-encoder")


def _student(encoder_dir, seed: int = 0) -> FieldStudent:
    return FieldStudent.from_base(encoder_dir, CONFIG, seed=seed)


def _task(n_members: int, seed: int):
    """Each member knows 2-3 skills, each job wants one; grade 4 iff the member has it, else 0.
    Returns row-aligned (members, jobs, member_ids, teacher_probs, grades), 8 jobs per member."""
    rng = np.random.default_rng(seed)
    member_rows, job_rows, grades = [], [], []
    for m in range(n_members):
        have = list(rng.choice(SKILLS, size=int(rng.integers(2, 4)), replace=False))
        member = {
            "member_id": f"m{seed}-{m}",
            "headline": f"engineer at {rng.choice(['acme', 'initech', 'hooli'])}",
            "skills": ", ".join(have),
            "seniority": rng.choice(["junior", "senior"]),
        }
        for skill in rng.permutation(SKILLS):
            member_rows.append(member)
            job_rows.append({"title": f"{skill} engineer", "skills": skill, "seniority": "senior"})
            grades.append(4 if skill in have else 0)
    grades = np.array(grades)
    probs = np.full((len(grades), 5), 0.05)
    probs[np.arange(len(grades)), grades] = 0.8
    members, jobs = pd.DataFrame(member_rows), pd.DataFrame(job_rows)
    return members, jobs, members["member_id"].tolist(), probs, grades


def _pairwise_accuracy(scores: np.ndarray, grades: np.ndarray, member_ids) -> float:
    """Share of (positive, negative) pairs within a member that the scores order correctly."""
    right = total = 0
    ids = np.asarray(member_ids)
    for member in np.unique(ids):
        s, g = scores[ids == member], grades[ids == member]
        diff = s[g == 4][:, None] - s[g == 0][None, :]
        right += (diff > 0).sum()
        total += diff.size
    return right / total


# --- config and features -----------------------------------------------------------------------


def test_config_round_trips_through_json():
    again = FieldStudentConfig.from_dict(json.loads(json.dumps(CONFIG.to_dict())))
    assert again == CONFIG
    assert again.n_cross == 3 * 3 + 3
    with pytest.raises(ValueError, match="member_fields"):
        FieldStudentConfig(member_fields=(), job_fields=("title",))
    with pytest.raises(ValueError, match="pairs"):
        FieldStudentConfig(("a",), ("b",), list_fields=(("a", "b", "c"),))


def test_features_are_field_cosines_then_item_coverage(encoder_dir):
    student = _student(encoder_dir)
    members = pd.DataFrame(
        {"headline": ["engineer at acme"], "skills": ["python, sql"], "seniority": ["senior"]}
    )
    jobs = pd.DataFrame({"title": ["data engineer"], "skills": ["python, java"], "seniority": [3]})
    feats = student.features(members, jobs)
    assert feats.cross.shape == (1, CONFIG.n_cross)

    enc = student.encoder
    m = enc.encode(["headline: engineer at acme", "skills: python, sql", "seniority: senior"])
    j = enc.encode(["title: data engineer", "skills: python, java", "seniority: 3"])
    torch.testing.assert_close(feats.cross[0, :9], (m @ j.T).flatten())
    torch.testing.assert_close(feats.member_emb[0], m)

    mi, ji = enc.encode(["python", "sql"]), enc.encode(["python", "java"])
    s = (ji @ mi.T).numpy()  # job item x member item
    assert s[1].max() < 0.99  # java is not among the member's items
    expected = [s.max(1).mean(), 0.5, s.max(0).mean()]
    np.testing.assert_allclose(feats.cross[0, 9:].numpy(), expected, rtol=1e-6)


def test_each_distinct_text_is_encoded_once(encoder_dir):
    student = _student(encoder_dir)
    encoded: list[int] = []
    model = student.encoder.model
    forward = model.forward

    def counting_forward(*args, **kwargs):
        encoded.append(len(kwargs["input_ids"]))
        return forward(*args, **kwargs)

    model.forward = counting_forward
    members = pd.DataFrame(
        {
            "headline": ["a", "a", "a", "b"],
            "skills": ["python, sql", "python, sql", "python, sql", "sql"],
            "seniority": ["senior"] * 4,
        }
    )
    jobs = pd.DataFrame(
        {"title": ["x", "y", "x", "x"], "skills": ["sql"] * 4, "seniority": ["senior"] * 4}
    )
    first = student.scores(members, jobs)
    # headline: a/b, skills: python, sql/sql, seniority: senior, title: x/y, items python/sql;
    # "skills: sql" and "seniority: senior" are shared by the member and job sides.
    assert sum(encoded) == len(student.encoder) == 9
    np.testing.assert_array_equal(first[0], first[2])  # same member and job: same score
    encoded.clear()
    np.testing.assert_array_equal(student.scores(members, jobs), first)
    assert encoded == []  # all cached

    e = student.encoder.encode(["python", "new text", "python"])
    assert encoded == [1]
    torch.testing.assert_close(e[0], e[2])
    torch.testing.assert_close(e.norm(dim=1), torch.ones(3))


def test_encoder_cache_is_bounded(encoder_dir):
    enc = FieldEncoder.load(encoder_dir)
    enc.max_cached = 3
    first = enc.encode(["a", "b", "c"])
    assert len(enc) == 3
    again = enc.encode(["a", "d"])  # would make 4: cleared, then holds this call's texts
    assert len(enc) == 2
    torch.testing.assert_close(again[0], first[0])


def test_empty_lists_give_zero_coverage_and_missing_values_are_empty_text(encoder_dir):
    student = _student(encoder_dir)
    members = pd.DataFrame(
        {
            "headline": ["a", None, "a", "a"],
            "skills": ["", " , ,", None, "python"],
            "seniority": ["senior", "senior", np.nan, "senior"],
        }
    )
    jobs = pd.DataFrame(
        {
            "title": ["x", "x", "x", "x"],
            "skills": ["python, sql", "python", "python", None],
            "seniority": ["senior", "senior", "senior", float("nan")],
        }
    )
    feats = student.features(members, jobs)
    np.testing.assert_array_equal(feats.cross[:, 9:].numpy(), np.zeros((4, 3)))
    # None and NaN read as empty values: the same text as an empty string.
    empty = student.encoder.encode(["headline: ", "skills: ", "seniority: "])
    torch.testing.assert_close(feats.member_emb[feats.member_index[1], 0], empty[0])
    torch.testing.assert_close(feats.member_emb[feats.member_index[2], 1], empty[1])
    torch.testing.assert_close(feats.member_emb[feats.member_index[2], 2], empty[2])
    scores = student.scores(members, jobs)
    assert scores.shape == (4,) and scores.dtype == np.float32
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 4)).all()


def test_empty_input_gives_empty_output(encoder_dir):
    student = _student(encoder_dir)
    members = pd.DataFrame(columns=["headline", "skills", "seniority"])
    jobs = pd.DataFrame(columns=["title", "skills", "seniority"])
    scores = student.scores(members, jobs)
    assert scores.shape == (0,) and scores.dtype == np.float32
    assert student.logits(members, jobs).shape == (0, 5)


# --- save / load -------------------------------------------------------------------------------


def test_save_load_round_trip_gives_identical_scores(encoder_dir, tmp_path):
    members, jobs, ids, probs, _ = _task(6, seed=1)
    student = _student(encoder_dir)
    train_field_student(
        student,
        members,
        jobs,
        ids,
        probs,
        train_config(DistillConfig, "student.fields", epochs=2),
        show_progress=False,
    )
    before = student.scores(members, jobs)

    student.save(tmp_path / "student")
    files = {p.name for p in (tmp_path / "student").iterdir()}
    assert {"config.json", "model.safetensors", "field_head.safetensors"} <= files
    assert {"field_student.json", "tokenizer.json"} <= files
    assert FieldStudent.is_field_student(tmp_path / "student")
    assert not FieldStudent.is_field_student(encoder_dir)

    loaded = FieldStudent.load(tmp_path / "student")
    assert loaded.config == CONFIG
    np.testing.assert_array_equal(loaded.scores(members, jobs), before)
    np.testing.assert_array_equal(loaded.logits(members, jobs), student.logits(members, jobs))
    with pytest.raises(FileNotFoundError):
        FieldStudent.load(encoder_dir)


def test_from_base_heads_are_seeded(encoder_dir):
    a, b, c = _student(encoder_dir, 0), _student(encoder_dir, 0), _student(encoder_dir, 1)
    for (name, pa), pb, pc in zip(
        a.head.state_dict().items(),
        b.head.state_dict().values(),
        c.head.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(pa, pb), name
        assert not torch.equal(pa, pc), name


# --- training ----------------------------------------------------------------------------------


def test_training_learns_a_synthetic_task(encoder_dir):
    members, jobs, ids, probs, grades = _task(30, seed=2)
    test_members, test_jobs, test_ids, _, test_grades = _task(10, seed=3)  # unseen members
    student = _student(encoder_dir)
    untrained = _pairwise_accuracy(student.scores(test_members, test_jobs), test_grades, test_ids)

    history = train_field_student(student, members, jobs, ids, probs, FAST, show_progress=False)

    assert len(history) == FAST.epochs
    assert set(history[0]) == {"total", "kl", "rank"}
    assert history[-1]["total"] < 0.5 * history[0]["total"]
    assert not student.head.training
    trained = _pairwise_accuracy(student.scores(test_members, test_jobs), test_grades, test_ids)
    assert trained > 0.9  # a random order would be 0.5
    assert trained > untrained


def test_training_is_deterministic(encoder_dir):
    members, jobs, ids, probs, _ = _task(8, seed=4)
    cfg = train_config(DistillConfig, "student.fields", epochs=3, batch_members=3, seed=7)
    runs = []
    for _ in range(2):
        student = _student(encoder_dir)
        history = train_field_student(student, members, jobs, ids, probs, cfg, show_progress=False)
        runs.append((history, student.head.state_dict()))
    assert runs[0][0] == runs[1][0]
    for key, value in runs[0][1].items():
        assert torch.equal(value, runs[1][1][key]), key


def test_bad_shapes_raise_value_errors(encoder_dir):
    members, jobs, ids, probs, _ = _task(2, seed=5)
    student = _student(encoder_dir)
    cfg = train_config(DistillConfig, "student.fields", epochs=1)
    with pytest.raises(ValueError, match="same length"):
        train_field_student(student, members, jobs, ids[:-1], probs, cfg, show_progress=False)
    with pytest.raises(ValueError, match="same length"):
        train_field_student(student, members, jobs.iloc[:-1], ids, probs, cfg)
    with pytest.raises(ValueError, match=r"\(n, 5\)"):
        train_field_student(student, members, jobs, ids, probs[:, :4], cfg, show_progress=False)
    with pytest.raises(ValueError, match="no training pairs"):
        train_field_student(student, members[:0], jobs[:0], [], probs[:0], cfg)
    with pytest.raises(ValueError, match="aligned"):
        student.scores(members, jobs.iloc[:-1])
    with pytest.raises(ValueError, match=r"lacks columns \['seniority'\]"):
        student.scores(members.drop(columns="seniority"), jobs)
    head = FieldStudentHead(CONFIG, student.encoder.dim)
    with pytest.raises(ValueError, match="member_emb"):
        head(torch.zeros(2, 2, 32), torch.zeros(2, 3, 32), torch.zeros(2, CONFIG.n_cross))
    with pytest.raises(ValueError, match="dim|embeddings"):
        FieldStudent(student.encoder, FieldStudentHead(CONFIG, 16), CONFIG)


# --- reading free text -------------------------------------------------------------------------

TEXT_CONFIG = FieldStudentConfig(
    member_fields=("headline", "skills", "seniority"),
    job_fields=("title", "skills", "seniority"),
    projection_dim=4,
    hidden_dim=32,
    member_text=("summary",),
    job_text=("description",),
    max_sentences=4,
    attention_dim=8,
    attention_heads=2,
)


def _prose_task(n_members: int, seed: int):
    """Every field alike; only a sentence of the summary ("cleared for the site." or not) decides
    the grade: 4 for cleared members, 0 for the others. Each member has filler sentences too."""
    rng = np.random.default_rng(seed)
    member_rows, job_rows, grades = [], [], []
    for m in range(n_members):
        cleared = bool(rng.random() < 0.5)
        said = ["Cleared for the site." if cleared else "Not cleared for the site."]
        filler = [f"I like {rng.choice(SKILLS)}.", f"Based in {rng.choice(['x', 'y'])}."]
        member = {
            "member_id": f"m{seed}-{m}",
            "headline": "engineer",
            "skills": "python, sql",
            "seniority": "senior",
            "summary": " ".join(rng.permutation(said + filler)),
        }
        for _ in range(4):
            member_rows.append(member)
            job_rows.append(
                {
                    "title": "engineer",
                    "skills": "python",
                    "seniority": "senior",
                    "description": "On site. Clearance needed.",
                }
            )
            grades.append(4 if cleared else 0)
    grades = np.array(grades)
    probs = np.full((len(grades), 5), 0.05)
    probs[np.arange(len(grades)), grades] = 0.8
    members, jobs = pd.DataFrame(member_rows), pd.DataFrame(job_rows)
    return members, jobs, members["member_id"].tolist(), probs, grades


def _auc(scores, grades) -> float:
    pos, neg = scores[grades == 4], scores[grades == 0]
    return float((pos[:, None] > neg[None, :]).mean())


def test_a_text_student_learns_what_only_the_prose_says(encoder_dir):
    members, jobs, ids, probs, _ = _prose_task(40, seed=6)
    test_members, test_jobs, _, _, test_grades = _prose_task(20, seed=7)
    cfg = train_config(DistillConfig, "student.fields", epochs=40, batch_members=8, seed=0)
    reader = FieldStudent.from_base(encoder_dir, TEXT_CONFIG)
    train_field_student(reader, members, jobs, ids, probs, cfg, show_progress=False)
    fields_only = _student(encoder_dir)
    train_field_student(fields_only, members, jobs, ids, probs, cfg, show_progress=False)
    assert _auc(reader.scores(test_members, test_jobs), test_grades) > 0.95
    # the fields are identical for every member: without the prose, nothing to learn
    assert np.ptp(fields_only.scores(test_members, test_jobs)) < 1e-4


def test_sentences_are_segments_and_prose_skills_count(encoder_dir, tmp_path):
    student = FieldStudent.from_base(encoder_dir, TEXT_CONFIG)
    members = pd.DataFrame(
        {
            "headline": ["engineer"],
            "skills": ["python"],
            "seniority": ["senior"],
            "summary": ["I use SQL daily. Also Java! And more? Fifth one. Sixth."],
        }
    )
    jobs = pd.DataFrame(
        {
            "title": ["engineer"],
            "skills": ["Python, sql, excel"],
            "seniority": ["senior"],
            "description": [None],
        }
    )
    feats = student.features(members, jobs)
    assert feats.cross.shape == (1, TEXT_CONFIG.n_cross) == (1, 9 + 4)
    # python in the list, sql only in the summary, excel nowhere (case and spacing ignored)
    assert feats.cross[0, -1].item() == pytest.approx(2 / 3)
    # 3 fields + at most max_sentences sentences; a job without a description has its fields only
    assert feats.member_mask.tolist() == [[True] * 7]
    torch.testing.assert_close(
        feats.member_segments[0, 3], student.encoder.encode(["summary: I use SQL daily."])[0]
    )
    assert feats.job_mask[0].tolist() == [True, True, True] + [False] * (
        feats.job_mask.shape[1] - 3
    )
    before = student.scores(members, jobs)
    student.save(tmp_path / "reader")
    loaded = FieldStudent.load(tmp_path / "reader")
    assert loaded.config == TEXT_CONFIG
    np.testing.assert_array_equal(loaded.scores(members, jobs), before)
    assert TEXT_CONFIG.columns() == (
        ["headline", "skills", "seniority", "summary"],
        ["title", "skills", "seniority", "description"],
    )


def test_a_version_1_folder_still_loads(encoder_dir, tmp_path):
    student = _student(encoder_dir)
    student.save(tmp_path / "old")
    meta_path = tmp_path / "old" / "field_student.json"
    meta = json.loads(meta_path.read_text())
    meta["version"] = 1
    v1_keys = ("member_fields", "job_fields", "list_fields", "projection_dim", "hidden_dim")
    meta["config"] = {k: meta["config"][k] for k in (*v1_keys, "max_length")}
    meta_path.write_text(json.dumps(meta))
    members, jobs, *_ = _task(2, seed=9)
    loaded = FieldStudent.load(tmp_path / "old")
    assert not loaded.config.reads_text
    np.testing.assert_array_equal(loaded.scores(members, jobs), student.scores(members, jobs))


def test_validation_keeps_the_best_epoch(encoder_dir):
    from udfs.field_student import Validation

    members, jobs, ids, probs, grades = _task(12, seed=10)
    held_members, held_jobs, _, _, held_grades = _task(6, seed=11)
    seen: list[float] = []

    def metric(scores: np.ndarray) -> float:
        seen.append(_auc(scores, held_grades))
        return seen[-1]

    student = _student(encoder_dir)
    cfg = train_config(DistillConfig, "student.fields", epochs=6, batch_members=4, seed=0)
    history = train_field_student(
        student,
        members,
        jobs,
        ids,
        probs,
        cfg,
        show_progress=False,
        validation=Validation(held_members, held_jobs, metric),
    )
    assert [h["validation"] for h in history] == seen and len(seen) == 6
    chosen = [k for k, h in enumerate(history) if h.get("selected")]
    assert chosen == [int(np.argmax(seen))]  # the first best epoch's weights are kept
    assert _auc(student.scores(held_members, held_jobs), held_grades) == max(seen)
