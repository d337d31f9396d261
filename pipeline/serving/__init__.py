"""The serving layer: the reads the dashboards and the CLI make (``windows``: the Cassandra windows) and the Dash
app over the gold marts and the live windows (``dashboard``)."""
