"""The summaries a study report shows, as tables and plotly figures.

Each `*_table` function is plain pandas over the analysis data contract (one row per
participant x occasion); each `*_figure` function draws that table with plotly. The HTML report
embeds the figures, the PDF redraws the same tables with matplotlib (`analysis.report_pdf`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import patsy
import plotly.colors
import plotly.graph_objects as go
from scipy import stats

from instruments.psychometrics import reliability_by_wave

from .preregistration import formula_variables

PALETTE = plotly.colors.qualitative.Plotly
CONSORT_STAGES = (
    ("allocated", "Allocated"),
    ("baseline", "Completed baseline"),
    ("withdrew", "Withdrew"),
    ("lost", "Lost to follow-up"),
    ("final", "Completed the last occasion"),
    ("analysed", "Analysed (primary model)"),
)


def occasion_label(frame: pd.DataFrame) -> pd.Series:
    """`weekly 3`, `baseline`: the schedule key, with the wave where the key repeats."""
    repeats = frame.groupby("occasion")["wave"].transform("nunique") > 1
    return frame["occasion"].where(~repeats, frame["occasion"] + " " + frame["wave"].astype(str))


def occasion_order(frame: pd.DataFrame) -> list[str]:
    """Occasion labels in schedule order (by mean days since enrollment)."""
    labels = frame.assign(label=occasion_label(frame))
    return list(labels.groupby("label")["days"].mean().sort_values().index)


def trajectory_table(data: pd.DataFrame, outcome: str, confidence: float = 0.95) -> pd.DataFrame:
    """Mean of `outcome` per arm and occasion with a t-based confidence interval."""
    rows = data[data[outcome].notna()].assign(label=occasion_label(data))
    grouped = rows.groupby(["arm", "label"])
    table = grouped.agg(
        week=("week", "mean"), mean=(outcome, "mean"), sd=(outcome, "std"), n=(outcome, "size")
    ).reset_index()
    half = stats.t.ppf(0.5 + confidence / 2, np.maximum(table["n"] - 1, 1)) * table["sd"]
    half = half / np.sqrt(table["n"])
    table["ci_lower"], table["ci_upper"] = table["mean"] - half, table["mean"] + half
    return table.sort_values(["arm", "week"]).reset_index(drop=True)


def fitted_trajectory_table(model, arm_variable: str = "arm", points: int = 25) -> pd.DataFrame:
    """The primary model's mean trajectory per arm: the fixed-effects prediction at each week,
    averaged over the rows the model used (so covariates such as strata keep their observed
    mix). Empty when the model could not be fitted."""
    if model.fit is None or model.rows.empty:
        return pd.DataFrame(columns=["arm", "week", "fitted"])
    beta = model.fit.fixed["estimate"]
    rows = model.rows
    _, used = formula_variables(model.formula)
    others = sorted(used - {arm_variable, "week"})
    # Each distinct mix of the other variables once, weighted by how often it occurs.
    mix = (
        rows.groupby(others, observed=True).size().rename("weight").reset_index()
        if others
        else (pd.DataFrame({"weight": [len(rows)]}))
    )
    levels = list(rows[arm_variable].cat.categories)
    grid = mix.merge(pd.DataFrame({arm_variable: levels}), how="cross").merge(
        pd.DataFrame({"week": np.linspace(0, rows["week"].max(), points)}), how="cross"
    )
    grid[arm_variable] = pd.Categorical(grid[arm_variable], categories=levels)
    design = patsy.dmatrix(model.formula.split("~", 1)[1], grid, return_type="dataframe")
    grid["fitted"] = design[beta.index].to_numpy() @ beta.to_numpy()
    grid["weighted"] = grid["fitted"] * grid["weight"]
    sums = grid.groupby([arm_variable, "week"], observed=True)[["weighted", "weight"]].sum()
    table = (sums["weighted"] / sums["weight"]).rename("fitted").reset_index()
    return table.rename(columns={arm_variable: "arm"})


def trajectory_figure(
    table: pd.DataFrame, outcome: str, fitted: pd.DataFrame | None = None
) -> go.Figure:
    """Observed means with CIs per arm, and the model's fitted trajectories (dashed)."""
    figure = go.Figure()
    fitted = fitted if fitted is not None else pd.DataFrame(columns=["arm", "week", "fitted"])
    arms = list(dict.fromkeys([*table["arm"], *fitted["arm"]]))
    colour = {arm: PALETTE[i % len(PALETTE)] for i, arm in enumerate(arms)}
    for arm, rows in fitted.groupby("arm", sort=False):
        figure.add_trace(
            go.Scatter(
                x=rows["week"],
                y=rows["fitted"],
                mode="lines",
                line={"dash": "dash", "color": colour[arm]},
                name=f"{arm} (model)",
            )
        )
    for arm, rows in table.groupby("arm", sort=False):
        figure.add_trace(
            go.Scatter(
                x=rows["week"],
                y=rows["mean"],
                mode="lines+markers",
                name=str(arm),
                line={"color": colour[arm]},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": rows["ci_upper"] - rows["mean"],
                    "arrayminus": rows["mean"] - rows["ci_lower"],
                },
                customdata=rows[["label", "n"]],
                hovertemplate="%{customdata[0]}: %{y:.2f} (n=%{customdata[1]})<extra></extra>",
            )
        )
    figure.update_layout(
        title=f"{outcome} by arm: observed means with 95% CIs; dashed, the primary model",
        xaxis_title="weeks since enrollment",
        yaxis_title=outcome,
    )
    return figure


def consort_table(data: pd.DataFrame, analysed: pd.Series | None = None) -> pd.DataFrame:
    """Participants per arm at each CONSORT stage.

    Withdrew: has a cancelled occasion. Lost to follow-up: did not withdraw and missed the last
    scheduled occasion. `analysed` gives the participants the primary model used.
    """
    last_label = occasion_order(data)[-1]
    labelled = data.assign(label=occasion_label(data))
    per = labelled.groupby("participant").agg(
        arm=("arm", "first"),
        withdrew=("status", lambda s: (s == "cancelled").any()),
    )
    baseline = labelled[labelled["occasion"] == "baseline"].groupby("participant")["completed"]
    per["baseline"] = baseline.any().reindex(per.index, fill_value=False)
    final = labelled[labelled["label"] == last_label].groupby("participant")["completed"].any()
    per["final"] = final.reindex(per.index, fill_value=False)
    per["lost"] = ~per["withdrew"] & ~per["final"]
    per["allocated"] = True
    per["analysed"] = per.index.isin(analysed) if analysed is not None else False
    counts = per.groupby("arm")[[key for key, _ in CONSORT_STAGES]].sum().astype(int)
    counts.columns = [label for _, label in CONSORT_STAGES]
    return counts.T


def consort_figure(table: pd.DataFrame) -> go.Figure:
    """A CONSORT-style flow: one column of boxes per arm, one row per stage."""
    figure = go.Figure()
    arms, stages = list(table.columns), list(table.index)
    for column, arm in enumerate(arms):
        for row, stage in enumerate(stages):
            x0, y0 = column * 1.1, -row * 1.0
            figure.add_shape(
                type="rect", x0=x0, x1=x0 + 1, y0=y0 - 0.8, y1=y0, line={"color": "#444"}
            )
            figure.add_annotation(
                x=x0 + 0.5,
                y=y0 - 0.4,
                text=f"{stage}<br><b>n = {table.loc[stage, arm]}</b>",
                showarrow=False,
            )
        figure.add_annotation(x=column * 1.1 + 0.5, y=0.25, text=f"<b>{arm}</b>", showarrow=False)
    figure.update_xaxes(visible=False, range=[-0.1, len(arms) * 1.1])
    figure.update_yaxes(visible=False, range=[-len(stages) * 1.0, 0.5])
    figure.update_layout(title="CONSORT flow", height=120 + 90 * len(stages), showlegend=False)
    return figure


def compliance_table(data: pd.DataFrame) -> pd.DataFrame:
    """Share of occasions completed per occasion (in schedule order) and arm."""
    labelled = data.assign(label=occasion_label(data))
    table = labelled.pivot_table(index="label", columns="arm", values="completed", aggfunc="mean")
    return table.reindex(occasion_order(data))


def compliance_figure(table: pd.DataFrame) -> go.Figure:
    figure = go.Figure()
    for arm in table.columns:
        figure.add_trace(
            go.Scatter(x=list(table.index), y=table[arm], mode="lines+markers", name=str(arm))
        )
    figure.update_layout(
        title="Compliance: share of occasions completed, by wave and arm",
        yaxis={"title": "completed", "range": [0, 1.02], "tickformat": ".0%"},
    )
    return figure


def reliability_table(data: pd.DataFrame, instruments) -> pd.DataFrame:
    """Cronbach's alpha and McDonald's omega of each score, per occasion, for every instrument
    whose item responses are columns of `data` (named by item id). Empty when none are."""
    labelled = data.assign(label=occasion_label(data))
    frames = []
    for instrument in instruments:
        items = [item.id for item in instrument.items]
        if not set(items) <= set(data.columns):
            continue
        rows = labelled[labelled[items].notna().any(axis=1)]
        if rows.empty:
            continue
        table = reliability_by_wave(rows, instrument, subject="participant", wave="label")
        table = table[table["statistic"].isin(["alpha", "omega"])]
        frames.append(table.assign(instrument=instrument.id))
    if not frames:
        return pd.DataFrame(columns=["instrument", "wave", "score", "statistic", "value"])
    return pd.concat(frames, ignore_index=True)


def reliability_figure(table: pd.DataFrame, order: list[str]) -> go.Figure:
    figure = go.Figure()
    for (instrument, score, statistic), rows in table.groupby(
        ["instrument", "score", "statistic"], sort=False
    ):
        rows = rows.set_index("wave").reindex([w for w in order if w in set(rows["wave"])])
        error = None
        if rows["ci_low"].notna().any():
            error = {
                "type": "data",
                "symmetric": False,
                "array": rows["ci_high"] - rows["value"],
                "arrayminus": rows["value"] - rows["ci_low"],
            }
        figure.add_trace(
            go.Scatter(
                x=list(rows.index),
                y=rows["value"],
                error_y=error,
                mode="lines+markers",
                name=f"{instrument} {score} {statistic}",
            )
        )
    figure.update_layout(title="Reliability per wave", yaxis={"title": "coefficient"})
    # Instruments asked at different occasions: keep the axis in schedule order.
    figure.update_xaxes(categoryorder="array", categoryarray=order)
    return figure
