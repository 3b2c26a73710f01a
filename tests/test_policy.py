import hashlib
import re

import pandas as pd
import pytest

from jobs.config.policy import DEFAULT_POLICY, SEMVER, load_policy
from jobs.runtime.errors import PolicyrankError
from sim import lexicon, world


def _headings(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.startswith("#")]


def test_version_is_semver_plus_content_hash():
    policy = load_policy()
    assert policy.path == DEFAULT_POLICY
    assert SEMVER.match(policy.semver) and policy.semver == "2.0.0"
    assert policy.content_hash == hashlib.sha256(DEFAULT_POLICY.read_bytes()).hexdigest()
    assert policy.version == f"2.0.0+{policy.content_hash[:12]}"
    assert re.fullmatch(r"2\.0\.0\+[0-9a-f]{12}", policy.version)
    assert policy.title == "Job Match Grading Policy"
    assert policy.body.startswith("# Job Match Grading Policy") and "version:" not in policy.body
    assert load_policy(str(DEFAULT_POLICY)) == policy


def test_hash_changes_when_the_text_changes(tmp_path):
    copy = tmp_path / "policy.md"
    copy.write_bytes(DEFAULT_POLICY.read_bytes())
    same = load_policy(copy)
    assert same.version == load_policy().version
    copy.write_text(copy.read_text() + "\nOne more sentence.\n")
    edited = load_policy(copy)
    assert edited.semver == same.semver
    assert edited.content_hash != same.content_hash and edited.version != same.version


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("---\nversion: 1.0\ntitle: x\n---\n# x\n", "is not a semantic version"),
        ("---\nversion: v1.0.0\n---\n# x\n", "is not a semantic version"),
        ("---\nversion: 1.0.0.0\n---\n# x\n", "is not a semantic version"),
        ("---\ntitle: no version\n---\n# x\n", "policy version None is not a semantic version"),
        ("# no front matter\n", "must start with YAML front matter"),
        ("---\nversion: [1.0.0\n---\n", "front matter is not valid YAML"),
        ("---\n- 1.0.0\n---\n", "front matter must be a mapping"),
    ],
)
def test_bad_policy_is_one_clear_line(tmp_path, content, message):
    path = tmp_path / "policy.md"
    path.write_text(content)
    with pytest.raises(PolicyrankError, match=re.escape(message)) as err:
        load_policy(path)
    assert "\n" not in str(err.value)


def test_missing_policy_is_one_clear_line(tmp_path):
    with pytest.raises(PolicyrankError, match="policy file not found") as err:
        load_policy(tmp_path / "absent.md")
    assert "\n" not in str(err.value)


def test_prerelease_and_build_versions_are_semver(tmp_path):
    path = tmp_path / "policy.md"
    path.write_text("---\nversion: 2.1.0-rc.1+exp.sha.5114f85\n---\n# x\n")
    assert load_policy(path).semver == "2.1.0-rc.1+exp.sha.5114f85"


def test_real_policy_has_every_required_section():
    text = load_policy().text
    heads = "\n".join(_headings(text)).lower()
    for pattern in [
        r"^## \d+\. purpose and scope$",
        r"^## \d+\. the grade scale$",
        r"^## \d+\. dimensions$",
        r"^### 3\.\d occupation",
        r"^### 3\.\d skills coverage",
        r"^### 3\.\d seniority",
        r"^### 3\.\d location and remote",
        r"^### 3\.\d work authorization",
        r"^## \d+\. caps",
        r"^## \d+\. what must never influence a grade$",
        r"^## \d+\. untrusted text",
        r"^## \d+\. precedents$",
    ]:
        assert re.search(pattern, heads, re.MULTILINE), pattern
    for grade in range(5):
        assert re.search(rf"^### grade {grade} — \w", heads, re.MULTILINE), grade
    words = len(re.findall(r"[A-Za-z0-9][\w'./&+-]*", text))
    assert 1500 <= words <= 3500, words


def test_never_influence_lists_protected_attributes():
    text = load_policy().text.lower()
    section = text.split("what must never influence a grade", 1)[1].split("\n## ", 1)[0]
    for attribute in [
        "gender",
        "age",
        "race",
        "religion",
        "disability",
        "name",
        "photo",
        "marital",
        "nationality",
        "employment gaps",
    ]:
        assert attribute in section, attribute


def test_caps_table_matches_true_grade_caps():
    text = load_policy().text
    caps = text.split("## 5. Caps", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in caps.splitlines() if line.startswith("| ") and "---" not in line]
    got = {row.split("|")[1].strip(): int(row.split("|")[2]) for row in rows[1:]}
    assert sorted(got.values()) == [1, 1, 1, 2]
    assert any("legally work" in k and got[k] == 1 for k in got)
    assert any("Location or remote" in k and got[k] == 1 for k in got)
    assert any("occupation family" in k and got[k] == 1 for k in got)
    assert any("two or more levels" in k and got[k] == 2 for k in got)


# The precedents of section 9 as latents: each must get the grade the policy gives it from
# world.true_grade, so the written policy and the rules of the world cannot drift apart.
def _l(occ, level, region, workplace, skills, auth=(), sponsor=False, relocation=""):
    return dict(
        entity="x",
        entity_id="x",
        occupation=occ,
        family=lexicon.OCCUPATIONS[occ][0],
        seniority_level=level,
        region=region,
        country=dict(lexicon.REGIONS)[region],
        workplace=workplace,
        skills=list(skills),
        work_authorization=list(auth),
        visa_sponsorship=sponsor,
        relocation_region=relocation,
    )


DE_SKILLS = ["Spark", "SQL", "Python", "Airflow", "Kafka"]
PRECEDENTS = {
    "4.1": (
        _l("data_engineer", 2, "Berlin", "hybrid", DE_SKILLS, ["DE"]),
        _l("data_engineer", 2, "Berlin", "hybrid", ["Spark", "SQL", "Airflow", "Kafka"]),
    ),
    "4.2": (
        _l(
            "registered_nurse",
            1,
            "London",
            "onsite",
            ["Patient Care", "BLS", "Triage", "EHR", "ICU"],
            ["GB"],
        ),
        _l(
            "registered_nurse",
            1,
            "London",
            "onsite",
            ["Patient Care", "BLS", "Triage", "EHR", "Wound Care"],
        ),
    ),
    "4.3": (
        _l(
            "frontend_engineer",
            3,
            "Lyon",
            "remote",
            ["TypeScript", "React", "CSS", "Accessibility"],
            ["FR"],
        ),
        _l("frontend_engineer", 3, "Paris", "remote", ["TypeScript", "React", "CSS"]),
    ),
    "4.4": (
        _l(
            "ml_engineer",
            2,
            "Toronto",
            "hybrid",
            ["PyTorch", "Python", "Kubernetes", "Model Serving"],
            ["CA"],
        ),
        _l(
            "ml_engineer",
            2,
            "Amsterdam",
            "remote",
            ["PyTorch", "Python", "Model Serving"],
            sponsor=True,
        ),
    ),
    "4.5": (
        _l(
            "sre",
            2,
            "Bangalore",
            "remote",
            ["Kubernetes", "Terraform", "Linux", "Prometheus"],
            ["IN"],
        ),
        _l("sre", 2, "Bangalore", "remote", ["Kubernetes", "Terraform", "Linux", "Prometheus"]),
    ),
    "4.6": (
        _l(
            "data_engineer", 1, "Berlin", "hybrid", ["Spark", "SQL", "Airflow", "Kafka"], lexicon.EU
        ),
        _l("data_engineer", 1, "Amsterdam", "remote", ["Spark", "SQL", "Kafka"]),
    ),
    "3.1": (
        _l(
            "data_scientist",
            2,
            "Amsterdam",
            "hybrid",
            ["Python", "Statistics", "SQL", "Pandas"],
            ["NL"],
        ),
        _l(
            "data_scientist",
            2,
            "Amsterdam",
            "onsite",
            ["Python", "Statistics", "Causal Inference", "A/B Testing"],
        ),
    ),
    "3.2": (
        _l(
            "analytics_engineer",
            1,
            "Austin",
            "onsite",
            ["dbt", "SQL", "Python", "Snowflake", "Looker"],
            ["US"],
        ),
        _l("data_engineer", 1, "Austin", "hybrid", ["SQL", "Python", "dbt"]),
    ),
    "3.3": (
        _l(
            "backend_engineer",
            2,
            "Madrid",
            "hybrid",
            ["Java", "Go", "PostgreSQL", "gRPC", "Kotlin"],
            ["ES"],
        ),
        _l(
            "backend_engineer",
            3,
            "Madrid",
            "hybrid",
            ["Java", "PostgreSQL", "Microservices", "gRPC"],
        ),
    ),
    "3.4": (
        _l(
            "financial_analyst",
            1,
            "Singapore",
            "onsite",
            ["Excel", "Financial Modeling", "Forecasting", "Valuation"],
            ["SG"],
        ),
        _l(
            "financial_analyst",
            1,
            "Singapore",
            "onsite",
            ["Excel", "Financial Modeling", "FP&A", "Budgeting"],
        ),
    ),
    "2.1": (
        _l(
            "product_manager",
            0,
            "San Francisco",
            "hybrid",
            ["Roadmapping", "User Research", "A/B Testing", "SQL", "Agile"],
            ["US"],
        ),
        _l(
            "product_manager",
            2,
            "San Francisco",
            "hybrid",
            ["Roadmapping", "User Research", "A/B Testing"],
        ),
    ),
    "2.2": (
        _l(
            "ux_designer",
            2,
            "Sydney",
            "onsite",
            ["Figma", "User Research", "Prototyping", "Design Systems"],
            ["AU"],
        ),
        _l(
            "product_manager",
            2,
            "Sydney",
            "onsite",
            ["User Research", "Roadmapping", "A/B Testing", "Stakeholder Management"],
        ),
    ),
    "2.3": (
        _l(
            "sre",
            3,
            "Bangalore",
            "remote",
            ["Kubernetes", "Terraform", "Linux", "Prometheus"],
            ["IN"],
        ),
        _l("sre", 1, "Bangalore", "remote", ["Kubernetes", "Terraform", "AWS", "Linux"]),
    ),
    "2.4": (
        _l("analytics_engineer", 1, "London", "onsite", ["Excel", "Tableau"], ["GB"]),
        _l("data_engineer", 1, "London", "onsite", ["Python", "SQL", "Spark", "Airflow"]),
    ),
    "1.1": (
        _l("data_engineer", 2, "Berlin", "hybrid", DE_SKILLS, ["DE"]),
        _l("data_engineer", 2, "London", "remote", ["Spark", "SQL", "Airflow"]),
    ),
    "1.2": (
        _l("accountant", 1, "Madrid", "onsite", ["GAAP", "IFRS", "Excel", "Audit", "Tax"], ["ES"]),
        _l("accountant", 1, "Barcelona", "hybrid", ["GAAP", "Excel", "Audit"]),
    ),
    "1.3": (
        _l(
            "mobile_engineer",
            2,
            "New York",
            "remote",
            ["Swift", "iOS", "SwiftUI", "Firebase"],
            ["US"],
        ),
        _l("mobile_engineer", 2, "New York", "onsite", ["Swift", "iOS", "SwiftUI"]),
    ),
    "1.4": (
        _l(
            "data_scientist",
            2,
            "London",
            "hybrid",
            ["Python", "A/B Testing", "Statistics", "SQL"],
            ["GB"],
        ),
        _l("growth_marketer", 2, "London", "hybrid", ["A/B Testing", "Marketing Analytics", "SEO"]),
    ),
    "1.5": (
        _l("backend_engineer", 2, "Madrid", "remote", ["Java", "Go", "PostgreSQL"], ["ES"]),
        _l("backend_engineer", 2, "Madrid", "hybrid", ["Java", "Go", "PostgreSQL"]),
    ),
    "0.1": (
        _l("registered_nurse", 1, "Toronto", "onsite", ["Patient Care", "BLS", "Triage"], ["CA"]),
        _l("backend_engineer", 3, "Toronto", "onsite", ["Java", "Go", "PostgreSQL"]),
    ),
    "0.2": (
        _l(
            "account_executive",
            2,
            "Manchester",
            "hybrid",
            ["Salesforce", "Negotiation", "Forecasting", "SaaS"],
            ["GB"],
        ),
        _l("accountant", 1, "Manchester", "hybrid", ["GAAP", "Audit", "Reconciliation"]),
    ),
    "0.3": (
        _l(
            "sales_development",
            0,
            "Munich",
            "onsite",
            ["Cold Calling", "Salesforce", "Outreach"],
            ["DE"],
        ),
        _l(
            "pharmacist",
            2,
            "Munich",
            "onsite",
            ["Pharmacology", "Medication Review", "Patient Counseling"],
        ),
    ),
    "0.4": (
        _l("content_marketer", 1, "Sydney", "remote", ["Copywriting", "SEO"], ["AU"]),
        _l("supply_chain_analyst", 3, "Singapore", "onsite", ["Logistics", "SAP"]),
    ),
}


def _precedent_sections(text: str) -> dict[str, str]:
    parts = re.split(r"^#### Precedent (\d\.\d+) ", text, flags=re.MULTILINE)
    pairs = zip(parts[1::2], parts[2::2], strict=True)
    return {key: re.split(r"\n#{2,3} ", body, maxsplit=1)[0] for key, body in pairs}


def test_at_least_two_precedents_per_grade_with_cap_and_injection_examples():
    text = load_policy().text
    sections = _precedent_sections(text)
    for grade in range(5):
        assert f"### Grade {grade} precedents" in text
        assert sum(k.startswith(f"{grade}.") for k in sections) >= 2, grade
    titles = [h.lower() for h in _headings(text) if h.startswith("#### Precedent")]
    assert any("hard-requirement cap" in t for t in titles)
    assert any("injection" in t for t in titles)


def test_every_precedent_gets_its_stated_grade_from_the_world_rules():
    sections = _precedent_sections(load_policy().text)
    assert set(sections) == set(PRECEDENTS)
    for key, (member, job) in PRECEDENTS.items():
        stated = re.findall(r"Grade \*\*(\d)\*\*", sections[key])
        assert stated == [key[0]], (key, stated)
        assert world.true_grade(pd.DataFrame([member]), pd.DataFrame([job]))[0] == int(key[0]), key
