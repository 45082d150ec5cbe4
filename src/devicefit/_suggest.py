"""Did-you-mean suggestions for one-line errors (device ids, op names, deployment targets)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> str:
    """``" (did you mean 'iphone-12'?)"`` for the closest ``choices`` (case-insensitive); ``""`` if none is close."""
    options = list(dict.fromkeys(choices))
    by_lower = {c.lower(): c for c in options}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=n, cutoff=cutoff)
    if not close:
        return ""
    quoted = [repr(by_lower[c]) for c in close]
    text = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f" or {quoted[-1]}"
    return f" (did you mean {text}?)"
