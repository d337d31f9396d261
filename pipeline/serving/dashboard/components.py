"""What every page shares: the data sources the app was built with, number formats, cards and figure style."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go
from dash import Input, dcc, html

from pipeline.serving.dashboard.warehouse import Warehouse
from pipeline.serving.live import LiveData, LiveSource

BLUE = "#1f3a93"
PALETTE = ["#1f3a93", "#2c5cc5", "#4a7bd9", "#6d97e3", "#93b4ec", "#b6cdf3", "#d3e1f8"]
GRAPH_CONFIG = {"displaylogo": False, "responsive": True}
SLICERS = (("f-state", "State"), ("f-city", "City"), ("f-year", "Purchase year"), ("f-month", "Purchase month"),
           ("f-period", "Period of day"))


def slicer_inputs() -> list[Input]:
    """The sidebar's slicers, in the order :meth:`Filters.of` takes them."""
    return [Input(slicer_id, "value") for slicer_id, _ in SLICERS]


@dataclass
class Sources:
    warehouse: Warehouse | None = None
    live: LiveSource | None = None


SOURCES = Sources()  # set by create_app; read by the pages' callbacks


def warehouse() -> Warehouse:
    if SOURCES.warehouse is None:
        raise RuntimeError("the dashboard has no warehouse configured")
    return SOURCES.warehouse


def live() -> LiveData:
    return SOURCES.live() if SOURCES.live else LiveData(error="no live source configured")


def count(value: Any) -> str:
    return f"{int(value or 0):,}"


def money(value: Any) -> str:
    return f"R$ {Decimal(str(value or 0)):,.2f}"


def percent(value: Any) -> str:
    return "–" if value is None else f"{float(value):.1%}"


def kpi(label: str, value_id: str, value: str = "–") -> html.Div:
    return html.Div([html.Div(label, className="kpi-label"), html.Div(value, id=value_id, className="kpi-value")],
                    className="kpi")


def panel(title: str, graph_id: str, height: int = 320, **graph: Any) -> html.Div:
    return html.Div([html.H3(title), dcc.Graph(id=graph_id, config=GRAPH_CONFIG, style={"height": f"{height}px"},
                                               figure=empty_figure(), **graph)], className="panel")


def styled(fig: go.Figure, **layout: Any) -> go.Figure:
    layout = {"showlegend": False, **layout}
    fig.update_layout(template="plotly_white", margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      font={"family": "system-ui, sans-serif", "size": 12}, **layout)
    return fig


def empty_figure(message: str = "") -> go.Figure:
    fig = go.Figure()
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    if message:
        fig.add_annotation(text=message, showarrow=False, font={"size": 14, "color": "#666"})
    return styled(fig)


def hbar(labels: list[str], values: list[Any], fmt: str = ",.0f", prefix: str = "") -> go.Figure:
    """A horizontal bar chart, largest on top, each bar labelled with its value."""
    if not labels:
        return empty_figure("no data for these filters")
    values = [float(v or 0) for v in values]
    top = max(values) or 1
    colours = [PALETTE[min(int((1 - v / top) * (len(PALETTE) - 1)), len(PALETTE) - 1)] for v in values]
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h", marker_color=colours,
                           text=[f"{prefix}{v:{fmt}}" for v in values], textposition="outside", cliponaxis=False,
                           hovertemplate=f"%{{y}}: {prefix}%{{x:{fmt}}}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(range=[0, top * 1.2])
    return styled(fig)


CSS = """
* { box-sizing: border-box; }
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: #eef1f6;
       color: #1d2433; }
.topbar { display: flex; align-items: center; gap: 24px; padding: 10px 20px; background: #1f3a93; color: white; }
.topbar h1 { font-size: 20px; margin: 0; font-weight: 600; }
.topbar a { color: #dfe7fb; text-decoration: none; padding: 6px 10px; border-radius: 4px; font-size: 14px; }
.topbar a.active, .topbar a:hover { background: rgba(255,255,255,.18); color: white; }
.body { display: flex; align-items: flex-start; }
.sidebar { width: 200px; flex: none; padding: 16px; position: sticky; top: 0; }
.sidebar.hidden { display: none; }
.slicer { background: white; border-radius: 8px; padding: 10px; margin-bottom: 12px; box-shadow: 0 1px 3px #0002; }
.slicer label { display: block; font-size: 12px; font-weight: 600; text-transform: uppercase; margin-bottom: 6px;
                color: #44506a; }
.content { flex: 1; min-width: 0; padding: 16px; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; margin-bottom: 12px; }
.kpi { background: white; border-radius: 8px; padding: 12px 16px; box-shadow: 0 1px 3px #0002; }
.kpi-label { font-size: 13px; font-weight: 600; color: #44506a; }
.kpi-value { font-size: clamp(16px, 1.6vw, 26px); font-weight: 600; color: #1f3a93; margin-top: 4px;
             white-space: nowrap; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 12px; }
.panel { background: white; border-radius: 8px; padding: 10px 12px; box-shadow: 0 1px 3px #0002; min-width: 0; }
.grid.two { grid-template-columns: repeat(2, minmax(0, 1fr)); }
.panel.wide { grid-column: 1 / -1; }
.panel h3 { margin: 0 0 6px; font-size: 14px; font-weight: 600; }
.notice { padding: 10px 14px; border-radius: 6px; margin-bottom: 12px; background: #fff4ce; color: #5c4a00; }
.notice:empty { display: none; }
.status { display: flex; gap: 18px; align-items: center; margin-bottom: 12px; font-size: 14px; flex-wrap: wrap; }
.badge { padding: 4px 10px; border-radius: 12px; background: #dfe7fb; }
.badge.fresh { background: #d7f5dd; color: #135c23; }
.badge.stale { background: #ffe1d6; color: #7a2a0c; }
table.data { border-collapse: collapse; width: 100%; font-size: 13px; }
table.data th, table.data td { padding: 4px 8px; border-bottom: 1px solid #e3e7ef; text-align: left; }
table.data td.num, table.data th.num { text-align: right; }
.footnote { font-size: 12px; color: #666; margin-top: 6px; }
"""


def table(columns: list[tuple[str, str, bool]], rows: list[dict[str, Any]], table_id: str | None = None) -> html.Table:
    """A plain HTML table: ``columns`` are (key, header, numeric); values are already formatted."""
    head = html.Tr([html.Th(h, className="num" if num else None) for _, h, num in columns])
    body = [html.Tr([html.Td(r[k], className="num" if num else None) for k, _, num in columns]) for r in rows]
    return html.Table([html.Thead(head), html.Tbody(body)], className="data", **({"id": table_id} if table_id else {}))
