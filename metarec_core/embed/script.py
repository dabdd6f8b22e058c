"""Which titles an English-only encoder cannot read: the share written in non-Latin scripts.

MiniLM and mpnet were trained on English; on a hand-made set of Chinese product titles they
classify near chance (benchmarks/README.md), so a task whose titles are largely in another
script deserves a plain warning and the multilingual encoder.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

WARN_SHARE = 0.1  # warn when at least this share of the titles is mostly non-Latin


def is_non_latin(text: str) -> bool:
    """Whether most letters of ``text`` are outside the Latin script (CJK, Cyrillic, Arabic...)."""
    text = str(text)
    if text.isascii():  # every letter Latin; the common case, checked without per-letter lookups
        return False
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return False
    other = sum(1 for ch in letters if "LATIN" not in unicodedata.name(ch, ""))
    return other * 2 > len(letters)


def non_latin_share(texts: Iterable[str]) -> float:
    """Share of ``texts`` whose letters are mostly non-Latin (0.0 for no texts)."""
    flags = [is_non_latin(t) for t in texts]
    return sum(flags) / len(flags) if flags else 0.0


def script_warning(texts: Iterable[str], encoder: str) -> str | None:
    """One line for people when many titles are outside what ``encoder`` knows, else None."""
    from metarec_core.embed.registry import ENCODERS, encoder_spec
    from metarec_core.errors import MetaRecError

    try:
        spec = encoder_spec(encoder)
    except MetaRecError:  # an encoder the registry does not know: nothing to say about it
        return None
    share = non_latin_share(texts)
    if not spec.english_only or share < WARN_SHARE:
        return None
    alt = ENCODERS["multilingual"]
    return (
        f"{share:.0%} of the titles are not in Latin script (e.g. Chinese); the {spec.name} "
        f"encoder knows English only and classifies such titles near chance: use the "
        f"multilingual encoder ({alt.install})"
    )
