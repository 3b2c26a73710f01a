"""Table definitions: every column's type, meaning and nullability, written once.

Input tables (``members``, ``jobs``) are read with every column nullable, because raw data is
allowed to be bad; ``nullable=False`` there is the *contract* that validation enforces by sending
offending rows to ``quarantine``. Output tables are written with exactly these schemas.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T

from schemas.vocab import SENIORITY_LEVELS, WORKPLACE_TYPES


@dataclass(frozen=True)
class Column:
    name: str
    dtype: T.DataType
    nullable: bool
    doc: str


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]
    partition_by: tuple[str, ...] = ()
    # False for raw inputs: their NOT NULL is the contract validation enforces (quarantine),
    # not a constraint on the Delta table that would refuse the bad rows outright.
    enforce_not_null: bool = True
    # Delta table properties set when policyrank creates the table.
    properties: tuple[tuple[str, str], ...] = ()

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def spark_schema(self, *, enforce_nullability: bool = True) -> T.StructType:
        return T.StructType(
            [
                T.StructField(c.name, c.dtype, c.nullable or not enforce_nullability)
                for c in self.columns
            ]
        )

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if not c.nullable]

    def markdown(self) -> str:
        rows = [f"### `{self.name}`", "", self.doc, ""]
        if self.partition_by:
            rows += [f"Partitioned by `{', '.join(self.partition_by)}`.", ""]
        if self.properties:
            props = ", ".join(f"`{k}={v}`" for k, v in self.properties)
            rows += [f"Table properties when policyrank creates it: {props}.", ""]
        rows += ["| column | type | nullable | meaning |", "| --- | --- | --- | --- |"]
        rows += [
            f"| `{c.name}` | {c.dtype.simpleString()} | {'yes' if c.nullable else 'no'} | {c.doc} |"
            for c in self.columns
        ]
        return "\n".join(rows) + "\n"


_S, _I, _D, _F, _B = T.StringType(), T.IntegerType(), T.DoubleType(), T.FloatType(), T.BooleanType()
_DATE = T.DateType()
_STRINGS = T.ArrayType(T.StringType(), containsNull=False)

# Incremental days read what changed in the inputs since the last day from Delta's change data
# feed (jobs/incremental.py): on for the input tables policyrank creates; enable it on your own.
CHANGE_FEED = (("delta.enableChangeDataFeed", "true"),)

MEMBERS = Table(
    "members",
    "Input. One row per member profile. All text is untrusted user input.",
    (
        Column("member_id", _S, False, "Stable member key; must be unique."),
        Column("headline", _S, False, "Profile headline, e.g. 'Senior Data Engineer at Acme'."),
        Column("summary", _S, True, "Free-text 'about' section."),
        Column("skills", _S, False, "Comma-separated skills as the member listed them."),
        Column("seniority", _S, False, f"Self-declared seniority: one of {SENIORITY_LEVELS}."),
        Column("location", _S, False, "'City, CC' (ISO country code)."),
        Column("remote_preference", _S, False, f"One of {WORKPLACE_TYPES}."),
        Column("work_authorization", _S, True, "Comma-separated ISO country codes."),
    ),
    enforce_not_null=False,
    properties=CHANGE_FEED,
)

JOBS = Table(
    "jobs",
    "Input. One row per open job posting. All text is untrusted employer input.",
    (
        Column("job_id", _S, False, "Stable job key; must be unique."),
        Column("title", _S, False, "Job title, e.g. 'Staff Backend Engineer'."),
        Column("company", _S, True, "Hiring company name."),
        Column("description", _S, True, "Free-text job description."),
        Column("skills", _S, False, "Comma-separated required skills."),
        Column("seniority", _S, False, f"Required seniority: one of {SENIORITY_LEVELS}."),
        Column("location", _S, False, "'City, CC' of the office."),
        Column("workplace_type", _S, False, f"One of {WORKPLACE_TYPES}."),
        Column("visa_sponsorship", _B, True, "True when the employer sponsors work visas."),
    ),
    enforce_not_null=False,
    properties=CHANGE_FEED,
)

TRUTH = Table(
    "truth",
    "SIMULATOR ONLY: the facts members and jobs were rendered from (what a careful reader of the "
    "text credits) and how the text presents them (docs/world.md). Production code never reads "
    "it; `sim.world.true_grade` turns the facts into the true 0-4 grade.",
    (
        Column("entity", _S, False, "'member' or 'job'."),
        Column("entity_id", _S, False, "member_id or job_id."),
        Column("occupation", _S, False, "Occupation."),
        Column("family", _S, False, "Occupation family (adjacent occupations share one)."),
        Column("seniority_level", _I, False, "0 (entry) .. 4 (principal): the real level."),
        Column("region", _S, False, "Current city (member) or office city (job)."),
        Column("country", _S, False, "ISO country code of the region."),
        Column(
            "workplace", _S, False, f"Remote preference (member) or type (job): {WORKPLACE_TYPES}."
        ),
        Column("skills", _STRINGS, False, "Skills, canonical names (member: has; job: requires)."),
        Column("work_authorization", _STRINGS, False, "Member: countries authorised; job: empty."),
        Column("visa_sponsorship", _B, False, "Job: sponsors visas; member: false."),
        Column("relocation_region", _S, False, "Member: a city they would move to, or ''."),
        Column("years", _I, False, "Years of experience (member) or required (job)."),
        Column("years_stated", _B, False, "Whether the text states the years."),
        Column("title", _S, False, "The title as written, without its level word."),
        Column("title_level", _I, False, "The level the title's prefix names (inflated if above)."),
        Column("declared_level", _I, False, "The level the seniority field says (stale if below)."),
        Column("declared_region", _S, False, "The city the location field says (stale if moved)."),
        Column("declared_workplace", _S, False, "What the remote-preference/workplace field says."),
        Column("declared_sponsorship", _B, True, "Job: the sponsorship field (null: left empty)."),
        Column("skill_forms", _STRINGS, False, "Surface form of each skill, aligned with skills."),
        Column("skills_in_prose", _STRINGS, False, "Skills named only in the summary."),
        Column("padding_skills", _STRINGS, False, "Listed skills the member lacks (stuffing)."),
        Column("auth_in_prose", _STRINGS, False, "Authorizations stated only in the summary."),
    ),
)

CANDIDATES = Table(
    "candidates",
    "Output of `policyrank candidates`: the top-K blocked (member, job) pairs per member.",
    (
        Column("run_date", _DATE, False, "Logical date of the daily run."),
        Column("member_id", _S, False, "Member key."),
        Column("job_id", _S, False, "Job key."),
        Column("shared_keys", _I, False, "Blocking keys (skills) the member and job share."),
        Column("prefilter_score", _D, False, "Cheap 0-1 score used to keep the top-K."),
        Column("prefilter_rank", _I, False, "1 = best prefilter score within the member."),
        Column("run_id", _S, False, "Identifier of the run that wrote the row."),
    ),
    partition_by=("run_date",),
)

SCORES = Table(
    "scores",
    "Output of `policyrank score`: the top-N jobs per member, ranked by the production student.",
    (
        Column("run_date", _DATE, False, "Logical date of the daily run."),
        Column("member_id", _S, False, "Member key."),
        Column("job_id", _S, False, "Job key."),
        Column(
            "score",
            _F,
            False,
            "The student's expected grade (0-4); sigmoid for a 1-logit model; the candidate "
            "prefilter score (0-1) when model_version is 'prefilter'.",
        ),
        Column("rank", _I, False, "1 = best score within the member (ties broken by job_id)."),
        Column(
            "model_version",
            _S,
            False,
            "Content-derived version of the scoring model, or 'prefilter' before any student "
            "passed the gate.",
        ),
        Column("run_id", _S, False, "Identifier of the run that wrote the row."),
    ),
    partition_by=("run_date",),
)

QUARANTINE = Table(
    "quarantine",
    "Rows that broke the schema or the rules, with the reason. Nothing is dropped silently.",
    (
        Column("run_date", _DATE, False, "Logical date of the run that quarantined the row."),
        Column("stage", _S, False, "Job that quarantined the row, e.g. 'candidates'."),
        Column("source_table", _S, False, "Table the row came from."),
        Column("entity_id", _S, True, "The row's key, when it has one."),
        Column("reason", _S, False, "Machine-readable reason, e.g. 'unknown_enum:seniority'."),
        Column("record", _S, False, "The raw row as JSON, cut to 2,000 characters."),
        Column("run_id", _S, False, "Identifier of the run that wrote the row."),
    ),
    partition_by=("run_date",),
)

CANDIDATE_SCORES = Table(
    "candidate_scores",
    "Output of `policyrank score`: every scored candidate pair of a date (`scores` keeps the "
    "top-N of it). An incremental day carries a pair's score over when its member, job and model "
    "are unchanged since the day before.",
    (
        Column("run_date", _DATE, False, "Logical date of the daily run."),
        Column("member_id", _S, False, "Member key."),
        Column("job_id", _S, False, "Job key."),
        Column("score", _F, False, "As in `scores`."),
        Column("model_version", _S, False, "As in `scores`."),
        Column("run_id", _S, False, "Identifier of the run that wrote the row."),
    ),
    partition_by=("run_date",),
)

STEP_INPUTS = Table(
    "step_inputs",
    "Lineage of `candidates` and `score`: per date and step, the input versions read and a "
    "fingerprint of everything else the output depends on (settings, model). The next "
    "day starts from it when it runs incrementally (docs/incremental.md).",
    (
        Column("run_date", _DATE, False, "Logical date of the run."),
        Column("step", _S, False, "'candidates' or 'score'."),
        Column("members_version", T.LongType(), False, "Delta version of `members` read."),
        Column("jobs_version", T.LongType(), False, "Delta version of `jobs` read."),
        Column(
            "fingerprint",
            _S,
            False,
            "Hash of the settings, model and context the output depends on.",
        ),
        Column("mode", _S, False, "'full' or 'incremental'."),
        Column("reason", _S, False, "Why the step ran full, or the day it started from."),
        Column(
            "changed_members", T.LongType(), True, "Members changed since that day (incremental)."
        ),
        Column("changed_jobs", T.LongType(), True, "Jobs changed since that day (incremental)."),
        Column(
            "run_id", _S, False, "Identifier of the run that wrote the row (and the step's output)."
        ),
    ),
    partition_by=("run_date",),
)

_PROBS = T.ArrayType(T.FloatType(), containsNull=False)
_INTS = T.ArrayType(T.IntegerType(), containsNull=False)

SAMPLED_PAIRS = Table(
    "sampled_pairs",
    "Output of `policyrank sample`: the pairs the teacher labels for a date. Chosen by a hash of "
    "the pair key and the seed, so a rerun picks the same pairs.",
    (
        Column("run_date", _DATE, False, "Logical date of the daily run."),
        Column("member_id", _S, False, "Member key."),
        Column("job_id", _S, False, "Job key."),
        Column(
            "source", _S, False, "'candidate' (a drawn member's list), 'hard_negative' or 'random'."
        ),
        Column("stratum", _S, False, "Segment 'occupation|seniority band|city' of the member."),
        Column(
            "policy_bucket",
            _S,
            False,
            "Observable policy breach of the pair: 'authorization', "
            "'location', 'seniority', 'function' or 'none'.",
        ),
        Column("run_id", _S, False, "Identifier of the run that wrote the row."),
    ),
    partition_by=("run_date",),
)

GOLD_LABELS = Table(
    "gold_labels",
    "Input: human-graded (member, job) pairs under the policy (in the demo, written by the "
    "simulator's raters: `policyrank gold`). Held-out evaluation members are chosen by a hash of "
    "member_id (`eval.heldout_share`); the other members' pairs fine-tune the cross_encoder judge.",
    (
        Column("member_id", _S, False, "Member key."),
        Column("job_id", _S, False, "Job key."),
        Column("gold_grade", _I, False, "The raters' consensus grade (0-4)."),
        Column("policy_version", _S, False, "Policy the raters applied: semver+content hash."),
        Column("rater_grades", _INTS, True, "Each rater's 0-4 grade, when kept."),
        Column("rater_agreement", _D, True, "Share of raters who gave the gold grade."),
        Column(
            "source",
            _S,
            True,
            "How the pair was sampled (see sampled_pairs); 'red_team': the simulator's slice of "
            "injected pairs of held-out members, for calibration.",
        ),
        Column("stratum", _S, True, "Segment 'occupation|seniority band|city' of the member."),
        Column(
            "policy_bucket", _S, True, "Observable policy breach of the pair (see sampled_pairs)."
        ),
        Column(
            "injected",
            _B,
            True,
            "True when the member or job text holds a prompt injection (known in the simulator).",
        ),
        Column("run_id", _S, True, "Identifier of the run that wrote the row."),
    ),
)

TRUE_GRADES = Table(
    "true_grades",
    "SIMULATOR ONLY: the hidden true grade of every gold pair, from `truth`. Evaluation reports "
    "hidden-truth metrics when this table exists; nothing trains or gates on it.",
    (
        Column("member_id", _S, False, "Member key."),
        Column("job_id", _S, False, "Job key."),
        Column("true_grade", _I, False, "The pair's true 0-4 grade."),
    ),
)

TEACHER_LABELS = Table(
    "teacher_labels",
    "Output of `policyrank label`: the teacher's grade distribution (soft label) per sampled "
    "pair. A pair is labelled once per (teacher_model_id, policy_version, prompt_hash).",
    (
        Column("run_date", _DATE, False, "Date of the run that labelled the pair."),
        Column("member_id", _S, False, "Member key."),
        Column("job_id", _S, False, "Job key."),
        Column("source", _S, False, "How the pair was sampled (see sampled_pairs)."),
        Column("stratum", _S, False, "Segment 'occupation|seniority band|city' of the member."),
        Column("grade_probs", _PROBS, False, "p(grade = 0..4), summing to 1."),
        Column("expected_grade", _D, False, "sum g * p(g): the soft score."),
        Column("grade", _I, False, "argmax grade."),
        Column(
            "entropy", _D, False, "Entropy of grade_probs in nats (0 = certain, ln 5 = uniform)."
        ),
        Column("teacher_model_id", _S, False, "Content-derived version of the teacher model."),
        Column(
            "policy_version", _S, False, "Policy the teacher graded under: semver+content hash."
        ),
        Column("prompt_hash", _S, False, "Hash of the templates/prompt the teacher saw."),
        Column("run_id", _S, False, "Identifier of the run that wrote the row."),
    ),
    partition_by=("run_date",),
)

JUDGE_CALIBRATION = Table(
    "judge_calibration",
    "Output of `policyrank calibrate`: the teacher against the held-out gold labels.",
    (
        Column("run_date", _DATE, False, "Date of the calibration run."),
        Column("teacher_model_id", _S, False, "Content-derived version of the teacher model."),
        Column("policy_version", _S, False, "Policy version of the gold labels."),
        Column("prompt_hash", _S, False, "Hash of the templates/prompt the teacher saw."),
        Column(
            "slice",
            _S,
            False,
            "'overall', 'sampled' (without the red-team pairs), 'clean', 'injected', "
            "'source:<source>', 'band:<band>' or 'occupation:<occupation>'.",
        ),
        Column("pairs", _I, False, "Held-out gold pairs in the slice."),
        Column(
            "weighted_kappa",
            _D,
            True,
            "Linear weighted kappa, teacher grade vs gold grade "
            "(null when undefined, e.g. one class only).",
        ),
        Column("exact_agreement", _D, False, "Share of pairs where teacher grade = gold grade."),
        Column(
            "spearman",
            _D,
            True,
            "Spearman correlation of the teacher's expected grade with the gold grade.",
        ),
        Column(
            "confusion", _S, False, "5x5 confusion matrix as JSON, rows = gold, cols = teacher."
        ),
        Column("run_id", _S, False, "Identifier of the run that wrote the row."),
    ),
    partition_by=("run_date",),
)

EVAL_METRICS = Table(
    "eval_metrics",
    "Output of `policyrank evaluate`: each model and baseline on the held-out members' candidate "
    "lists, against the held-out gold labels (and the simulator's true grades when they exist), "
    "overall and per seniority band.",
    (
        Column("run_date", _DATE, False, "Date of the evaluation run."),
        Column(
            "model",
            _S,
            False,
            "'student', 'teacher', 'production', 'rules' (the policy as rules over declared "
            "fields), 'prefilter' (the candidate ordering) or 'random'.",
        ),
        Column("model_version", _S, False, "Content-derived version of the model."),
        Column("label_source", _S, False, "'gold' (held-out gold grades) or 'truth' (simulator)."),
        Column("slice", _S, False, "'overall' or 'band:<seniority band>' of the member."),
        Column("members", _I, False, "Members in the slice with a relevant pair."),
        Column("pairs", _I, False, "Labelled candidate pairs in the slice."),
        Column("ndcg_at_10", _D, True, "NDCG@10 with gain 2^grade - 1, mean over members."),
        Column("ndcg_at_10_ci_low", _D, True, "2.5th percentile of a member bootstrap of it."),
        Column("ndcg_at_10_ci_high", _D, True, "97.5th percentile of a member bootstrap of it."),
        Column("poor_match_rate_at_10", _D, True, "Share of top-10 pairs with grade <= 1."),
        Column("auc_grade_ge_3", _D, True, "ROC AUC of the score for grade >= 3."),
        Column(
            "weighted_kappa",
            _D,
            True,
            "Linear weighted kappa of the model's grade vs the labels (null without grades).",
        ),
        Column(
            "kendall_tau_to_teacher",
            _D,
            True,
            "Mean per-member Kendall tau-b to the teacher's expected grade.",
        ),
        Column("kl_to_teacher", _D, True, "Mean KL(teacher || model) of grade distributions."),
        Column("ece", _D, True, "Expected calibration error of p(grade >= 3) vs grade >= 3."),
        Column("run_id", _S, False, "Identifier of the run that wrote the row."),
    ),
    partition_by=("run_date",),
)

EVAL_COMPARISONS = Table(
    "eval_comparisons",
    "Output of `policyrank evaluate`: the student against each baseline on the same held-out "
    "members, with paired member-bootstrap 95% intervals. The gate reads the gold rows.",
    (
        Column("run_date", _DATE, False, "Date of the evaluation run."),
        Column("model_version", _S, False, "The evaluated student."),
        Column("baseline", _S, False, "'rules', 'prefilter', 'random', 'production' or 'teacher'."),
        Column("baseline_version", _S, False, "Version of the baseline model."),
        Column("label_source", _S, False, "'gold' or 'truth'."),
        Column("metric", _S, False, "e.g. 'ndcg_at_10'."),
        Column("statistic", _S, False, "'difference' (student - baseline) or 'ratio'."),
        Column("student_value", _D, False, "The student's metric."),
        Column("baseline_value", _D, False, "The baseline's metric."),
        Column("estimate", _D, False, "The statistic on all members."),
        Column("ci_low", _D, False, "2.5th percentile of the member bootstrap."),
        Column("ci_high", _D, False, "97.5th percentile of the member bootstrap."),
        Column("members", _I, False, "Members both were compared on."),
        Column("run_id", _S, False, "Identifier of the run that wrote the row."),
    ),
    partition_by=("run_date",),
)

TABLES = {
    t.name: t
    for t in (
        MEMBERS,
        JOBS,
        TRUTH,
        CANDIDATES,
        SCORES,
        CANDIDATE_SCORES,
        STEP_INPUTS,
        QUARANTINE,
        SAMPLED_PAIRS,
        GOLD_LABELS,
        TRUE_GRADES,
        TEACHER_LABELS,
        JUDGE_CALIBRATION,
        EVAL_METRICS,
        EVAL_COMPARISONS,
    )
}
