"""Where a scoring task runs: the GPU Spark assigned it, or the CPU."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Placement:
    device: str  # "cuda:<n>" or "cpu"
    dtype_name: str  # "bfloat16" on CUDA, "float32" on CPU
    note: str = ""  # why, when the task did not get what it asked for


def choose_placement(gpu_addresses: Sequence[str], cuda_available: bool) -> Placement:
    """Use the first GPU address Spark gave the task (bf16); CPU float32 without CUDA."""
    if cuda_available:
        address = gpu_addresses[0] if gpu_addresses else "0"
        return Placement(f"cuda:{address}", "bfloat16")
    if gpu_addresses:
        return Placement(
            "cpu",
            "float32",
            f"Spark assigned GPU {','.join(gpu_addresses)} but CUDA "
            "is not available in this worker; scoring on CPU",
        )
    return Placement("cpu", "float32")


def task_gpu_addresses() -> list[str]:
    """GPU addresses of the running Spark task (empty outside Spark or without GPU scheduling)."""
    try:
        from pyspark import TaskContext
    except ImportError:  # the core also runs without Spark installed
        return []
    ctx = TaskContext.get()
    if ctx is None:
        return []
    gpu = ctx.resources().get("gpu")
    return list(gpu.addresses) if gpu is not None else []


def load_pretrained(auto_class_name: str, model_dir: str | Path, placement: Placement, cpu_threads):
    """``(model, tokenizer)`` from a local Hugging Face folder, in eval mode on ``placement``
    (``auto_class_name``: e.g. ``AutoModelForSequenceClassification``); ``cpu_threads`` torch
    threads when it runs on the CPU. Never reaches a model hub."""
    import torch
    import transformers

    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no Hugging Face model (config.json) in {path}")
    if placement.device == "cpu" and cpu_threads:
        torch.set_num_threads(cpu_threads)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = getattr(transformers, auto_class_name).from_pretrained(
        path, local_files_only=True, dtype=getattr(torch, placement.dtype_name)
    )
    model.to(placement.device).eval()
    return model, tokenizer
