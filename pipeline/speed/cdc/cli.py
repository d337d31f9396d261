"""`olist cdc`: change data capture, PostgreSQL -> Debezium -> Kafka, and the raw archive."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline import console as show
from pipeline.console import RichProgress, console, one_line_errors
from pipeline.settings import get_settings

cdc_app = typer.Typer(help="Change data capture: PostgreSQL -> Debezium -> Kafka, and the raw archive.",
                      no_args_is_help=True)


@cdc_app.command("up")
@one_line_errors
def cdc_up() -> None:
    """Start Kafka and Connect if needed, create the topics from the contracts, prepare PostgreSQL
    (replication user, publication) and register the Debezium connector; wait until it is RUNNING."""
    from pipeline import platform
    from pipeline.speed import cdc

    settings = get_settings()
    with RichProgress() as progress:
        show.show_started(platform.up(settings, ["postgres", "kafka", "connect"], progress))
        progress.update("cdc", description="registering the Debezium connector", total=None)
        state = cdc.start(settings)
    tasks = ", ".join(t["state"] for t in state.get("tasks", []))
    console.print(f"[green]✔[/] connector {cdc.CONNECTOR}: {state['connector']['state']} (tasks: {tasks}); "
                  f"topics: {', '.join(t.name for t in cdc.topic_specs())}")


@cdc_app.command("down")
@one_line_errors
def cdc_down() -> None:
    """Reset CDC: stop the connector, forget its offsets, remove it and drop its replication slot together (so no
    slot holds WAL); services keep running. The next `cdc up` snapshots afresh."""
    from pipeline.speed import cdc

    dropped = cdc.stop(get_settings())
    console.print(f"[green]✔[/] connector stopped, its offsets reset and removed; replication slots dropped: "
                  f"{', '.join(dropped) or 'none'}")


@cdc_app.command("archive")
@one_line_errors
def cdc_archive(
    duration: Annotated[float | None, typer.Option(help="Seconds to run (default: until idle).")] = None,
    idle: Annotated[float, typer.Option(help="Stop after this many quiet seconds.")] = 10,
    flush_records: Annotated[int, typer.Option(help="Records per file at most.")] = 10_000,
) -> None:
    """Archive the raw topic to S3 Parquet (seed layout, exactly once: offsets committed after upload)."""
    from pipeline.contracts import stream_names
    from pipeline.speed.lane import archive_raw

    names = stream_names()
    with console.status(f"archiving {names.raw}"):
        report, uri = archive_raw(get_settings(), duration, None if duration else idle, flush_records)
    console.print(f"[green]✔[/] {report.records:,} events in {len(report.files)} files under {uri}; "
                  f"{report.dead_lettered:,} broke the contract and went to {names.dead_letter(names.raw)}")


@cdc_app.command("status")
def cdc_status() -> None:
    """The connector's and its tasks' states."""
    from pipeline.speed import cdc

    state = cdc.status(get_settings())
    if state is None:
        console.print("connector: not registered (or Connect is not running)")
        raise typer.Exit(1)
    console.print(f"connector {cdc.CONNECTOR}: {state['connector']['state']}; tasks: "
                  + ", ".join(f"{t['id']}={t['state']}" for t in state.get("tasks", [])))
