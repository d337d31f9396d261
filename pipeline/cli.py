"""The ``olist`` command: generate, load, run services, check contracts, run the demo."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from emulation import ServiceError, all_services, get_service
from emulation.postgres import PostgresService
from pipeline.batch.load import LoadError, LoadSummary, load_directory
from pipeline.console import console, err_console, human_bytes, progress_bar
from pipeline.contracts.registry import ContractError
from pipeline.settings import Settings, get_settings

app = typer.Typer(help="Olist lambda data platform on local cloud emulation.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
contracts_app = typer.Typer(help="Lint, generate, check and diff the data contracts.", no_args_is_help=True)
app.add_typer(contracts_app, name="contracts")
cdc_app = typer.Typer(help="Change data capture: PostgreSQL -> Debezium -> Kafka.", no_args_is_help=True)
app.add_typer(cdc_app, name="cdc")

EXIT_QUARANTINED = 3


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


# -- data ----------------------------------------------------------------------------------------
@app.command()
def generate(
    scale: Annotated[float | None, typer.Option(help="1.0 = the full data set's row counts. [OLIST_SCALE]")] = None,
    seed: Annotated[int | None, typer.Option(help="Same seed, same bytes. [OLIST_SEED]")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for the nine CSV files. [OLIST_DATA_DIR]")] = None,
) -> None:
    """Write the nine Olist CSV files, faithful in format, keys and shape."""
    from pipeline.batch.generator import generate as run_generate

    settings = get_settings()
    scale = settings.scale if scale is None else scale
    seed = settings.seed if seed is None else seed
    out = out or settings.data_dir

    with progress_bar() as bar:
        tasks: dict[str, int] = {}

        def on_progress(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=total)
            bar.update(tasks[table], completed=done)

        result = run_generate(scale=scale, seed=seed, out_dir=out, progress=on_progress)
    table = Table(title=f"Generated scale {scale} seed {seed} into {out}")
    for col in ("file", "rows", "size"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for stats in result.files.values():
        table.add_row(stats.path.name, f"{stats.rows:,}", human_bytes(stats.bytes))
    console.print(table)
    console.print(f"{result.total_rows:,} rows in {result.elapsed_seconds:.1f} s "
                  f"({result.rows_per_second:,.0f} rows/s)")


def print_load_summary(summary: LoadSummary) -> None:
    table = Table(title=f"Load run {summary.run_id[:8]}")
    for col in ("table", "read", "loaded", "inserted", "updated", "quarantined", "seconds"):
        table.add_column(col, justify="left" if col == "table" else "right")
    for r in summary.results:
        style = "yellow" if r.quarantined else None
        table.add_row(r.table, f"{r.read:,}", f"{r.loaded:,}", f"{r.inserted:,}",
                      f"{r.updated:,}", f"{r.quarantined:,}", f"{r.seconds:.2f}", style=style)
    console.print(table)
    console.print(f"{summary.read:,} records read, {summary.loaded:,} loaded, "
                  f"{summary.quarantined:,} quarantined in {summary.seconds:.1f} s")
    shown = 0
    for r in summary.results:
        for bad in r.bad[: max(0, 10 - shown)]:
            line = f"  [yellow]quarantined[/] {r.source_file}:{bad.line}: {bad.reason}"
            console.print(line, highlight=False, soft_wrap=True)
            shown += 1
    if summary.quarantined > shown:
        console.print(f"  ... {summary.quarantined - shown:,} more in table {get_settings().pg_schema}.load_quarantine")


def run_load(data_dir: Path) -> LoadSummary:
    settings = get_settings()
    pg = PostgresService(settings)
    if pg.pid() is None:
        raise ServiceError("postgres is not running: start it with `olist up`")
    with progress_bar() as bar:
        task = bar.add_task("loading", total=9)

        def on_progress(table: str, stage: str) -> None:
            bar.update(task, description=f"{stage} {table}", advance=1 if stage == "done" else 0)

        summary = load_directory(data_dir, pg.conninfo(), settings.pg_schema, progress=on_progress)
    print_load_summary(summary)
    return summary


@app.command()
def load(
    data_dir: Annotated[Path | None, typer.Option(help="Folder of the nine CSV files. [OLIST_DATA_DIR]")] = None,
) -> None:
    """Load the CSV files into PostgreSQL (COPY), quarantining bad rows. Exit 3 when any were quarantined."""
    try:
        summary = run_load(data_dir or get_settings().data_dir)
    except (LoadError, ServiceError, ContractError) as exc:
        raise fail(str(exc)) from None
    if summary.quarantined:
        raise typer.Exit(EXIT_QUARANTINED)


@app.command()
def ingest(
    table: Annotated[list[str] | None, typer.Option(help="Only these tables (repeatable).")] = None,
) -> None:
    """Copy new rows from PostgreSQL to S3 as Parquet (bronze), commit by manifest, reconcile counts."""
    try:
        results = run_ingest(table)
    except (ServiceError, ContractError) as exc:
        raise fail(str(exc)) from None
    if not all(r.reconciled for r in results):
        raise typer.Exit(1)


def run_ingest(tables: list[str] | None = None):
    from pipeline.batch.ingest import ingest as run
    from pipeline.storage import s3_location

    settings = get_settings()
    pg = PostgresService(settings)
    if pg.pid() is None:
        raise ServiceError("postgres is not running: start it with `olist up`")
    loc = s3_location(settings)
    with progress_bar() as bar:
        task = bar.add_task("ingesting", total=len(tables) if tables else 9)
        results = run(pg.conninfo(), loc, settings.pg_schema, settings.bronze_prefix, tables,
                      progress=lambda name: bar.update(task, description=f"ingest {name}", advance=1))
    out = Table(title=f"Ingested to {loc.uri(settings.bronze_prefix)}/")
    for col in ("table", "mode", "copied", "files", "size", "postgres rows", "bronze rows", "reconciled", "seconds"):
        out.add_column(col, justify="left" if col in ("table", "mode") else "right")
    for r in results:
        ok = "[green]yes" if r.reconciled else "[red]NO"
        out.add_row(r.table, r.skipped or r.mode, f"{r.copied:,}", str(r.files), human_bytes(r.bytes),
                    f"{r.source_rows:,}", f"{r.bronze_rows:,}", ok, f"{r.seconds:.2f}")
    console.print(out)
    removed = sum(r.orphans_removed for r in results)
    console.print(f"{sum(r.copied for r in results):,} rows copied in {sum(r.seconds for r in results):.1f} s"
                  + (f"; {removed} uncommitted files of an interrupted run removed" if removed else ""))
    return results


@app.command()
def transform(
    target: Annotated[str, typer.Option(help="dbt target: duckdb (local) or snowflake.")] = "duckdb",
    select: Annotated[str | None, typer.Option(help="dbt node selection, e.g. marts.")] = None,
    docs: Annotated[bool, typer.Option(help="Also generate the dbt docs (lineage).")] = True,
) -> None:
    """Refresh bronze from S3, then `dbt build` bronze -> silver -> gold (models and tests) and the docs."""
    try:
        run = run_transform(target, select, docs)
    except (ServiceError, ContractError) as exc:
        raise fail(str(exc)) from None
    if not run.success:
        raise typer.Exit(1)


def run_transform(target: str = "duckdb", select: str | None = None, docs: bool = True,
                  extra: list[str] | None = None):
    from pipeline.batch.transform import DBT_DIR, refresh_bronze, run_dbt, warehouse_path

    settings = get_settings()
    if target == "duckdb":
        with console.status("refreshing bronze from S3"):
            counts = refresh_bronze(settings)
        console.print(f"[green]✔[/] bronze refreshed from S3: {sum(counts.values()):,} rows in {len(counts)} tables")
    command = ["--quiet", "build", *(["--select", select] if select else []), *(extra or [])]
    t0 = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task("dbt build", total=None)
        failures: list[str] = []

        def on_node(name: str, status: str) -> None:
            bar.update(task, advance=1, description=f"dbt {name.split('.')[-1][:30]}")
            if status not in ("success", "pass", "skipped"):
                failures.append(f"{name}: {status}")

        run = run_dbt(command, settings, target, on_node)
        bar.update(task, total=len(run.results), completed=len(run.results))
    seconds = time.perf_counter() - t0
    models = sum(1 for r in run.results if r[0].startswith("model."))
    tests = sum(1 for r in run.results if r[0].startswith(("test.", "unit_test.")))
    failed = [r for r in run.results if r[1] not in ("success", "pass", "skipped")]
    console.print(f"dbt build on {target}: {models} models, {tests} tests in {seconds:.1f} s; "
                  + ("[green]all passed" if run.success else f"[red]{len(failed)} failed"))
    for node, status, _, message in failed[:10]:
        console.print(f"  [red]{status}[/] {node}: {message.splitlines()[0] if message else ''}", soft_wrap=True)
    if run.error:
        console.print(f"  [red]{run.error}", soft_wrap=True)
    if docs and run.success:
        doc = run_dbt(["--quiet", "docs", "generate"], settings, target)
        if doc.success:
            console.print(f"lineage docs: {DBT_DIR / 'target' / 'index.html'} (serve with "
                          "`dbt docs serve --project-dir dbt --profiles-dir dbt`)")
    if target == "duckdb":
        console.print(f"warehouse: {warehouse_path(settings)}")
    return run


@app.command()
def promote() -> None:
    """Rehearse the Snowflake promotion: bronze into Snowflake (fakesnow when SNOWFLAKE_ACCOUNT is unset),
    the same dbt models with --target snowflake, then every gold table compared with DuckDB's."""
    import os

    from pipeline.batch.promote import SnowflakeSettings, compare_marts, refresh_bronze
    from pipeline.batch.transform import environment, warehouse_path

    settings = get_settings()
    env: dict[str, str] = {}
    try:
        if "SNOWFLAKE_ACCOUNT" not in os.environ:
            from emulation.snowflake import FakesnowService

            with console.status("starting fakesnow (Snowflake stand-in)"):
                service = FakesnowService(settings)
                service.start()
            env = {**service.env(), "SNOWFLAKE_BRONZE_LOAD": "insert"}
            console.print(f"[green]✔[/] fakesnow on {service.endpoint().address}")
        with environment(env):
            sf = SnowflakeSettings()
            with console.status("loading bronze into Snowflake"):
                counts = refresh_bronze(settings, sf)
            console.print(f"[green]✔[/] bronze in Snowflake: {sum(counts.values()):,} rows in {len(counts)} tables "
                          f"({sf.bronze_load})")
            # fakesnow cannot create the temporary tables dbt's unit tests use; they run on DuckDB and on a
            # real account. Every model and data test runs here.
            extra = ["--exclude-resource-type", "unit_test"] if env else []
            run = run_transform("snowflake", docs=False, extra=extra)
            if not run.success:
                raise typer.Exit(1)
            compared = compare_marts(warehouse_path(settings), sf)
    except (ServiceError, ContractError) as exc:
        raise fail(str(exc)) from None
    table = Table(title="Gold on DuckDB against gold on Snowflake")
    for col in ("table", "duckdb rows", "snowflake rows", "identical"):
        table.add_column(col, justify="left" if col == "table" else "right")
    for name, (left, right, same) in compared.items():
        table.add_row(name, f"{left:,}", f"{right:,}", "[green]yes" if same else "[red]NO")
    console.print(table)
    if not compared or not all(same for _, _, same in compared.values()):
        raise fail("the Snowflake target differs from DuckDB")
    console.print(f"[green]✔[/] {len(compared)} gold tables identical on both targets")


# -- services ------------------------------------------------------------------------------------
@app.command()
def up(services: Annotated[list[str] | None, typer.Argument(
        help="Services to start (default: postgres, s3; also kafka, connect, cassandra, snowflake).")] = None) -> None:
    """Start the local engines and wait until each is healthy."""
    try:
        chosen = [get_service(n) for n in services] if services else list(all_services().values())
        for svc in chosen:
            with console.status(f"starting {svc.name}"):
                t0 = time.perf_counter()
                ep = svc.start()
            console.print(f"[green]✔[/] {svc.name} on {ep.address} ({time.perf_counter() - t0:.1f} s)")
    except (ServiceError, KeyError) as exc:
        raise fail(str(exc)) from None


@app.command()
def down(purge: Annotated[bool, typer.Option(help="Also delete the services' data.")] = False) -> None:
    """Stop every local engine (and with --purge delete its state)."""
    try:
        from pipeline.speed import cdc

        if cdc.status(get_settings()) is not None:
            dropped = cdc.stop(get_settings())
            console.print(f"[green]✔[/] connector removed, slots dropped: {', '.join(dropped) or 'none'}")
        for svc in reversed(list(all_services(on_demand=True).values())):
            if purge and hasattr(svc, "destroy"):
                svc.destroy()
            else:
                svc.stop()
            console.print(f"[green]✔[/] {svc.name} stopped" + (" and purged" if purge else ""))
    except ServiceError as exc:
        raise fail(str(exc)) from None


@app.command()
def status() -> None:
    """Show each service: running, healthy, endpoint, pid."""
    table = Table(title="Services")
    for col in ("service", "state", "endpoint", "pid", "log"):
        table.add_column(col)
    for svc in all_services(on_demand=True).values():
        st = svc.status()
        state = "[green]healthy" if st.healthy else "[yellow]not answering" if st.running else "[dim]stopped"
        table.add_row(st.name, state, st.endpoint.address if st.endpoint else "-", str(st.pid or "-"),
                      str(svc.log_path))
    from pipeline.speed import cdc

    connector = cdc.status(get_settings())
    if connector is not None:
        tasks = ", ".join(t["state"] for t in connector.get("tasks", []))
        table.add_row(f"└ {cdc.CONNECTOR}", connector["connector"]["state"].lower(), "connector", "-",
                      f"tasks: {tasks}")
    from emulation.flink import FlinkJobService

    flink = FlinkJobService(get_settings())
    if flink.pid() is not None:
        job = flink.running_job() or flink.job_status()
        state = str(job.get("state", "starting")).lower()
        tasks = job.get("tasks", {})
        table.add_row(f"└ {job.get('name', 'flink job')}", state, "flink job", "-",
                      f"tasks: {tasks.get('running', 0)}/{tasks.get('total', '?')} running; id {job.get('jid', '-')}")
    console.print(table)


@app.command()
def simulate(
    rate: Annotated[float, typer.Option(help="Payment-row changes per second.", min=1)] = 50,
    duration: Annotated[float, typer.Option(help="Seconds to run.", min=0.1)] = 10,
    seed: Annotated[int, typer.Option(help="Same seed, same sequence of operations.")] = 7,
) -> None:
    """Mimic live trading in PostgreSQL: new orders and payments, voucher splits, updates, rare deletes."""
    from pipeline.speed.simulate import simulate as run

    settings = get_settings()
    pg = PostgresService(settings)
    if pg.pid() is None:
        raise fail("postgres is not running: start it with `olist up`")
    with progress_bar() as bar:
        task = bar.add_task(f"simulating {rate:g} changes/s", total=int(rate * duration))
        report = run(pg.conninfo(), settings.pg_schema, rate, duration, seed,
                     progress=lambda done, _: bar.update(task, completed=done))
    ops = ", ".join(f"{n:,} {k}" for k, n in sorted(report.operations.items()))
    rows = ", ".join(f"{n:,} {k}" for k, n in sorted(report.rows.items()))
    console.print(f"{report.changes:,} payment-row changes in {report.seconds:.1f} s: achieved "
                  f"{report.achieved_rate:,.0f}/s of {rate:g}/s target ({ops}; rows: {rows})")


# -- change data capture ----------------------------------------------------------------------------
@cdc_app.command("up")
def cdc_up() -> None:
    """Start Kafka and Connect if needed, create the topics from the contracts, prepare PostgreSQL
    (replication user, publication) and register the Debezium connector; wait until it is RUNNING."""
    from pipeline.speed import cdc

    settings = get_settings()
    try:
        up(["postgres", "kafka", "connect"])
        with console.status("registering the Debezium connector"):
            state = cdc.start(settings)
    except ServiceError as exc:
        raise fail(str(exc)) from None
    tasks = ", ".join(t["state"] for t in state.get("tasks", []))
    console.print(f"[green]✔[/] connector {cdc.CONNECTOR}: {state['connector']['state']} (tasks: {tasks}); "
                  f"topics: {', '.join(t.name for t in cdc.topic_specs())}")


@cdc_app.command("down")
def cdc_down() -> None:
    """Remove the connector and drop its replication slot (so no slot holds WAL); services keep running."""
    from pipeline.speed import cdc

    try:
        dropped = cdc.stop(get_settings())
    except ServiceError as exc:
        raise fail(str(exc)) from None
    console.print(f"[green]✔[/] connector removed; replication slots dropped: {', '.join(dropped) or 'none'}")


@cdc_app.command("archive")
def cdc_archive(
    duration: Annotated[float | None, typer.Option(help="Seconds to run (default: until idle).")] = None,
    idle: Annotated[float, typer.Option(help="Stop after this many quiet seconds.")] = 10,
    flush_records: Annotated[int, typer.Option(help="Records per file at most.")] = 10_000,
) -> None:
    """Archive the raw topic to S3 Parquet (seed layout, exactly once: offsets committed after upload)."""
    from emulation.kafka import KafkaService
    from pipeline.speed.archive import RawArchiver
    from pipeline.storage import s3_location

    settings = get_settings()
    kafka = KafkaService(settings)
    try:
        if kafka.pid() is None:
            raise ServiceError("kafka is not running: start it with `olist cdc up`")
        loc = s3_location(settings)
        with console.status("archiving olist.order_payments"):
            report = RawArchiver(kafka.client_config(), loc, "olist.order_payments", "raw",
                                 flush_records=flush_records, dead_letter="olist.order_payments.dlq",
                                 ).run(duration, None if duration else idle)
    except ServiceError as exc:
        raise fail(str(exc)) from None
    console.print(f"[green]✔[/] {report.records:,} events in {len(report.files)} files under "
                  f"{loc.uri('raw/olist.order_payments/')}; {report.dead_lettered:,} broke the contract and went to "
                  "olist.order_payments.dlq")


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


# -- contracts -----------------------------------------------------------------------------------
@app.command()
def serve(
    duration: Annotated[float | None, typer.Option(help="Seconds to run (default: until idle).")] = None,
    idle: Annotated[float, typer.Option(help="Stop after this many quiet seconds.")] = 10,
) -> None:
    """Sink the windowed topics into Cassandra (upserts; bad records to the topics' .dlq; read_committed)."""
    from pipeline.speed.sink import run_sink

    try:
        with console.status("sinking the windowed topics into Cassandra"):
            report = run_sink(get_settings(), duration, None if duration else idle)
    except ServiceError as exc:
        raise fail(str(exc)) from None
    console.print(f"[green]✔[/] {report.records:,} records ({report.rate:,.0f}/s): {report.written:,} rows upserted, "
                  f"{report.dead_lettered:,} broke the contract and went to the dead-letter topics")


@app.command()
def dashboard(
    port: Annotated[int, typer.Option(help="TCP port on the bind host; 0 picks a free one (printed).")] = 0,
    background: Annotated[bool, typer.Option(
        "--background/--foreground", help="Run as a background service (`olist down` stops it).")] = False,
    target: Annotated[str | None, typer.Option(
        help="Warehouse the BI views read: duckdb or snowflake (default: OLIST_DASHBOARD_TARGET or duckdb).")] = None,
) -> None:
    """Serve the dashboards (sales, delivery, sellers over the gold marts; live payments over Cassandra)."""
    settings = get_settings()
    if target is not None:
        if target not in ("duckdb", "snowflake"):
            raise fail(f"--target must be duckdb or snowflake, not {target!r}")
        settings = settings.model_copy(update={"dashboard_target": target})
    if background:
        from emulation.dashboard import DashboardService

        try:
            DashboardService(settings, port).start()
        except ServiceError as exc:
            raise fail(str(exc)) from None
        console.print(f"[green]✔[/] dashboard on {DashboardService(settings).url} (`olist down` stops it)")
        return
    from emulation.service import free_port
    from pipeline.serving.dashboard.app import serve as serve_dashboard

    serve_dashboard(settings, port or free_port(settings.bind_host))


@contracts_app.command("lint")
def contracts_lint() -> None:
    """Validate every contract: ODCS JSON Schema, cross-references, keys and enums."""
    from pipeline.contracts.lint import lint

    issues = lint()
    for issue in issues:
        err_console.print(f"[red]✘[/] {issue}", highlight=False, soft_wrap=True)
    if issues:
        raise typer.Exit(1)
    from pipeline.contracts.registry import load_registry

    console.print(f"[green]✔[/] {len(load_registry().datasets)} contracts are sound")


@contracts_app.command("generate")
def contracts_generate() -> None:
    """(Re)write every artifact generated from the contracts."""
    from pipeline.contracts.artifacts import render_all, write_all

    written = write_all()
    for rel in written:
        console.print(f"wrote {rel}")
    console.print(f"[green]✔[/] {len(render_all())} artifacts current ({len(written)} rewritten)")


@contracts_app.command("check")
def contracts_check() -> None:
    """Fail when a generated artifact differs from what the contracts generate now."""
    from pipeline.contracts.artifacts import render_all, stale

    out = stale()
    for rel in out:
        err_console.print(f"[red]✘[/] {rel} is stale: run `olist contracts generate`", highlight=False)
    if out:
        raise typer.Exit(1)
    console.print(f"[green]✔[/] {len(render_all())} generated artifacts match the contracts")


@contracts_app.command("diff")
def contracts_diff(ref: Annotated[str, typer.Argument(help="Git ref to compare with, e.g. main or HEAD~1.")]) -> None:
    """List changes since REF; exit 1 when any is breaking."""
    from pipeline.contracts.diff import diff, registry_at_ref
    from pipeline.contracts.registry import load_registry

    try:
        changes = diff(registry_at_ref(ref), load_registry())
    except ContractError as exc:
        raise fail(str(exc)) from None
    for change in changes:
        style = "red" if change.breaking else "green"
        console.print(f"[{style}]{change}", highlight=False)
    breaking = [c for c in changes if c.breaking]
    console.print(f"{len(changes)} changes since {ref}, {len(breaking)} breaking")
    if breaking:
        raise typer.Exit(1)


# -- demo ----------------------------------------------------------------------------------------
@app.command()
def demo() -> None:
    """The whole platform on the embedded defaults: services, sample data, load, ingest, dbt build, KPIs."""
    settings = get_settings()
    console.rule("[bold]Olist lambda platform demo")
    try:
        up(None)
        generate(scale=settings.scale, seed=settings.seed, out=settings.data_dir)
        summary = run_load(settings.data_dir)
        console.rule("[bold]Batch lane: PostgreSQL -> S3 bronze")
        ingested = run_ingest()
        console.rule("[bold]Batch lane: dbt bronze -> silver -> gold")
        run = run_transform()
        if not run.success or not all(r.reconciled for r in ingested):
            raise fail("the batch lane did not finish cleanly (see above)")
        console.rule("[bold]Streaming lane: PostgreSQL -> Debezium -> Kafka -> Flink -> Cassandra (+ S3 archive)")
        up(["kafka", "connect", "cassandra", "flink"])
        stream = run_streaming(settings)
        windows = print_latest_windows(settings)
        console.rule("[bold]Dashboards")
        up(["dashboard"])
        from emulation.dashboard import DashboardService

        dashboard = DashboardService(settings)
    except (LoadError, ServiceError, ContractError) as exc:
        raise fail(str(exc)) from None
    from pipeline.batch.transform import warehouse_path

    pg = PostgresService(settings)
    ep = pg.endpoint()
    kpis = headline_kpis(warehouse_path(settings))
    console.rule("[bold]Summary")
    where = f"{ep.address if ep else '-'}  database {settings.pg_database}, schema {settings.pg_schema}"
    console.print(f"PostgreSQL   {where}")
    console.print(f"Loaded       {summary.loaded:,} rows from {len(summary.results)} files; "
                  f"{summary.quarantined:,} quarantined")
    console.print(f"Bronze       {sum(r.bronze_rows for r in ingested):,} rows reconciled in "
                  f"s3://{settings.s3_bucket}/{settings.bronze_prefix}/")
    console.print(f"Gold KPIs    {kpis['orders']:,} orders, {kpis['order_items']:,} items, "
                  f"{kpis['products']:,} products, sales R$ {kpis['total_sales']:,.2f}, "
                  f"freight R$ {kpis['total_freight']:,.2f}, on time {kpis['on_time_rate']:.1%}")
    sim, tap = stream.simulation, stream.topic
    console.print(f"Streaming    {sim.changes:,} payment changes committed at {sim.achieved_rate:,.0f}/s; "
                  f"{tap.events:,} of {sim.changes:,} on {stream.raw_topic} (lag p50 {tap.percentile(50):,.0f} ms, "
                  f"p99 {tap.percentile(99):,.0f} ms)")
    console.print(f"Raw archive  {stream.archive.records:,} events in {len(stream.archive.files)} Parquet files "
                  f"under {stream.archive_uri}; {stream.archive.dead_lettered:,} dead-lettered")
    served = stream.served
    if served is not None:
        console.print(f"Serving      Flink windows -> {served.written:,} rows upserted in Cassandra; "
                      f"{len(windows):,} windows of the last 5 min read back; {served.dead_lettered:,} dead-lettered")
    console.print(f"Dashboards   [bold]{dashboard.url}[/] (sales, delivery, sellers, live payments)")
    console.print("Next         `olist status` to inspect, `olist simulate` for more changes, `olist down` to stop")
    if not stream.complete:
        raise fail(f"only {tap.events:,} of {sim.changes:,} committed changes reached {stream.raw_topic}")
    if summary.quarantined:
        raise typer.Exit(EXIT_QUARANTINED)


def run_streaming(settings: Settings):
    """The demo's streaming lane: connector, simulator (with a progress bar), tap and raw archive."""
    from pipeline.speed.lane import run_stream

    rate, seconds = settings.stream_rate, settings.stream_seconds
    with progress_bar() as bar:
        task = bar.add_task(f"simulating {rate:g} changes/s", total=int(rate * seconds))
        report = run_stream(settings, rate, seconds, settings.stream_seed,
                            progress=lambda done, _: bar.update(task, completed=done))
        bar.update(task, total=report.simulation.changes, completed=report.simulation.changes)
    return report


def print_latest_windows(settings: Settings, minutes: float = 5, shown: int = 12) -> list[dict]:
    """The newest windows read back from Cassandra, as a table; returns every window of the last ``minutes``."""
    from pipeline.speed.sink import latest_windows

    rows = latest_windows(settings, minutes)
    table = Table(title=f"Latest windows in Cassandra (olist_payments_aggregated_windowed, {len(rows):,} rows "
                  f"in the last {minutes:g} min)")
    for col in ("window end (UTC)", "payment type", "count", "sum", "avg", "min", "max"):
        table.add_column(col, justify="left" if col in ("window end (UTC)", "payment type") else "right")
    for r in rows[-shown:]:
        table.add_row(f"{r['window_end']:%H:%M:%S}", r["payment_type"], f"{r['payment_count']:,}",
                      f"{r['payment_sum']:,.2f}", f"{r['payment_avg']:,.2f}", f"{r['payment_min']:,.2f}",
                      f"{r['payment_max']:,.2f}")
    console.print(table)
    return rows


def headline_kpis(path: Path) -> dict:
    import duckdb

    # dbt, run in this process, may still hold the file open: connect with the same (default) settings.
    with duckdb.connect(str(path)) as con:
        cur = con.execute("select * from gold.mart_headline_kpis")
        names = [d[0] for d in cur.description]
        return dict(zip(names, cur.fetchone(), strict=True))
