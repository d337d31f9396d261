"""The sellers view: who sells, from where, and how well they deliver and are reviewed."""

from __future__ import annotations

import math

import dash
import plotly.graph_objects as go
from dash import Output, html

from pipeline.serving.dashboard import warehouse as q
from pipeline.serving.dashboard.components import (
    BLUE,
    count,
    empty_figure,
    hbar,
    kpi,
    money,
    panel,
    percent,
    slicer_inputs,
    styled,
    table,
    warehouse,
)

COLUMNS = [("seller", "Seller", False), ("place", "City / state", False), ("orders", "Orders", True),
           ("items", "Items", True), ("sales", "Sales", True), ("review", "Mean review", True),
           ("late", "Late", True)]


def layout(**_query) -> html.Div:
    return html.Div([
        html.Div(id="sellers-notice", className="notice"),
        html.Div([kpi("Active sellers", "kpi-sellers"), kpi("Sales per seller", "kpi-sales-per-seller"),
                  kpi("Top 10 sellers' share of sales", "kpi-top-share")], className="kpis"),
        html.Div([
            html.Div([html.H3("Top 15 sellers by sales"), html.Div(id="sellers-table")], className="panel wide"),
            panel("Sales by seller state", "g-seller-state", 420),
            panel("Sellers: sales against mean review score (bubble = orders, colour = late rate)",
                  "g-seller-quality", 420),
        ], className="grid"),
    ])


def quality_figure(rows: list[dict]) -> go.Figure:
    rows = [r for r in rows if r["avg_review_score"] is not None]
    if not rows:
        return empty_figure("no reviewed sellers for these filters")
    top = max(r["orders"] for r in rows)
    fig = go.Figure(go.Scatter(
        x=[float(r["sales"]) for r in rows], y=[float(r["avg_review_score"]) for r in rows], mode="markers",
        marker={"size": [6 + 26 * math.sqrt(r["orders"] / top) for r in rows],
                "color": [float(r["late_rate"] or 0) for r in rows], "colorscale": [[0, BLUE], [1, "#d9534f"]],
                "cmin": 0, "cmax": 0.3, "opacity": 0.7,
                "colorbar": {"title": "late", "tickformat": ".0%", "thickness": 10}},
        customdata=[[r["seller_id"][:8], f"{r['seller_city']}/{r['seller_state']}", r["orders"]] for r in rows],
        hovertemplate="%{customdata[0]}… (%{customdata[1]}): R$ %{x:,.2f}, review %{y:.2f}, "
                      "%{customdata[2]} orders<extra></extra>"))
    fig.update_xaxes(title="sales (R$, log)", type="log")
    fig.update_yaxes(title="mean review score", range=[0.8, 5.2])
    return styled(fig)


@dash.callback(Output("sellers-notice", "children"), Output("kpi-sellers", "children"),
               Output("kpi-sales-per-seller", "children"), Output("kpi-top-share", "children"),
               Output("sellers-table", "children"), Output("g-seller-state", "figure"),
               Output("g-seller-quality", "figure"), *slicer_inputs())
def update(*slicers):
    f = q.Filters.of(*slicers)
    try:
        wh = warehouse()
        sellers = q.seller_stats(wh, f, n=None)
        states = q.sellers_by_state(wh, f)
    except q.WarehouseUnavailable as exc:
        return str(exc), "–", "–", "–", "", empty_figure("no warehouse yet"), empty_figure("no warehouse yet")
    total = sum(float(r["sales"]) for r in sellers)
    top_share = sum(float(r["sales"]) for r in sellers[:10]) / total if total else None
    rows = [{"seller": r["seller_id"][:12] + "…", "place": f"{r['seller_city']} / {r['seller_state']}",
             "orders": count(r["orders"]), "items": count(r["items"]), "sales": money(r["sales"]),
             "review": "–" if r["avg_review_score"] is None else f"{float(r['avg_review_score']):.2f}",
             "late": percent(r["late_rate"])} for r in sellers[:15]]
    return ("", count(len(sellers)), money(total / len(sellers) if sellers else 0), percent(top_share),
            table(COLUMNS, rows, "sellers-top"),
            hbar([s["state"] for s in states], [s["sales"] for s in states], prefix="R$ "),
            quality_figure(sellers))
