"""The Dash app: a page per view (sales, delivery, sellers, live payments) under one top bar, with the BI
slicers in a sidebar shared by the BI pages (hidden on the live page). ``python -m pipeline.serving.dashboard``
serves it; :func:`create_app` builds it for a warehouse file and a live source."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

import dash
from dash import Dash, Input, Output, dcc, html

from pipeline.serving.dashboard import components
from pipeline.serving.dashboard.components import CSS, SLICERS, Sources
from pipeline.serving.dashboard.warehouse import (
    Filters,
    Warehouse,
    WarehouseSnapshot,
    WarehouseUnavailable,
    slicer_options,
)
from pipeline.serving.live import LiveReader, LiveSource
from pipeline.settings import Settings, get_settings

PAGES = (("sales", "/", "Sales"), ("delivery", "/delivery", "Delivery"), ("sellers", "/sellers", "Sellers"),
         ("live", "/live", "Live payments"))
INDEX = """<!DOCTYPE html>
<html>
  <head>
    {%metas%}
    <title>{%title%}</title>
    {%favicon%}
    {%css%}
    <style>""" + CSS + """</style>
  </head>
  <body>
    {%app_entry%}
    <footer>{%config%}{%scripts%}{%renderer%}</footer>
  </body>
</html>"""


def _layout() -> html.Div:
    nav = [dcc.Link(label, href=path, id=f"nav-{name}") for name, path, label in PAGES]
    sidebar = html.Div([html.Div([html.Label(label, htmlFor=slicer_id),
                                  dcc.Dropdown(id=slicer_id, multi=True, placeholder="All")], className="slicer")
                        for slicer_id, label in SLICERS], id="sidebar", className="sidebar")
    return html.Div([
        dcc.Location(id="url"),
        html.Div([html.H1("Olist e-commerce"), *nav], className="topbar"),
        html.Div([sidebar, html.Div(dash.page_container, className="content")], className="body"),
    ])


def _register_pages() -> None:
    from pipeline.serving.dashboard.pages import delivery, live, sales, sellers

    modules = {"sales": sales, "delivery": delivery, "sellers": sellers, "live": live}
    for order, (name, path, label) in enumerate(PAGES):
        dash.register_page(f"pipeline.serving.dashboard.pages.{name}", path=path, name=label, order=order,
                           title=f"Olist · {label}", layout=modules[name].layout)


@dash.callback(Output("sidebar", "className"), *[Output(f"nav-{n}", "className") for n, _, _ in PAGES],
               Input("url", "pathname"))
def _on_navigate(pathname: str | None):
    pathname = pathname or "/"
    active = [("active" if pathname == path else "") for _, path, _ in PAGES]
    return ("sidebar hidden" if pathname == "/live" else "sidebar"), *active


@dash.callback(Output("f-state", "options"), Output("f-year", "options"), Output("f-month", "options"),
               Output("f-period", "options"), Input("url", "pathname"))
def _slicer_options(_pathname):
    try:
        opts = slicer_options(components.warehouse())
    except WarehouseUnavailable:
        return [], [], [], []
    months = [{"label": f"{m:02d}", "value": m} for m in opts["months"]]
    return opts["states"], opts["years"], months, opts["periods"]


@dash.callback(Output("f-city", "options"), Input("f-state", "value"))
def _city_options(states):
    try:
        return slicer_options(components.warehouse(), Filters.of(states).states)["cities"]
    except WarehouseUnavailable:
        return []


def create_app(warehouse: Warehouse | Path, live: LiveSource | None = None) -> Dash:
    """The app over ``warehouse`` (a DuckDB snapshot or Snowflake, or the DuckDB file to snapshot) and a live
    source."""
    if isinstance(warehouse, str | Path):
        warehouse = WarehouseSnapshot(Path(warehouse))
    components.SOURCES = Sources(warehouse=warehouse, live=live)
    app = Dash(__name__, use_pages=True, pages_folder="", title="Olist e-commerce", serve_locally=True,
               suppress_callback_exceptions=True, update_title=None)
    app.index_string = INDEX
    _register_pages()
    app.layout = _layout
    return app


def app_for(settings: Settings, warehouse: Path | None = None) -> Dash:
    """The app on the configured warehouse (``settings.dashboard_target``: DuckDB at
    ``settings.warehouse_path`` or ``warehouse``, or Snowflake's gold) and Cassandra."""
    if settings.dashboard_target == "snowflake":
        from pipeline.batch.promote import snowflake_target
        from pipeline.serving.dashboard.snowflake_source import SnowflakeWarehouse

        warehouse = SnowflakeWarehouse(snowflake_target(settings))
        return create_app(warehouse, LiveReader(settings, warehouse))
    snapshots = settings.state_dir / "dashboard" / "snapshots"
    shutil.rmtree(snapshots, ignore_errors=True)  # copies left by an earlier run
    snapshot = WarehouseSnapshot(warehouse or settings.warehouse_path, snapshots)
    return create_app(snapshot, LiveReader(settings, snapshot))


def serve(settings: Settings, port: int, warehouse: Path | None = None) -> None:
    """Serve on ``settings.bind_host``:``port`` (0: a free one) until interrupted (a threaded WSGI server)."""
    from emulation.service import free_port

    port = port or free_port(settings.bind_host)
    app = app_for(settings, warehouse)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    print(f"dashboard on http://{settings.bind_host}:{port}/", flush=True)
    app.run(host=settings.bind_host, port=port, debug=False, dev_tools_ui=False, threaded=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.serving.dashboard", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="TCP port on the bind host; 0 picks a free one.")
    parser.add_argument("--warehouse", type=Path, default=None, help="DuckDB file (default: the configured one).")
    parser.add_argument("--settings", type=Path, default=None, help="The settings file the service wrote (default: "
                        "the environment's).")
    args = parser.parse_args(argv)
    settings = Settings.model_validate_json(args.settings.read_text()) if args.settings else get_settings()
    serve(settings, args.port, args.warehouse)
    return 0


if __name__ == "__main__":
    sys.exit(main())
