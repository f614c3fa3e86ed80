"""One way to write a number for a reader: prose, tables, chart titles and the audit all use it.

    fmt_num(73968.0)          -> '73,968'
    fmt_num(1545.976)         -> '1,546'
    fmt_num(-0.00001, sig=2)  -> '0.000010' ... and fmt_num(-0.0, unit='bpc') -> '0 bpc' (never '-0')
    fmt_num(4023.7, unit='tokens/s') -> '4,024 tokens/s'
    fmt_quantity(0.01234, 'bpc')     -> '0.012 bpc'
    fmt_ratio(2.114)          -> '2.11x'
    plural(1, 'variant')      -> '1 variant';  plural(3, 'minute') -> '3 minutes'
    with_article('8-token')   -> 'an 8-token'

Rules: thousands separators from 1,000 up; significant figures chosen per quantity
(``QUANTITIES``), never more decimals than they need; no negative zero; no scientific
notation between 1e-4 and 1e12; NaN and None are 'n/a'.
"""
from __future__ import annotations

import math
import numbers as _numbers

# quantity -> (significant figures, unit, largest number of decimals)
QUANTITIES = {
    "bpc": (3, "bpc", 3),             # bits per character, and differences of it
    "bits/char": (3, "bits/char", 3),
    "tokens_per_s": (3, "tokens/s", 2),
    "chars_per_s": (3, "chars/s", 2),
    "params": (None, "parameters", 0),
    "bytes": (None, "bytes", 0),
    "kb": (3, "KB", 1),
    "seconds": (3, "s", 1),
    "minutes": (2, "min", 1),
    "cycles": (None, "cycles", 0),
    "ratio": (3, "x", 2),
    "percent": (2, "%", 1),
    "count": (None, "", 0),
}


def _missing(x) -> bool:
    if x is None:
        return True
    try:
        return bool(isinstance(x, float) and math.isnan(x)) or (hasattr(x, "__float__") and math.isnan(float(x)))
    except (TypeError, ValueError):
        return False


SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def fmt_num(x, sig: int | None = 3, unit: str | None = None, max_decimals: int = 4) -> str:
    """``x`` to ``sig`` significant figures (None: as an integer), thousands separators, no negative zero."""
    if _missing(x):
        return "n/a"
    if isinstance(x, bool) or not isinstance(x, _numbers.Number):
        return str(x) + (f" {unit}" if unit else "")
    v = float(x)
    if math.isinf(v):
        return ("-" if v < 0 else "") + "∞"
    if sig is None or (float(v).is_integer() and abs(v) >= 1):
        text = f"{round(v):,}"
    elif v == 0:
        text = "0"
    else:
        mag = math.floor(math.log10(abs(v)))
        if abs(v) < 1e-4:        # 5.4 × 10⁻⁷, as a book writes it (not Python's 5.4e-07)
            mantissa, exp = f"{v:.{max(sig - 1, 0)}e}".split("e")
            mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
            text = f"{mantissa} × 10{str(int(exp)).translate(SUPERSCRIPT)}"
        else:
            decimals = min(max(sig - 1 - mag, 0), max_decimals)
            text = f"{v:,.{decimals}f}"
            if "." in text:   # 2.50 -> 2.5: trailing zeros carry no information at a chosen precision
                text = text.rstrip("0").rstrip(".")
    if text.startswith("-") and "×" not in text and float(text.replace(",", "") or 0) == 0:
        text = text[1:]      # never print '-0' / '-0.000'
    return f"{text} {unit}" if unit and unit != "x" else f"{text}x" if unit == "x" else text


def fmt_quantity(x, quantity: str, unit: bool = True, signed: bool = False) -> str:
    """``x`` written as the named quantity (``QUANTITIES``): its precision and, if ``unit``, its unit."""
    if quantity not in QUANTITIES:
        raise KeyError(f"unknown quantity {quantity!r}; known: {', '.join(QUANTITIES)}")
    sig, u, decimals = QUANTITIES[quantity]
    if _missing(x):
        return "n/a"
    v = float(x)
    if quantity == "percent":
        text = fmt_num(100 * v, sig=sig, max_decimals=decimals) + "%"
    elif sig is not None and abs(v) < 10 ** (sig - decimals - 1) and v != 0 and decimals:
        text = fmt_num(round(v, decimals), sig=sig, max_decimals=decimals)   # 0.00001 bpc -> '0'
    else:
        text = fmt_num(v, sig=sig, max_decimals=decimals)
    if signed and not text.startswith("-") and text not in ("0", "0%"):
        text = "+" + text
    if unit and u and quantity != "percent":
        text = f"{text}x" if u == "x" else f"{text} {u}"
    return text


def fmt_ratio(x, decimals: int = 2) -> str:
    """A ratio as '2.11x' (or 'n/a')."""
    return "n/a" if _missing(x) else f"{float(x):,.{decimals}f}x"


def fmt_pct(x, decimals: int = 0) -> str:
    """A fraction as a percentage: 0.571 -> '57%'."""
    if _missing(x):
        return "n/a"
    text = f"{100 * float(x):.{decimals}f}"
    return (text[1:] if text.startswith("-") and float(text) == 0 else text) + "%"


def plural(n, noun: str, plural_form: str | None = None) -> str:
    """'1 variant', '3 variants', '1,024 tokens' (the count with separators)."""
    count = fmt_num(n, sig=None) if not _missing(n) else "n/a"
    return f"{count} {noun if n == 1 else (plural_form or noun + 's')}"


def is_bool(x) -> bool:
    """A Python or NumPy boolean (not an int that happens to be 0 or 1)."""
    import numpy as np
    return isinstance(x, (bool, np.bool_))


def yes_no(x) -> str:
    """A boolean as a reader reads it: "yes" / "no"."""
    return "yes" if x else "no"


def with_article(word: str) -> str:
    """'a' or 'an' before ``word`` as it is read aloud ('an 8-token', 'an 11-layer', 'a 16-token')."""
    w = word.lstrip()
    head = w.split("-")[0].replace(",", "")
    if head.isdigit():
        # 'eight...', 'eleven', 'eighteen', 'eleven thousand', 'eighteen thousand' start with a vowel sound
        spoken_vowel = head[0] == "8" or (len(head) in (2, 5) and head[:2] in ("11", "18"))
        return ("an " if spoken_vowel else "a ") + word
    return ("an " if w[:1].lower() in "aeiou" else "a ") + word


def fmt_duration(seconds) -> str:
    """'45 s', '1 minute', '12 minutes', '1.5 hours'."""
    if _missing(seconds):
        return "n/a"
    s = float(seconds)
    if s < 90:
        return f"{fmt_num(s, sig=2)} s"
    if s < 5400:
        return plural(round(s / 60), "minute")
    return f"{fmt_num(s / 3600, sig=2)} hours"
