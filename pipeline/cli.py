"""The ``olist`` command: parses options, calls the library (``pipeline.*``) and renders its reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from pipeline import console as show
from pipeline.console import RichProgress, console, fail, one_line_errors
from pipeline.contracts.cli import contracts_app
from pipeline.platform import DEFAULT_SERVICES, ON_DEMAND_SERVICES
from pipeline.settings import get_settings
from pipeline.speed.cdc.cli import cdc_app

app = typer.Typer(help="Olist lambda data platform on local cloud emulation.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.add_typer(contracts_app, name="contracts")
app.add_typer(cdc_app, name="cdc")

EXIT_QUARANTINED = 3
Target = Literal["duckdb", "snowflake"]


# -- batch lane ----------------------------------------------------------------------------------
@app.command()
@one_line_errors
def generate(
    scale: Annotated[float | None, typer.Option(help="1.0 = the full data set's row counts. [OLIST_SCALE]")] = None,
    seed: Annotated[int | None, typer.Option(help="Same seed, same bytes. [OLIST_SEED]")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for the nine CSV files. [OLIST_DATA_DIR]")] = None,
) -> None:
    """Write the nine Olist CSV files, faithful in format, keys and shape."""
    from pipeline.batch.lane import generate as run

    settings = get_settings()
    with RichProgress() as progress:
        result = run(settings, scale, seed, out, progress)
    show.show_generated(result, settings.scale if scale is None else scale, settings.seed if seed is None else seed,
                        out or settings.data_dir)


@app.command()
@one_line_errors
def load(data_dir: Annotated[Path | None, typer.Option(help="Folder of the nine CSV files. [OLIST_DATA_DIR]")] = None,
         ) -> None:
    """Load the CSV files into PostgreSQL (COPY), quarantining bad rows. Exit 3 when any were quarantined."""
    from pipeline.batch.lane import load as run

    settings = get_settings()
    with RichProgress() as progress:
        summary = run(settings, data_dir, progress)
    show.show_load(summary, f"{settings.pg_schema}.{settings.quarantine_table}")
    if summary.quarantined:
        raise typer.Exit(EXIT_QUARANTINED)


@app.command()
@one_line_errors
def ingest(table: Annotated[list[str] | None, typer.Option(help="Only these tables (repeatable).")] = None) -> None:
    """Copy new rows from PostgreSQL to S3 as Parquet (bronze), commit by manifest, reconcile counts."""
    from pipeline.batch.lane import ingest as run

    with RichProgress() as progress:
        report = run(get_settings(), table, progress)
    show.show_ingest(report)
    if not report.reconciled:
        raise typer.Exit(1)


@app.command()
@one_line_errors
def transform(
    target: Annotated[Target, typer.Option(help="dbt target: duckdb (local) or snowflake.")] = "duckdb",
    select: Annotated[str | None, typer.Option(help="dbt node selection, e.g. marts.")] = None,
    docs: Annotated[bool, typer.Option(help="Also generate the dbt docs (lineage).")] = True,
) -> None:
    """Refresh bronze from S3, then `dbt build` bronze -> silver -> gold (models and tests) and the docs."""
    from pipeline.batch.lane import transform as run

    with RichProgress() as progress:
        report = run(get_settings(), target, select, docs, progress=progress)
    show.show_transform(report)
    if not report.success:
        raise typer.Exit(1)


@app.command()
@one_line_errors
def promote() -> None:
    """Rehearse the Snowflake promotion: bronze into Snowflake (fakesnow when SNOWFLAKE_ACCOUNT is unset),
    the same dbt models with --target snowflake, then every gold table compared with DuckDB's."""
    from pipeline.batch.promote import rehearse

    with RichProgress() as progress:
        report = rehearse(get_settings(), progress)
    show.show_promotion(report)
    if not report.identical:
        raise fail("the Snowflake target differs from DuckDB" if report.transform.success
                   else "dbt build failed on the Snowflake target")


# -- services ------------------------------------------------------------------------------------
@app.command()
@one_line_errors
def up(services: Annotated[list[str] | None, typer.Argument(
        help=f"Services to start (default: {', '.join(DEFAULT_SERVICES)}; "
             f"also {', '.join(ON_DEMAND_SERVICES)}).")] = None) -> None:
    """Start the local engines and wait until each is healthy."""
    from pipeline import platform

    try:
        with RichProgress() as progress:
            started = platform.up(get_settings(), services, progress)
    except KeyError as exc:
        raise fail(str(exc.args[0])) from None
    show.show_started(started)


@app.command()
@one_line_errors
def down(purge: Annotated[bool, typer.Option(help="Also delete the services' data.")] = False) -> None:
    """Stop every local engine, keeping CDC's offsets and slot (the next start resumes); --purge deletes all state."""
    from pipeline import platform

    show.show_down(platform.down(get_settings(), purge))


@app.command()
def status() -> None:
    """Show each service: running, healthy, endpoint, pid; the connector and the Flink job."""
    from pipeline import platform
    from pipeline.speed.cdc import CONNECTOR

    show.show_status(platform.status(get_settings()), CONNECTOR)


# -- change ----------------------------------------------------------------------------------------
Engines = Annotated[list[str] | None, typer.Option(
    "--engine", help="Only these engines (repeatable): postgres, kafka, connect, cassandra, programs (the speed "
                    "lane's supervised ones).")]


@app.command("plan")
@one_line_errors
def plan_changes(engine: Engines = None) -> None:
    """Read every running engine and show the steps that bring it to the contracts, each with its verdict
    (compatible, needs a backfill or a replay, breaking); exit 1 when one is breaking."""
    from pipeline import provision

    report = provision.plan(get_settings(), engine)
    show.show_plan(report)
    if report.breaking:
        raise typer.Exit(1)


@app.command("apply")
@one_line_errors
def apply_changes(
    engine: Engines = None,
    recompute: Annotated[bool, typer.Option(help="Also run the steps that recompute data (a backfill, a replay: "
                                            "`olist plan` says what each reads).")] = False,
) -> None:
    """Make the plan's compatible steps on the running platform (online, each idempotent: a killed run is finished
    by the next); refuse every step, changing nothing, when one is breaking (exit 1)."""
    from pipeline import provision

    with RichProgress() as progress:
        report = provision.apply(get_settings(), engine, progress, recompute=recompute)
    show.show_apply(report)
    if not report.ok:
        raise fail(f"{show.count(len(report.refused), 'breaking step')}: nothing was applied (`olist plan` says what "
                   "a safe migration is)")


# -- speed lane ----------------------------------------------------------------------------------
@app.command()
@one_line_errors
def simulate(
    rate: Annotated[float, typer.Option(help="Payment-row changes per second.", min=1)] = 50,
    duration: Annotated[float, typer.Option(help="Seconds to run.", min=0.1)] = 10,
    seed: Annotated[int, typer.Option(help="Same seed, same sequence of operations.")] = 7,
) -> None:
    """Mimic live trading in PostgreSQL: new orders and payments, voucher splits, updates, rare deletes."""
    from pipeline.speed.lane import simulate_trading

    with RichProgress() as progress:
        report = simulate_trading(get_settings(), rate, duration, seed, progress=lambda done, _: progress.update(
            "simulate", description=f"simulating {rate:g} changes/s", completed=done, total=int(rate * duration)))
    show.show_simulation(report)


@app.command()
@one_line_errors
def serve(
    duration: Annotated[float | None, typer.Option(help="Seconds to run (default: until idle).")] = None,
    idle: Annotated[float, typer.Option(help="Stop after this many quiet seconds.")] = 10,
) -> None:
    """Sink the windowed topics into Cassandra (upserts; bad records to the topics' .dlq; read_committed)."""
    from pipeline.speed.sink import run_sink

    with console.status("sinking the windowed topics into Cassandra"):
        report = run_sink(get_settings(), duration, None if duration else idle)
    console.print(f"[green]✔[/] {report.records:,} records ({report.rate:,.0f}/s): {report.written:,} rows upserted, "
                  f"{report.dead_lettered:,} broke the contract and went to the dead-letter topics")


@app.command()
@one_line_errors
def reconcile(timeout: Annotated[float, typer.Option(help="Seconds to wait for the archive, Flink and the sink.")]
              = 180) -> None:
    """Recompute the speed layer's windows from the raw archive (dbt) and compare every closed window with
    Cassandra's, value for value; exit 1 on any difference."""
    from pipeline.reconcile import reconcile as run

    with RichProgress() as progress:
        report = run(get_settings(), timeout, progress)
    show.show_reconcile(report)
    if not report.ok:
        raise fail(f"{len(report.differences)} windows differ" if report.differences else "no closed window to compare")


# -- serving -------------------------------------------------------------------------------------
@app.command()
@one_line_errors
def windows(minutes: Annotated[float, typer.Option(help="How far back from the newest window.")] = 5) -> None:
    """The live view's windows: the batch layer's up to its watermark, the speed layer's after it."""
    from pipeline.serving.live import live_windows

    show.show_live(live_windows(get_settings(), minutes))



@app.command()
@one_line_errors
def dashboard(
    port: Annotated[int, typer.Option(help="TCP port on the bind host; 0 picks a free one (printed).")] = 0,
    background: Annotated[bool, typer.Option(
        "--background/--foreground", help="Run as a background service (`olist down` stops it).")] = False,
    target: Annotated[Target | None, typer.Option(
        help="Warehouse the BI views read: duckdb or snowflake (default: OLIST_DASHBOARD_TARGET or duckdb).")] = None,
) -> None:
    """Serve the dashboards (sales, delivery, sellers over the gold marts; live payments over Cassandra)."""
    settings = get_settings()
    if target is not None:
        settings = settings.replace(dashboard_target=target)
    if background:
        from pipeline.platform import start_dashboard

        console.print(f"[green]✔[/] dashboard on {start_dashboard(settings, port)} (`olist down` stops it)")
        return
    from pipeline.serving.dashboard.app import serve as serve_dashboard

    serve_dashboard(settings, port)


# -- demo ----------------------------------------------------------------------------------------
@app.command()
@one_line_errors
def demo() -> None:
    """The whole platform on the embedded defaults: both lanes, the latest windows, the dashboards left up."""
    from pipeline.demo import run_demo

    console.rule("[bold]Olist lambda platform demo")
    with RichProgress() as progress:
        report = run_demo(get_settings(), progress)
    show.show_demo(report)
    if report.problems:
        raise fail("; ".join(report.problems))
    if report.quarantined:
        raise typer.Exit(EXIT_QUARANTINED)


if __name__ == "__main__":  # python -m pipeline.cli (the fault suite and the benches run it so)
    app()
