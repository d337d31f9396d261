"""The delivery view: on-time rate, days to deliver by state, and late orders against review score."""

from __future__ import annotations

import dash
import plotly.graph_objects as go
from dash import Output, html

from pipeline.serving.dashboard import warehouse as q
from pipeline.serving.dashboard.components import (
    BLUE,
    PALETTE,
    count,
    empty_figure,
    kpi,
    panel,
    percent,
    slicer_inputs,
    styled,
    warehouse,
)

GRAPHS = ("g-days-state", "g-ontime-month", "g-late-review")


def layout(**_query) -> html.Div:
    return html.Div([
        html.Div(id="delivery-notice", className="notice"),
        html.Div([kpi("On-time rate", "kpi-ontime"), kpi("Delivered orders", "kpi-delivered"),
                  kpi("Late orders", "kpi-late"), kpi("Mean days to deliver", "kpi-days")], className="kpis"),
        html.Div([
            panel("Mean days to deliver by customer state (bar colour: on-time rate)", "g-days-state", 560),
            panel("On-time rate by purchase month", "g-ontime-month", 280),
            panel("Review score of delivered orders: on time against late (share of each group)",
                  "g-late-review", 280),
        ], className="grid"),
    ])


def days_figure(rows: list[dict]) -> go.Figure:
    if not rows:
        return empty_figure("no delivered orders for these filters")
    fig = go.Figure(go.Bar(
        x=[float(r["avg_days"]) for r in rows], y=[r["state"] for r in rows], orientation="h",
        marker={"color": [float(r["on_time_rate"]) for r in rows], "colorscale": [[0, "#d9534f"], [1, BLUE]],
                "cmin": 0.5, "cmax": 1.0, "colorbar": {"title": "on time", "tickformat": ".0%", "thickness": 10}},
        text=[f"{float(r['avg_days']):.1f} d" for r in rows], textposition="auto",
        customdata=[[float(r["on_time_rate"]), r["delivered"]] for r in rows],
        hovertemplate="%{y}: %{x:.1f} days, on time %{customdata[0]:.1%} of %{customdata[1]} orders<extra></extra>"))
    fig.update_yaxes(autorange="reversed", automargin=True)
    return styled(fig)


def month_figure(rows: list[dict]) -> go.Figure:
    if not rows:
        return empty_figure("no delivered orders for these filters")
    fig = go.Figure(go.Scatter(
        x=[f"{r['purchase_year']}-{r['purchase_month']:02d}" for r in rows], y=[float(r["on_time_rate"]) for r in rows],
        mode="lines+markers", line={"color": BLUE}, customdata=[r["delivered"] for r in rows],
        hovertemplate="%{x}: %{y:.1%} of %{customdata} orders<extra></extra>"))
    fig.update_xaxes(type="category")
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return styled(fig)


def review_figure(rows: list[dict]) -> go.Figure:
    if not rows:
        return empty_figure("no reviewed deliveries for these filters")
    on_time, late = sum(r["on_time"] for r in rows) or 1, sum(r["late"] for r in rows) or 1
    scores = [str(r["review_score"]) for r in rows]
    fig = go.Figure([
        go.Bar(x=scores, y=[r["on_time"] / on_time for r in rows], name="on time", marker_color=PALETTE[2],
               customdata=[r["on_time"] for r in rows], hovertemplate="score %{x}: %{y:.1%} (%{customdata})"),
        go.Bar(x=scores, y=[r["late"] / late for r in rows], name="late", marker_color="#d9534f",
               customdata=[r["late"] for r in rows], hovertemplate="score %{x}: %{y:.1%} (%{customdata})"),
    ])
    fig.update_xaxes(title="review score", type="category")
    fig.update_yaxes(tickformat=".0%")
    return styled(fig, showlegend=True, barmode="group", legend={"orientation": "h", "y": 1.12, "x": 0})


@dash.callback(Output("delivery-notice", "children"),
               *[Output(k, "children") for k in ("kpi-ontime", "kpi-delivered", "kpi-late", "kpi-days")],
               *[Output(g, "figure") for g in GRAPHS], *slicer_inputs())
def update(*slicers):
    f = q.Filters.of(*slicers)
    try:
        wh = warehouse()
        k = q.delivery_kpis(wh, f)
        states, months, reviews = q.delivery_by_state(wh, f), q.delivery_by_month(wh, f), q.late_vs_review(wh, f)
    except q.WarehouseUnavailable as exc:
        return (str(exc), *["–"] * 4, *[empty_figure("no warehouse yet")] * len(GRAPHS))
    days = "–" if k["avg_days"] is None else f"{float(k['avg_days']):.1f}"
    return ("", percent(k["on_time_rate"]), count(k["delivered"]), count(k["late"]), days,
            days_figure(states), month_figure(months), review_figure(reviews))
