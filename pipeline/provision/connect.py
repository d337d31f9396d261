"""The CDC connector's configuration converged to the repo's JSON and the settings: a registered connector whose
config differs is updated in place (Connect restarts its task; the offsets, and so the stream's position, are kept)."""

from __future__ import annotations

from emulation.resources import engine
from pipeline.provision.steps import Step
from pipeline.settings import Settings


def plan(settings: Settings) -> list[Step]:
    from pipeline.speed.cdc.connector import CONNECTOR, connector_config

    connect = engine("connect", settings)
    if CONNECTOR not in connect.connectors():
        return []  # `olist cdc up` registers it
    have = connect.connector_config(CONNECTOR)
    want = {k: str(v) for k, v in connector_config(engine("postgres", settings), settings).items()}
    changed = sorted(k for k in want.keys() | have.keys() if k != "name" and want.get(k) != have.get(k))
    if not changed:
        return []
    return [Step("connect", f"connector {CONNECTOR}", "update config (" + ", ".join(changed) + ")",
                 detail="Connect restarts the task; its offsets are kept, so streaming resumes where it was",
                 run=lambda: connect.register(CONNECTOR, want))]
