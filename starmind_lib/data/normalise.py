"""Text normalisation: UTF-8 mojibake repair, line endings, optional lowercasing.

TinyStories V1 on Hugging Face contains UTF-8 text that was decoded once as
Windows-1252 and re-encoded ("mojibake"): ``’`` became ``â€™``, ``“`` became
``â€œ``. A closing ``”`` (bytes E2 80 9D) lost its last byte, because 0x9D is
undefined in Windows-1252, and shows up as a bare ``â€``. The lowercased
shard of the local sample also lowercased the lead character (``Ã©`` -> ``ã©``),
which is repaired as if it were upper case.

:func:`fix_mojibake` finds runs of one lead character (U+00C2..U+00F4)
followed by Windows-1252 renderings of UTF-8 continuation bytes, maps them
back to bytes and decodes them as UTF-8; a run is replaced only when that
decode succeeds (so genuine text such as "café" is never touched).
"""
from __future__ import annotations

import re

# The Windows-1252 (or, for its five undefined bytes, Latin-1) character for each
# UTF-8 continuation byte 0x80..0xBF.
_CONT_CHAR_TO_BYTE: dict[str, int] = {}
for _b in range(0x80, 0xC0):
    try:
        _CONT_CHAR_TO_BYTE[bytes([_b]).decode("cp1252")] = _b
    except UnicodeDecodeError:
        _CONT_CHAR_TO_BYTE[chr(_b)] = _b
_CONT_CLASS = "".join(re.escape(c) for c in _CONT_CHAR_TO_BYTE)
_MOJIBAKE_RE = re.compile(f"[\u00c2-\u00f4][{_CONT_CLASS}]+")
_RIGHT_DOUBLE_QUOTE_BROKEN = "\u00e2\u20ac"  # "â€": E2 80 with the 9D byte lost


def _decode_run(lead: str, rest: str) -> str | None:
    raw = bytes([ord(lead)]) + bytes(_CONT_CHAR_TO_BYTE[c] for c in rest)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _repair(match: re.Match) -> str:
    run = match.group()
    fixed = _decode_run(run[0], run[1:])
    if fixed is None and run == _RIGHT_DOUBLE_QUOTE_BROKEN:
        fixed = "\u201d"
    if fixed is None and run[0] == "\u00e3":
        # The lowercased shard turned the lead "Ã" (C3, Latin-1 letters) into "ã" (E3).
        fixed = _decode_run("\u00c3", run[1:])
    return run if fixed is None else fixed


def fix_mojibake(text: str) -> str:
    """Repair Windows-1252 mojibake of UTF-8 (``â€™`` -> ``’``); leaves other text unchanged."""
    return _MOJIBAKE_RE.sub(_repair, text)


def normalise_story(text: str, lowercase: bool = False, fix: bool = True) -> str:
    """One story: CRLF -> LF, stripped, mojibake repaired (``fix``), lowercased (``lowercase``)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if fix:
        text = fix_mojibake(text)
    if lowercase:
        text = text.lower()
    return text


def is_lowercase_only(texts, min_letters: int = 1000) -> bool:
    """True when ``texts`` have at least ``min_letters`` letters and not one of them is upper case.

    Used to spot shards lowercased upstream (train-00001 of the local TinyStories sample).
    """
    letters = 0
    for t in texts:
        if any(c.isupper() for c in t):
            return False
        letters += sum(c.isalpha() for c in t)
    return letters >= min_letters
