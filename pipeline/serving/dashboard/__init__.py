"""The dashboards: a Dash app served on 127.0.0.1 with one page per view.

``warehouse.py`` holds the SQL against the gold tables (parameterised by the slicers) and the copy-on-read
snapshot of the DuckDB file; ``pipeline.serving.windows`` reads the windowed tables in Cassandra; ``app.py`` builds the
app and ``pages/`` the layouts and callbacks. Nothing is fetched from outside the machine: Dash serves its
own scripts (plotly.js included), the map is a basemap-free scatter of the warehouse's zip-code centroids,
and no font, stylesheet or topojson is linked.
"""
