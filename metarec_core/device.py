"""The only place that asks torch which device to use, and what the CPU can do."""

from __future__ import annotations

import re
import time
from functools import lru_cache

import torch

from metarec_core.errors import MetaRecError

_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn "auto" | "cpu" | "cuda" | "cuda:N" into a torch.device.

    "auto" picks CUDA when it is available, else the CPU. Asking for CUDA on a machine without it
    raises a MetaRecError with a clear message rather than failing later inside torch.
    """
    spec = (spec or "auto").strip().lower()
    if not _PATTERN.match(spec):
        raise MetaRecError(f"unknown device '{spec}': use auto, cpu, cuda or cuda:N")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MetaRecError(
                f"device '{spec}' requested but CUDA is not available on this machine"
            )
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise MetaRecError(
                f"device '{spec}' requested but only {torch.cuda.device_count()} GPU(s) are present"
            )
    return torch.device(spec)


def available_device(spec: str = "auto") -> torch.device:
    """``resolve_device`` for a stored setting (a model's config): a GPU it names that this
    machine lacks gives the CPU instead of an error, so the model still runs here."""
    try:
        return resolve_device(spec)
    except MetaRecError:
        return torch.device("cpu")


def device_label(device: torch.device) -> str:
    """A short label for badges: "CPU" or the GPU's name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "CPU"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (``avx2``, ``avx512f``, ``amx_bf16``, ...);
    empty where /proc/cpuinfo is missing."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_has_bf16() -> bool:
    """Whether the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX); elsewhere torch
    emulates it, far slower than float32."""
    return bool(cpu_flags() & BF16_CPU_FLAGS)


@lru_cache(maxsize=1)
def cpu_bf16_faster() -> bool:
    """Whether this CPU multiplies bfloat16 clearly (1.5x) faster than float32.

    Only CPUs with bfloat16 instructions are timed, on a small product, once per process:
    elsewhere bfloat16 is emulated, and on an AVX2 machine a 512 x 384 x 4096 product took
    3.1 s in bfloat16 against 0.03 s in float32.
    """
    if not cpu_has_bf16():
        return False
    a, b = torch.randn(256, 384), torch.randn(384, 2048)

    def best(dtype: torch.dtype) -> float:
        x, y = a.to(dtype), b.to(dtype)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            x @ y
            times.append(time.perf_counter() - t)
        return min(times)

    return best(torch.bfloat16) * 1.5 < best(torch.float32)
