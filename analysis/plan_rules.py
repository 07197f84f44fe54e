"""The plan's participant-level rules (exclusions, per-protocol sets) and attrition by arm.

Rules are the declarative ones of `analysis.prereg_schema`; each keeps or drops whole
participants, never single rows (rows with a missing outcome are the model's business).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import pandas as pd

from .prereg_schema import CompletedOccasion, MinCompleted, MinObserved, MinUsage


def meets(data: pd.DataFrame, rule) -> pd.Series:
    """Whether each participant of `data` meets `rule` (a boolean Series by participant)."""
    participants = pd.Index(data["participant"].unique())
    if isinstance(rule, CompletedOccasion):
        done = data.loc[(data["occasion"] == rule.occasion) & data["completed"], "participant"]
        return pd.Series(participants.isin(done), index=participants)
    if isinstance(rule, MinCompleted):
        rows = data if rule.occasions is None else data[data["occasion"].isin(rule.occasions)]
        count = rows.groupby("participant")["completed"].sum()
        return count.reindex(participants, fill_value=0) >= rule.min
    if isinstance(rule, MinObserved):
        count = data.groupby("participant")[rule.variable].count()
        return count.reindex(participants, fill_value=0) >= rule.min
    if isinstance(rule, MinUsage):
        total = data.groupby("participant")[rule.variable].sum(min_count=1).fillna(0)
        ok = total.reindex(participants, fill_value=0) >= rule.min
        if rule.arms:
            arm = data.groupby("participant")["arm"].first().reindex(participants)
            ok |= ~arm.isin(rule.arms)
        return ok
    raise TypeError(f"not a participant rule: {rule!r}")


def apply_rules(
    data: pd.DataFrame, rules: Iterable, describe: Callable[[object], str]
) -> tuple[pd.DataFrame, list[dict]]:
    """The rows of participants meeting every rule, and for each rule, in order, how many
    participants it excluded (of those the earlier rules kept), overall and by arm."""
    kept = data
    report = []
    for rule in rules:
        ok = meets(kept, rule)
        dropped = ok.index[~ok.to_numpy()]
        arms = kept[kept["participant"].isin(dropped)].groupby("participant")["arm"].first()
        report.append(
            {
                "rule": rule.rule,
                "description": describe(rule),
                "excluded": len(dropped),
                "excluded_by_arm": {str(k): int(v) for k, v in arms.value_counts().items()},
            }
        )
        kept = kept[~kept["participant"].isin(dropped)]
    return kept, report


def attrition_by_arm(
    data: pd.DataFrame, arm: str = "arm", occasions: Sequence[str] | None = None
) -> list[dict]:
    """Per arm: participants, withdrawals, and for each occasion (of `occasions` when given),
    in schedule order, how many participants it was due for, how many completed it and the
    rate; `retained` completed the last of them."""
    rows = data if occasions is None else data[data["occasion"].isin(occasions)]
    order = rows.groupby(["occasion", "wave"])["days"].median().sort_values().index
    result = []
    for level, group in data.groupby(arm, sort=True):
        participants = group["participant"].nunique()
        withdrawn = (
            int(group.groupby("participant")["withdrawn"].any().sum())
            if "withdrawn" in group
            else None
        )
        # An occasion still "scheduled" is not due yet: it counts neither way.
        mine = rows[rows[arm] == level]
        if "status" in mine:
            mine = mine[mine["status"] != "scheduled"]
        completed = mine.groupby(["occasion", "wave"])["completed"].sum()
        due = mine.groupby(["occasion", "wave"])["participant"].nunique()
        by_occasion = []
        for key in order:
            n_due, n_done = int(due.get(key, 0)), int(completed.get(key, 0))
            by_occasion.append(
                {
                    "occasion": key[0],
                    "wave": int(key[1]),
                    "due": n_due,
                    "completed": n_done,
                    "rate": n_done / n_due if n_due else float("nan"),
                }
            )
        result.append(
            {
                "arm": str(level),
                "participants": int(participants),
                "withdrawn": withdrawn,
                "retained": by_occasion[-1]["completed"] if by_occasion else 0,
                "by_occasion": by_occasion,
            }
        )
    return result
