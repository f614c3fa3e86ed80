"""Chapter 08's audit: every claim's verdict, the summary table (claims in ``claims_*``)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from . import tables as an
from ..numbers import is_bool, yes_no
from .audit_base import CLAIM_TEXT, FACTOR_NAMES, VERDICTS, AuditData, Verdict, _inconclusive
from .claims_design import claim_06, claim_07, claim_08, claim_09, file_size_text
from .claims_runtime import claim_10, claim_11, claim_12, claim_13
from .claims_size_speed import claim_01, claim_02, claim_03, claim_04, claim_05

CLAIMS: dict[int, Callable[[AuditData], Verdict]] = {
    1: claim_01, 2: claim_02, 3: claim_03, 4: claim_04, 5: claim_05, 6: claim_06, 7: claim_07,
    8: claim_08, 9: claim_09, 10: claim_10, 11: claim_11, 12: claim_12, 13: claim_13}


def run_audit(data: AuditData) -> list[Verdict]:
    """Every claim's verdict; a claim whose check crashes is reported as inconclusive with the error."""
    out = []
    for cid, check in CLAIMS.items():
        try:
            out.append(check(data))
        except (KeyError, ValueError, TypeError, an.MissingResult) as exc:  # tables of an unexpected shape
            out.append(_inconclusive(cid, CLAIM_TEXT[cid],
                                     f"the check failed on these tables ({type(exc).__name__}: {exc})"))
    return out


def per_runtime_text(v: Verdict) -> str:
    return "; ".join(f"{rt}: {kind}" for rt, kind in v.per_runtime.items())


def summary(verdicts: list[Verdict]) -> pd.DataFrame:
    """One row per claim: its verdict, the verdict on each runtime where they differ, the evidence in
    one sentence, and the runtime (and how its numbers were obtained)."""
    return pd.DataFrame([{"claim": v.claim_id, "statement": v.claim, "verdict": v.verdict,
                          "per runtime": per_runtime_text(v) or "–",
                          "our measurement": v.measurement_text,
                          "at the write-up's setting": v.claim_setting or "–",
                          "runtime": v.runtime or "–"} for v in verdicts])


def save_summary(verdicts: list[Verdict], results_dir, profile: str = "") -> Path:
    """Write ``<results_dir>/audit/verdicts.parquet`` (with provenance) atomically; return its path."""
    from ..provenance import atomic_path, provenance
    path = Path(results_dir) / "audit" / "verdicts.parquet"
    frame = summary(verdicts).assign(**provenance(profile=profile))
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return path


STATUS_COLUMNS = ("status", "chunked, weights in RAM", "chunked, weights streamed from flash")


def readable(evidence: pd.DataFrame) -> pd.DataFrame:
    """An evidence table as a reader sees it: true/false as "yes"/"no", how a speed was obtained in words
    (``tables.speed_kind``), run statuses without underscores; the numbers are left as they are."""
    out = evidence.copy()
    out.columns.name = None
    for col in out.columns:
        values = out[col].dropna()
        if len(values) and values.map(is_bool).all():
            out[col] = out[col].map(lambda x: "–" if x is None or x != x else yes_no(x))
        elif col == "speed_source":   # a pair of runs may list two kinds, "a, b"
            out[col] = out[col].map(lambda k: ", ".join(an.speed_kind(p) for p in str(k).split(", "))
                                    if isinstance(k, str) else an.speed_kind(k))
        elif col == "factor":
            out[col] = out[col].map(lambda f: FACTOR_NAMES.get(f, f))
        elif col in STATUS_COLUMNS:
            out[col] = out[col].map(lambda x: x.replace("_", " ") if isinstance(x, str) else x)
    return out


def counts(verdicts: list[Verdict]) -> dict[str, int]:
    """How many claims got each verdict (every kind present, zero included)."""
    return {kind: sum(v.verdict == kind for v in verdicts) for kind in VERDICTS}
