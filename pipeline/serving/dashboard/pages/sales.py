"""The sales (BI) view: the seed's Power BI report over the gold marts, every visual filtered by the slicers."""

from __future__ import annotations

import math

import dash
import plotly.graph_objects as go
from dash import Output, html

from pipeline.serving.dashboard import warehouse as q
from pipeline.serving.dashboard.components import (
    BLUE,
    PALETTE,
    count,
    empty_figure,
    hbar,
    kpi,
    money,
    panel,
    slicer_inputs,
    styled,
    warehouse,
)

# Brazil's extent (with a margin): the map's fixed frame.
LON_RANGE, LAT_RANGE = (-75.0, -33.0), (-34.5, 6.0)
GRAPHS = ("g-sales-month", "g-top-sales", "g-top-freight", "g-top-items", "g-freight-state", "g-map",
          "g-freight-weight")


def layout(**_query) -> html.Div:
    return html.Div([
        html.Div(id="sales-notice", className="notice"),
        html.Div([kpi("Orders", "kpi-orders"), kpi("Order items", "kpi-items"), kpi("Products", "kpi-products"),
                  kpi("Total sales", "kpi-sales"), kpi("Total freight", "kpi-freight")], className="kpis"),
        html.Div([
            html.Div(panel("Sales by purchase year and month", "g-sales-month", 300).children, className="panel wide"),
            panel("Top 10 categories by sales", "g-top-sales"),
            panel("Top 10 categories by freight", "g-top-freight"),
            panel("Top 10 categories by order items", "g-top-items"),
            panel("Freight by customer state", "g-freight-state", 520),
            html.Div([*panel("Sales by customer state", "g-map", 520).children,
                      html.Div("Bubbles at each state's centre, sized and coloured by sales; grey dots are the "
                               "zip-code centroids of the warehouse's geolocation (no map tiles).",
                               className="footnote")], className="panel"),
            panel("Freight against product weight (500 g bands, bubble = items)", "g-freight-weight", 520),
        ], className="grid"),
    ])


def month_figure(rows: list[dict]) -> go.Figure:
    if not rows:
        return empty_figure("no sales for these filters")
    fig = go.Figure()
    years = sorted({r["purchase_year"] for r in rows})
    for i, year in enumerate(years):
        mine = [r for r in rows if r["purchase_year"] == year]
        total = sum(float(r["sales"]) for r in mine)
        fig.add_bar(x=[f"{year}-{r['purchase_month']:02d}" for r in mine], y=[float(r["sales"]) for r in mine],
                    name=f"{year}: R$ {total:,.0f}", marker_color=PALETTE[(2 * i) % len(PALETTE)],
                    hovertemplate="%{x}: R$ %{y:,.2f}<extra></extra>")
    fig.update_xaxes(type="category")
    return styled(fig, showlegend=True, legend={"orientation": "h", "y": 1.12, "x": 0}, bargap=0.15)


def map_figure(states: list[dict], points: list[dict]) -> go.Figure:
    fig = go.Figure()
    fig.add_scattergl(x=[p["longitude"] for p in points], y=[p["latitude"] for p in points], mode="markers",
                      marker={"size": 3, "color": "#b9c2d3"}, hoverinfo="skip", name="zip codes")
    placed = [s for s in states if s["latitude"] is not None and float(s["sales"] or 0) > 0]
    if placed:
        top = max(float(s["sales"]) for s in placed)
        fig.add_scatter(
            x=[s["longitude"] for s in placed], y=[s["latitude"] for s in placed], mode="markers+text",
            text=[s["state"] for s in placed], textposition="middle center", textfont={"size": 10, "color": "white"},
            marker={"size": [12 + 48 * math.sqrt(float(s["sales"]) / top) for s in placed],
                    "color": [float(s["sales"]) for s in placed], "colorscale": [[0, "#93b4ec"], [1, BLUE]],
                    "line": {"width": 1, "color": "white"}, "opacity": 0.9},
            customdata=[[money(s["sales"]), count(s["items"])] for s in placed],
            hovertemplate="%{text}: %{customdata[0]} (%{customdata[1]} items)<extra></extra>", name="states")
    fig.update_xaxes(range=LON_RANGE, visible=False)
    fig.update_yaxes(range=LAT_RANGE, visible=False, scaleanchor="x", scaleratio=1)
    return styled(fig, plot_bgcolor="#f5f7fb")


def weight_figure(rows: list[dict]) -> go.Figure:
    if not rows:
        return empty_figure("no items with a weight for these filters")
    top = max(r["items"] for r in rows)
    fig = go.Figure(go.Scatter(
        x=[r["avg_weight_g"] for r in rows], y=[float(r["avg_freight"]) for r in rows], mode="markers",
        marker={"size": [6 + 30 * math.sqrt(r["items"] / top) for r in rows], "color": BLUE, "opacity": 0.6},
        customdata=[[r["weight_band_g"], r["items"], float(r["freight"])] for r in rows],
        hovertemplate="%{customdata[0]:,.0f} g band: mean freight R$ %{y:,.2f}, %{customdata[1]} items, "
                      "total R$ %{customdata[2]:,.2f}<extra></extra>"))
    fig.update_xaxes(title="product weight (g)")
    fig.update_yaxes(title="mean freight (R$)")
    return styled(fig)


@dash.callback(Output("sales-notice", "children"),
               *[Output(k, "children") for k in ("kpi-orders", "kpi-items", "kpi-products", "kpi-sales",
                                                  "kpi-freight")],
               *[Output(g, "figure") for g in GRAPHS],
               *slicer_inputs())
def update(*slicers):
    f = q.Filters.of(*slicers)
    try:
        wh = warehouse()
        k = q.kpis(wh, f)
        months = q.sales_by_month(wh, f)
        tops = {by: q.top_categories(wh, f, by) for by in ("sales", "freight", "items")}
        states = q.by_state(wh, f)
        points = q.zip_centroids(wh)
        weights = q.freight_vs_weight(wh, f)
    except q.WarehouseUnavailable as exc:
        return (str(exc), *["–"] * 5, *[empty_figure("no warehouse yet")] * len(GRAPHS))
    freight_states = sorted(states, key=lambda s: (-float(s["freight"] or 0), s["state"]))
    return (
        "",
        count(k["orders"]), count(k["order_items"]), count(k["products"]), money(k["total_sales"]),
        money(k["total_freight"]),
        month_figure(months),
        hbar([r["product_category"] for r in tops["sales"]], [r["value"] for r in tops["sales"]], prefix="R$ "),
        hbar([r["product_category"] for r in tops["freight"]], [r["value"] for r in tops["freight"]], prefix="R$ "),
        hbar([r["product_category"] for r in tops["items"]], [r["value"] for r in tops["items"]]),
        hbar([s["state"] for s in freight_states], [s["freight"] for s in freight_states], prefix="R$ "),
        map_figure(states, points),
        weight_figure(weights),
    )
