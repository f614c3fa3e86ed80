"""Chapter 07's int8 scores: a quantised device point is its model's float score plus the cost of its
scheme, measured on a run of the tier that scored the model (chapter 05 quantises the base tier and the
long tier's kept runs)."""
from __future__ import annotations

import pandas as pd

from ..numbers import plural

QUANT_SCHEME_OF_DEVICE = {"int8": "int8_engine", "float32": "float32"}   # a device run's scheme -> chapter 05's


def quant_tier(quant: pd.DataFrame) -> pd.Series:
    """The Study v2 tier each quantisation row's model came from (rows written before tiers: the base tier)."""
    return (quant["tier"].fillna("base") if "tier" in quant.columns
            else pd.Series("base", index=quant.index, dtype=object))


def apply_quant_cost(points: pd.DataFrame, quant: pd.DataFrame) -> None:
    """A quantised point's bpc: its model's float score plus the scheme's cost measured on a run of the
    tier that scored it (chapter 05 quantises the base tier; the long tier's runs are quantised on their
    own), or, where that tier's run is not quantised, the base-tier run's cost, and ``bpc_of`` says which.
    A table with no costs (``bpc_delta``) gives the scheme's own bpc."""
    shifted = "bpc_delta" in quant.columns
    col = "bpc_delta" if shifted else "val_bpc"
    cost = {(v, s, t): float(x) for v, s, t, x in zip(quant["variant_id"], quant["scheme"], quant_tier(quant),
                                                       quant[col]) if pd.notna(x)}
    tiers = (points["study_tier"].fillna("base") if "study_tier" in points.columns
             else pd.Series("base", index=points.index, dtype=object))
    for i, (vid, scheme, tier) in enumerate(zip(points["variant_id"], points["scheme"], tiers)):
        sch = QUANT_SCHEME_OF_DEVICE.get(scheme, scheme)
        own, base = cost.get((vid, sch, tier)), cost.get((vid, sch, "base"))
        q = own if own is not None else base
        if q is None:
            continue
        idx = points.index[i]
        points.loc[idx, "bpc"] = points.loc[idx, "val_bpc"] + q if shifted else q
        if not shifted:
            what = ""
        elif tier == "base":
            what = ": float score + chapter 5's measured cost (whole split, one seed)"
        elif own is not None:
            what = f": {tier}-tier float score + the cost measured on its {tier}-tier run (whole split, one seed)"
        else:
            what = (f": {tier}-tier float score + chapter 5's cost, measured on the base-tier run (its {tier}-tier"
                    " run is not quantised)")
        points.loc[idx, "bpc_of"] = f"{scheme} model{what}"


def quant_cost_sources(points: pd.DataFrame) -> str:
    """Where the quantised points' costs come from, in words: 'measured on their own long-tier run for 9
    configurations, on the base-tier run for 40 (2 of them long-tier scores whose long run is not quantised)'."""
    if points.empty or "bpc_of" not in points or "config_hash" not in points:
        return "no quantised model"
    of = points.drop_duplicates("config_hash")["bpc_of"].fillna("")
    own_long = int(of.str.contains("the cost measured on its").sum())
    base_for_long = int(of.str.contains("measured on the base-tier run").sum())
    base = int(of.str.contains("chapter 5's measured cost").sum())
    from ..numbers import plural
    parts = []
    if own_long:
        parts.append(f"on their own long-tier run for {plural(own_long, 'configuration')}")
    if base or base_for_long:
        lent = (f" ({base_for_long} of them long-tier scores whose long run is not quantised)"
                if base_for_long else "")
        parts.append(f"on the base-tier run chapter 05 quantised for {plural(base + base_for_long, 'configuration')}"
                     f"{lent}")
    return ", ".join(parts) if parts else "no quantised model"
