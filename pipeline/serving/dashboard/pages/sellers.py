"""The sellers view: who sells, from where, and how well they deliver and are reviewed."""

from __future__ import annotations

import math

import dash
import plotly.graph_objects as go
from dash import Output, html

from pipeline.serving.dashboard import components as ui
from pipeline.serving.dashboard import warehouse as q

COLUMNS = [("seller", "Seller", False), ("place", "City / state", False), ("orders", "Orders", True),
           ("items", "Items", True), ("sales", "Sales", True), ("review", "Mean review", True),
           ("late", "Late", True)]


def layout(**_query) -> html.Div:
    return html.Div([
        html.Div(id="sellers-notice", className="notice"),
        html.Div([ui.kpi("Active sellers", "kpi-sellers"), ui.kpi("Sales per seller", "kpi-sales-per-seller"),
                  ui.kpi("Top 10 sellers' share of sales", "kpi-top-share")], className="kpis"),
        html.Div([
            html.Div([html.H3("Top 15 sellers by sales"), html.Div(id="sellers-table")], className="panel wide"),
            ui.panel("Sales by seller state", "g-seller-state", 420),
            ui.panel("Sellers: sales against mean review score (bubble = orders, colour = late rate)",
                  "g-seller-quality", 420),
        ], className="grid"),
    ])


def quality_figure(rows: list[dict]) -> go.Figure:
    rows = [r for r in rows if r["avg_review_score"] is not None]
    if not rows:
        return ui.empty_figure("no reviewed sellers for these filters")
    top = max(r["orders"] for r in rows)
    fig = go.Figure(go.Scatter(
        x=[float(r["sales"]) for r in rows], y=[float(r["avg_review_score"]) for r in rows], mode="markers",
        marker={"size": [6 + 26 * math.sqrt(r["orders"] / top) for r in rows],
                "color": [float(r["late_rate"] or 0) for r in rows], "colorscale": [[0, ui.BLUE], [1, "#d9534f"]],
                "cmin": 0, "cmax": 0.3, "opacity": 0.7,
                "colorbar": {"title": "late", "tickformat": ".0%", "thickness": 10}},
        customdata=[[r["seller_id"][:8], f"{r['seller_city']}/{r['seller_state']}", r["orders"]] for r in rows],
        hovertemplate="%{customdata[0]}… (%{customdata[1]}): R$ %{x:,.2f}, review %{y:.2f}, "
                      "%{customdata[2]} orders<extra></extra>"))
    fig.update_xaxes(title="sales (R$, log)", type="log")
    fig.update_yaxes(title="mean review score", range=[0.8, 5.2])
    return ui.styled(fig)


@dash.callback(Output("sellers-notice", "children"), Output("kpi-sellers", "children"),
               Output("kpi-sales-per-seller", "children"), Output("kpi-top-share", "children"),
               Output("sellers-table", "children"), Output("g-seller-state", "figure"),
               Output("g-seller-quality", "figure"), *ui.slicer_inputs())
def update(*slicers):
    f = q.Filters.of(*slicers)
    try:
        wh = ui.warehouse()
        sellers = q.seller_stats(wh, f, n=None)
        states = q.sellers_by_state(wh, f)
    except q.WarehouseUnavailable as exc:
        return str(exc), "–", "–", "–", "", ui.empty_figure("no warehouse yet"), ui.empty_figure("no warehouse yet")
    total = sum(float(r["sales"]) for r in sellers)
    top_share = sum(float(r["sales"]) for r in sellers[:10]) / total if total else None
    rows = [{"seller": r["seller_id"][:12] + "…", "place": f"{r['seller_city']} / {r['seller_state']}",
             "orders": ui.count(r["orders"]), "items": ui.count(r["items"]), "sales": ui.money(r["sales"]),
             "review": "–" if r["avg_review_score"] is None else f"{float(r['avg_review_score']):.2f}",
             "late": ui.percent(r["late_rate"])} for r in sellers[:15]]
    return ("", ui.count(len(sellers)), ui.money(total / len(sellers) if sellers else 0), ui.percent(top_share),
            ui.table(COLUMNS, rows, "sellers-top"),
            ui.hbar([s["state"] for s in states], [s["sales"] for s in states], prefix="R$ "),
            quality_figure(sellers))
