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
    own), or, where that tier's run is not quantised, the base-tier run's cost. ``cost_tier`` records
    which tier's run the cost came from and ``bpc_of`` says it in words. A table with no costs
    (``bpc_delta``) gives the scheme's own bpc."""
    shifted = "bpc_delta" in quant.columns
    col = "bpc_delta" if shifted else "val_bpc"
    cost = {(v, s, t): float(x) for v, s, t, x in zip(quant["variant_id"], quant["scheme"], quant_tier(quant),
                                                       quant[col]) if pd.notna(x)}
    tiers = (points["study_tier"].fillna("base") if "study_tier" in points.columns
             else pd.Series("base", index=points.index, dtype=object))
    schemes = points["scheme"].map(lambda s: QUANT_SCHEME_OF_DEVICE.get(s, s))
    own = pd.Series([cost.get(k) for k in zip(points["variant_id"], schemes, tiers)], index=points.index, dtype=float)
    base = pd.Series([cost.get((v, s, "base")) for v, s in zip(points["variant_id"], schemes)], index=points.index,
                     dtype=float)
    q = own.fillna(base)
    has = q.notna()
    points["cost_tier"] = tiers.where(own.notna(), "base").where(has)
    # the cost measured on the configuration's other quantised run (base <-> long), where there are two: how
    # far one run's cost can be from another's, for a comparison that rests on it (pareto.vs_runner_up)
    other = pd.Series([cost.get((v, s, "long" if t == "base" else "base")) if t in ("base", "long") else None
                       for v, s, t in zip(points["variant_id"], schemes, points["cost_tier"])],
                      index=points.index, dtype=float)
    points["cost_other_run"] = other.where(has & other.notna())
    points.loc[has, "bpc"] = points.loc[has, "val_bpc"] + q[has] if shifted else q[has]
    for i in points.index[has]:
        tier = tiers[i]
        if not shifted:
            what = ""
        elif tier == "base":
            what = ": float score + chapter 5's measured cost (whole split, one seed)"
        elif points.at[i, "cost_tier"] == tier:
            what = f": {tier}-tier float score + the cost measured on its {tier}-tier run (whole split, one seed)"
        else:
            what = (f": {tier}-tier float score + chapter 5's cost, measured on the base-tier run (its {tier}-tier"
                    " run is not quantised)")
        points.at[i, "bpc_of"] = f"{points.at[i, 'scheme']} model{what}"


def _names(rows: pd.DataFrame, most: int = 12) -> str:
    names = sorted(rows["variant_id"].astype(str))
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def quant_cost_sources(points: pd.DataFrame) -> str:
    """Where the quantised points' costs come from, in words: 'on their own long-tier run for 9
    configurations, on the base-tier run chapter 05 quantised for 40 configurations (width-d4: its score comes
    from the long tier, whose run chapter 05 could not quantise or has not quantised)'. Counted over the int8
    points (a float32 run costs nothing to quantise), naming the configurations with no measured cost yet."""
    if points.empty or "cost_tier" not in points or "config_hash" not in points:
        return "no quantised model"
    int8 = points[points["scheme"].eq("int8")] if "scheme" in points else points
    per = int8[int8["cost_tier"].notna()].drop_duplicates("config_hash")
    none = int8[int8["cost_tier"].isna()].drop_duplicates("config_hash")
    scored = (per["study_tier"].fillna("base") if "study_tier" in per.columns
              else pd.Series("base", index=per.index, dtype=object))
    own_long = int(((scored != "base") & (per["cost_tier"] == scored)).sum())
    lent = per[(scored != "base") & (per["cost_tier"] == "base")]
    base = int((scored == "base").sum())
    parts = []
    if own_long:
        parts.append(f"on their own long-tier run for {plural(own_long, 'configuration')}")
    if base or len(lent):
        why = (f" ({_names(lent)}: {'its' if len(lent) == 1 else 'their'} score comes from the long tier, whose run "
               "chapter 05 could not quantise or has not quantised)" if len(lent) else "")
        parts.append(f"on the base-tier run chapter 05 quantised for {plural(base + len(lent), 'configuration')}"
                     f"{why}")
    if len(none):
        parts.append(f"and on no run yet for {plural(len(none), 'configuration')} ({_names(none)}: their int8 points "
                     "carry the float score)")
    return ", ".join(parts) if parts else "no quantised model"
