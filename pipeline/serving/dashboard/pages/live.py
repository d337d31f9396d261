"""The live payments view: the seed's Grafana board over the serving layer's live view (the batch layer's windows
up to its watermark, Cassandra's after it, each marked), refreshed every few seconds, with the age of the newest
window, the late-event count and the last reconciliation."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import dash
import plotly.graph_objects as go
from dash import Input, Output, dcc, html

from pipeline.serving.dashboard.components import (
    PALETTE,
    count,
    empty_figure,
    hbar,
    kpi,
    live,
    money,
    panel,
    styled,
    table,
)
from pipeline.serving.live import LiveData

REFRESH_MS = 3000
STALE_AFTER_S = 120  # a newest window older than this is shown as stale
GRAPHS = ("g-live-count-type", "g-live-sum-type", "g-live-minmax", "g-live-minute")
KPIS = ("kpi-live-total", "kpi-live-count", "kpi-live-avg", "kpi-live-avg-total")
COLUMNS = [("window_end", "Window end (UTC)", False), ("layer", "Layer", False),
           ("payment_type", "Payment type", False),
           ("payment_installments", "Installments", True), ("installment_count", "Count", True)]


def layout(**_query) -> html.Div:
    return html.Div([
        dcc.Interval(id="live-tick", interval=REFRESH_MS),
        html.Div([html.Span("–", id="live-fresh", className="badge"),
                  html.Span(["Late events: ", html.B("n/a", id="live-late")]),
                  html.Span(id="live-layers", className="footnote"),
                  html.Span(id="live-read", className="footnote")], className="status"),
        html.Div(id="live-notice", className="notice"),
        html.Div([kpi("Total payment value", "kpi-live-total"), kpi("Payments", "kpi-live-count"),
                  kpi("Average payment per window", "kpi-live-avg"), kpi("Average total per window",
                                                                         "kpi-live-avg-total")], className="kpis"),
        html.Div([
            panel("Payment count per type", "g-live-count-type", 240),
            panel("Total payment value per type", "g-live-sum-type", 240),
            panel("Minimum and maximum payment per window", "g-live-minmax", 280),
            panel("Total payment value per minute", "g-live-minute", 280),
            html.Div([html.H3("Installments per window and payment type (newest first)"),
                      html.Div(id="live-table")], className="panel wide"),
        ], className="grid two"),
    ])


def utc(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def per_window(rows: list[dict]) -> dict[dt.datetime, dict]:
    out: dict[dt.datetime, dict] = {}
    for r in rows:
        w = out.setdefault(r["window_end"], {"sum": Decimal(0), "count": 0, "min": None, "max": None})
        w["sum"] += Decimal(r["payment_sum"] or 0)
        w["count"] += int(r["payment_count"] or 0)
        for key, pick in (("min", min), ("max", max)):
            value = r[f"payment_{key}"]
            if value is not None:
                w[key] = value if w[key] is None else pick(w[key], value)
    return out


def minmax_figure(windows: dict[dt.datetime, dict]) -> go.Figure:
    ends = sorted(windows)
    fig = go.Figure([
        go.Scatter(x=ends, y=[float(windows[e]["max"] or 0) for e in ends], name="max", mode="lines",
                   line={"color": "#d98b1f"}),
        go.Scatter(x=ends, y=[float(windows[e]["min"] or 0) for e in ends], name="min", mode="lines",
                   line={"color": PALETTE[1]}),
    ])
    return styled(fig, showlegend=True, legend={"orientation": "h", "y": 1.15, "x": 0})


def minute_figure(rows: list[dict]) -> go.Figure:
    per: dict[str, dict[dt.datetime, float]] = defaultdict(lambda: defaultdict(float))
    for r in rows:
        minute = r["window_end"].replace(second=0, microsecond=0)
        per[r["payment_type"]][minute] += float(r["payment_sum"] or 0)
    fig = go.Figure([go.Bar(x=sorted(v), y=[v[m] for m in sorted(v)], name=t, marker_color=PALETTE[i % len(PALETTE)])
                     for i, (t, v) in enumerate(sorted(per.items()))])
    return styled(fig, showlegend=True, barmode="stack", legend={"orientation": "h", "y": 1.15, "x": 0})


def layers(data: LiveData) -> str:
    """Which layer serves which windows, and what the last reconciliation found."""
    text = (f"batch layer up to {utc(data.batch_watermark)} UTC, speed layer after" if data.batch_watermark
            else "speed layer only (no batch view yet)")
    rec = data.reconciliation
    if rec is not None:
        verdict = "all equal" if rec.ok else f"{len(rec.differences)} differ"
        text += f"; last reconciliation {rec.reconciled_at[:19].replace('T', ' ')} UTC: " \
                f"{sum(rec.compared.values()):,} windows, {verdict}"
    return text


def freshness(data: LiveData) -> tuple[str, str]:
    newest, age = data.newest_window_end, data.age_seconds
    if newest is None:
        return "no windows yet", "badge stale"
    label = f"newest window ended {max(age, 0):,.0f} s ago ({utc(newest)} UTC)"
    return label, "badge fresh" if age <= STALE_AFTER_S else "badge stale"


@dash.callback(Output("live-fresh", "children"), Output("live-fresh", "className"), Output("live-late", "children"),
               Output("live-read", "children"), Output("live-layers", "children"), Output("live-notice", "children"),
               *[Output(k, "children") for k in KPIS], *[Output(g, "figure") for g in GRAPHS],
               Output("live-table", "children"), Input("live-tick", "n_intervals"))
def update(_n):
    data = live()
    late = "n/a" if data.late_events is None else count(data.late_events)
    read = f"read {utc(data.read_at)} UTC, every {REFRESH_MS / 1000:g} s"
    if data.error or not data.aggregated:
        notice = (f"No live data: {data.error}" if data.error else
                  "No payment windows in Cassandra yet: they appear here once the streaming lane writes them.")
        empty = empty_figure("no data yet")
        return ("no windows yet", "badge stale", late, read, layers(data), notice, *["–"] * len(KPIS),
                *[empty] * len(GRAPHS), "")
    rows = data.aggregated
    windows = per_window(rows)
    total = sum((w["sum"] for w in windows.values()), Decimal(0))
    payments = sum(w["count"] for w in windows.values())
    avg_payment = sum(float(w["sum"]) / w["count"] for w in windows.values() if w["count"]) / len(windows)
    by_type: dict[str, list] = defaultdict(lambda: [0, Decimal(0)])
    for r in rows:
        by_type[r["payment_type"]][0] += int(r["payment_count"] or 0)
        by_type[r["payment_type"]][1] += Decimal(r["payment_sum"] or 0)
    types = sorted(by_type, key=lambda t: -by_type[t][1])
    label, badge = freshness(data)
    newest_first = sorted(data.installments, key=lambda r: (r["window_end"], r["payment_type"],
                                                            -r["payment_installments"]), reverse=True)[:25]
    table_rows = [{"window_end": utc(r["window_end"]), "layer": r.get("layer", "speed"),
                   "payment_type": r["payment_type"],
                   "payment_installments": r["payment_installments"],
                   "installment_count": count(r["installment_count"])} for r in newest_first]
    return (label, badge, late, read, layers(data), "",
            money(total), count(payments), money(avg_payment), money(total / len(windows)),
            hbar(types, [by_type[t][0] for t in types]),
            hbar(types, [by_type[t][1] for t in types], prefix="R$ "),
            minmax_figure(windows), minute_figure(rows),
            table(COLUMNS, table_rows, "live-installments"))
