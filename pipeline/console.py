"""What the CLI shows: rich progress for long work, and a renderer per report (tables and summary lines)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.errors import USER_ERRORS
from pipeline.settings import settings_problem

if TYPE_CHECKING:
    from pipeline.batch.generator import GenerateResult
    from pipeline.batch.lane import BatchReport, IngestReport, TransformReport
    from pipeline.batch.load import LoadSummary
    from pipeline.batch.promote import PromotionReport
    from pipeline.demo import DemoReport
    from pipeline.platform import DownReport, Started, StatusReport
    from pipeline.provision import ApplyReport, Plan, Step
    from pipeline.reconcile import ReconcileReport
    from pipeline.serving.live import LiveWindows
    from pipeline.speed.simulate import SimulationReport

# Wide enough for the summary tables when output goes to a file or CI log rather than a terminal.
console = Console(width=None if sys.stdout.isatty() else 130)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 130)


def progress_bar() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=False,
    )


class RichProgress:
    """:class:`pipeline.progress.Progress` on a rich progress display: one bar per task key."""

    def __init__(self) -> None:
        self.bar = progress_bar()
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> RichProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def update(self, key: str, *, description: str | None = None, completed: float | None = None,
               total: float | None = None, advance: float = 0) -> None:
        if key not in self.tasks:
            self.tasks[key] = self.bar.add_task(description or key, total=total)
        fields: dict[str, Any] = {"advance": advance}
        if description is not None:
            fields["description"] = description
        if completed is not None:
            fields["completed"] = completed
        if total is not None:
            fields["total"] = total
        self.bar.update(self.tasks[key], **fields)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _table(title: str, columns: Iterable[str], left: Iterable[str] = ()) -> Table:
    table = Table(title=title)
    keep_left = set(left)
    for col in columns:
        table.add_column(col, justify="left" if col in keep_left else "right")
    return table


# -- errors --------------------------------------------------------------------------------------


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def one_line_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Show the library's expected errors as one line and exit 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as exc:
            raise fail(str(exc)) from None
        except ValidationError as exc:  # a setting the environment gave a value it cannot take
            if (problem := settings_problem(exc)) is None:
                raise
            raise fail(problem) from None

    return wrapper


# -- batch lane ----------------------------------------------------------------------------------


def show_generated(result: GenerateResult, scale: float, seed: int, out: object) -> None:
    table = _table(f"Generated scale {scale} seed {seed} into {out}", ("file", "rows", "size"), ("file",))
    for stats in result.files.values():
        table.add_row(stats.path.name, f"{stats.rows:,}", human_bytes(stats.bytes))
    console.print(table)
    console.print(f"{result.total_rows:,} rows in {result.elapsed_seconds:.1f} s "
                  f"({result.rows_per_second:,.0f} rows/s)")


def show_load(summary: LoadSummary, quarantine_table: str) -> None:
    table = _table(f"Load run {summary.run_id[:8]}",
                   ("table", "read", "loaded", "inserted", "updated", "quarantined", "for a parent", "seconds"),
                   ("table",))
    for r in summary.results:
        table.add_row(r.table, f"{r.read:,}", f"{r.loaded:,}", f"{r.inserted:,}", f"{r.updated:,}",
                      f"{r.quarantined:,}", f"{r.quarantined_for_parent:,}", f"{r.seconds:.2f}",
                      style="yellow" if r.quarantined else None)
    console.print(table)
    apart = (f" ({summary.quarantined_for_parent:,} of them only because a row they reference was quarantined)"
             if summary.quarantined_for_parent else "")
    console.print(f"{summary.read:,} records read, {summary.loaded:,} loaded, "
                  f"{summary.quarantined:,} quarantined{apart} in {summary.seconds:.1f} s")
    shown = 0
    for r in summary.results:
        for bad in r.bad[: max(0, 10 - shown)]:
            console.print(f"  [yellow]quarantined[/] {r.source_file}:{bad.line}: {bad.reason}", highlight=False,
                          soft_wrap=True)
            shown += 1
    if summary.quarantined > shown:
        console.print(f"  ... {summary.quarantined - shown:,} more in table {quarantine_table}")


def show_ingest(report: IngestReport) -> None:
    table = _table(f"Ingested to {report.uri}", ("table", "mode", "copied", "files", "size", "postgres rows",
                                                  "bronze rows", "reconciled", "seconds"), ("table", "mode"))
    for r in report.tables:
        table.add_row(r.table, r.skipped or r.mode, f"{r.copied:,}", str(r.files), human_bytes(r.bytes),
                      f"{r.source_rows:,}", f"{r.bronze_rows:,}", "[green]yes" if r.reconciled else "[red]NO",
                      f"{r.seconds:.2f}")
    console.print(table)
    removed = report.orphans_removed
    console.print(f"{report.copied:,} rows copied in {report.seconds:.1f} s"
                  + (f"; {removed} uncommitted files of an interrupted run removed" if removed else ""))


def show_transform(report: TransformReport) -> None:
    if report.bronze_rows is not None:
        console.print(f"[green]✔[/] bronze refreshed from S3: {sum(report.bronze_rows.values()):,} rows in "
                      f"{len(report.bronze_rows)} tables")
    failed = report.failed
    verdict = "[green]all passed" if report.success else f"[red]{len(failed)} failed"
    console.print(f"dbt build on {report.target}: {report.models} models, {report.tests} tests in "
                  f"{report.seconds:.1f} s; {verdict}")
    for node, status, _, message in failed[:10]:
        console.print(f"  [red]{status}[/] {node}: {message.splitlines()[0] if message else ''}", soft_wrap=True)
    if report.run.error:
        console.print(f"  [red]{report.run.error}", soft_wrap=True)
    if report.docs:
        console.print(f"lineage docs: {report.docs} (serve with `dbt docs serve --project-dir dbt --profiles-dir dbt`)")
    if report.warehouse:
        console.print(f"warehouse: {report.warehouse}")


def show_batch(report: BatchReport, quarantine_table: str) -> None:
    show_load(report.load, quarantine_table)
    console.rule("[bold]Batch lane: PostgreSQL -> S3 bronze")
    show_ingest(report.ingest)
    console.rule("[bold]Batch lane: dbt bronze -> silver -> gold")
    show_transform(report.transform)


def show_promotion(report: PromotionReport) -> None:
    where = "fakesnow (Snowflake stand-in)" if report.stand_in else f"account {report.account}"
    console.print(f"[green]✔[/] bronze in Snowflake on {where}: {sum(report.bronze_rows.values()):,} rows in "
                  f"{len(report.bronze_rows)} tables ({report.bronze_load})")
    show_transform(report.transform)
    table = _table("Gold on DuckDB against gold on Snowflake", ("table", "duckdb rows", "snowflake rows", "identical"),
                   ("table",))
    for name, (left, right, same) in report.compared.items():
        table.add_row(name, f"{left:,}", f"{right:,}", "[green]yes" if same else "[red]NO")
    console.print(table)
    if report.identical:
        console.print(f"[green]✔[/] {len(report.compared)} gold tables identical on both targets")


# -- services ------------------------------------------------------------------------------------


def show_started(started: list[Started]) -> None:
    for s in started:
        note = f": {s.detail}" if s.detail else ""
        console.print(f"[green]✔[/] {s.name} on {s.address} ({s.seconds:.1f} s){note}")


def show_down(report: DownReport) -> None:
    for name in report.stopped:
        console.print(f"[green]✔[/] {name} stopped" + (" and purged" if report.purged else ""))
    for name in report.external:
        console.print(f"[dim]-[/] {name} left running (the deployment's, not ours)")


def show_status(report: StatusReport, connector_name: str) -> None:
    table = Table(title="Services")
    for col in ("service", "state", "endpoint", "pid", "detail", "log"):
        table.add_column(col)
    for st, log in report.services:
        state = "[green]healthy" if st.healthy else "[yellow]not answering" if st.running else "[dim]stopped"
        table.add_row(st.name, state, st.endpoint.address if st.endpoint else "-", str(st.pid or "-"),
                      st.detail or "-", str(log))
    if report.connector is not None:
        tasks = ", ".join(t["state"] for t in report.connector.get("tasks", []))
        table.add_row(f"└ {connector_name}", report.connector["connector"]["state"].lower(), "connector", "-",
                      "-", f"tasks: {tasks}")
    if report.flink_job is not None:
        job = report.flink_job
        tasks = job.get("tasks", {})
        running = f"tasks: {tasks.get('running', 0)}/{tasks.get('total', '?')} running; id {job.get('jid', '-')}"
        table.add_row(f"└ {job.get('name', 'flink job')}", str(job.get("state", "starting")).lower(), "flink job", "-",
                      "-", running)
    console.print(table)


# -- speed lane ----------------------------------------------------------------------------------


def show_simulation(report: SimulationReport) -> None:
    ops = ", ".join(f"{n:,} {k}" for k, n in sorted(report.operations.items()))
    rows = ", ".join(f"{n:,} {k}" for k, n in sorted(report.rows.items()))
    console.print(f"{report.changes:,} payment-row changes in {report.seconds:.1f} s: achieved "
                  f"{report.achieved_rate:,.0f}/s of {report.target_rate:g}/s target ({ops}; rows: {rows})")


def show_windows(rows: list[dict[str, Any]], title: str, shown: int = 12) -> None:
    table = _table(title, ("window end (UTC)", "layer", "payment type", "count", "sum", "avg", "min", "max"),
                   ("window end (UTC)", "layer", "payment type"))
    for r in rows[-shown:]:
        table.add_row(f"{r['window_end']:%H:%M:%S}", r.get("layer", "speed"), r["payment_type"],
                      f"{r['payment_count']:,}", f"{r['payment_sum']:,.2f}", f"{r['payment_avg']:,.2f}",
                      f"{r['payment_min']:,.2f}", f"{r['payment_max']:,.2f}")
    console.print(table)


# -- the demo ------------------------------------------------------------------------------------


def show_demo(report: DemoReport) -> None:
    from pipeline.contracts import stream_names

    s = report.settings
    show_started(report.services)
    if report.generated:
        show_generated(report.generated, s.scale, s.seed, s.data_dir)
    if report.batch:
        show_batch(report.batch, f"{s.pg_schema}.{s.quarantine_table}")
    if report.stream:
        console.rule("[bold]Speed lane: PostgreSQL -> Debezium -> Kafka -> Flink -> Cassandra (+ S3 archive)")
        show_windows(report.windows, f"Latest windows ({stream_names().aggregated}, {len(report.windows):,} rows in "
                                     f"the last {report.windows_minutes:g} min: batch layer up to its watermark, "
                                     "speed layer after)")
    console.rule("[bold]Summary")
    pg = next((x.address for x in report.services if x.name == "postgres"), "-")
    console.print(f"PostgreSQL   {pg}  database {s.pg_database}, schema {s.pg_schema}")
    if report.batch:
        b = report.batch
        console.print(f"Loaded       {b.load.loaded:,} rows from {len(b.load.results)} files; "
                      f"{b.load.quarantined:,} quarantined")
        console.print(f"Bronze       {b.ingest.bronze_rows:,} rows reconciled in {b.ingest.uri}")
        if k := b.kpis:
            console.print(f"Gold KPIs    {k['orders']:,} orders, {k['order_items']:,} items, {k['products']:,} "
                          f"products, sales R$ {k['total_sales']:,.2f}, freight R$ {k['total_freight']:,.2f}, "
                          f"on time {k['on_time_rate']:.1%}")
    if st := report.stream:
        sim, tap = st.simulation, st.topic
        console.print(f"Streaming    {sim.changes:,} payment changes committed at {sim.achieved_rate:,.0f}/s; "
                      f"{st.delivered:,} of {sim.changes:,} on {st.raw_topic} (lag p50 {tap.percentile(50):,.0f} ms, "
                      f"p99 {tap.percentile(99):,.0f} ms)")
        console.print(f"Raw archive  {st.archive.records:,} events in {len(st.archive.files)} Parquet files under "
                      f"{st.archive_uri}; {st.archive.dead_lettered:,} dead-lettered")
        if served := st.served:
            console.print(f"Serving      Flink windows -> {served.written:,} rows upserted in Cassandra; "
                          f"{len(report.windows):,} windows of the last {report.windows_minutes:g} min read back; "
                          f"{served.dead_lettered:,} dead-lettered")
    if report.dashboard_url:
        console.print(f"Dashboards   [bold]{report.dashboard_url}[/] (sales, delivery, sellers, live payments)")
        console.print("Next         `olist status` to inspect, `olist simulate` for more changes, `olist down` to stop")


# -- the lambda as one system --------------------------------------------------------------------


def show_reconcile(report: ReconcileReport) -> None:
    table = _table(f"Batch view (raw archive, dbt) against speed view (Cassandra); cut at offsets "
                   f"{report.archived_through}, newest archived commit {report.watermark or '-'}",
                   ("view", "windows compared", "equal", "different"), ("view",))
    for view, compared in report.compared.items():
        different = compared - report.equal.get(view, 0)
        table.add_row(view, f"{compared:,}", f"{report.equal.get(view, 0):,}",
                      f"[red]{different:,}" if different else "0")
    console.print(table)
    console.print(f"{report.open_windows:,} windows touched by changes after the cut left out (still open)")
    for diff in report.differences[:50]:
        console.print(f"  [red]differs[/] {diff}", highlight=False, soft_wrap=True)
    if len(report.differences) > 50:
        console.print(f"  ... {len(report.differences) - 50:,} more")
    if report.ok:
        console.print(f"[green]✔[/] {sum(report.compared.values()):,} windows equal in both layers")


def show_live(view: LiveWindows) -> None:
    if view.error:
        console.print(f"[yellow]no live windows:[/] {view.error}")
        return
    show_windows(view.aggregated, f"Live windows (batch layer up to {view.batch_watermark or '-'}, speed layer after)",
                 shown=24)
    if view.reconciliation is not None:
        rec = view.reconciliation
        verdict = "equal" if rec.ok else f"{len(rec.differences)} differences"
        console.print(f"last reconciliation {rec.reconciled_at}: {sum(rec.compared.values()):,} windows, {verdict}")


# -- provisioning ----------------------------------------------------------------------------------

VERDICT_STYLE = {"compatible": "green", "backfill": "yellow", "replay": "yellow", "breaking": "bold red"}


def _steps_table(title: str, steps: list[Step], seconds: dict[int, float] | None = None) -> Table:
    table = _table(title, ("engine", "object", "step", "verdict", *(("seconds",) if seconds is not None else ())),
                   ("engine", "object", "step", "verdict"))
    for i, step in enumerate(steps):
        verdict = f"[{VERDICT_STYLE[step.verdict]}]{step.verdict}[/]" + (" (creates)" if step.creates else "")
        table.add_row(step.engine, step.target, step.action, verdict,
                      *((f"{seconds[i]:.2f}",) if seconds is not None else ()))
    return table


def _details(steps: list[Step]) -> None:
    for step in steps:
        if step.detail:
            console.print(f"  [{VERDICT_STYLE[step.verdict]}]{step.verdict}[/] {step}: {step.detail}",
                          highlight=False, soft_wrap=True)


def count(n: int, noun: str) -> str:
    """'1 step', '2 steps'."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def show_plan(plan: Plan) -> None:
    for engine, why in plan.skipped.items():
        console.print(f"[yellow]skipped[/] {engine}: {why}", highlight=False)
    if plan.converged:
        console.print("[green]✔[/] every engine read matches the contracts and the settings: nothing to do")
        return
    console.print(_steps_table(f"Plan: {count(len(plan.steps), 'step')}", plan.steps))
    _details(plan.steps)
    if plan.breaking:
        console.print(f"[bold red]✘[/] {len(plan.breaking)} breaking: `olist apply` refuses the whole plan")
    else:
        console.print(f"{count(len(plan.compatible), 'compatible step')}: `olist apply` makes them online"
                      + (f"; {len(plan.recompute)} recompute data (`olist apply --recompute`)" if plan.recompute
                         else ""))


def show_apply(report: ApplyReport) -> None:
    for engine, why in report.plan.skipped.items():
        console.print(f"[yellow]skipped[/] {engine}: {why}", highlight=False)
    if report.refused:
        console.print(_steps_table("Refused: breaking steps (nothing was applied)", report.refused))
        _details(report.refused)
        return
    if report.applied:
        console.print(_steps_table(f"Applied {count(len(report.applied), 'step')}",
                                   [a.step for a in report.applied], {i: a.seconds for i, a in
                                                                      enumerate(report.applied)}))
    if report.left:
        console.print(_steps_table("Left: they recompute data (`olist apply --recompute` runs them)", report.left))
        _details(report.left)
    console.print(f"[green]✔[/] {count(len(report.applied), 'step')} applied in {report.seconds:.1f} s"
                  if report.applied else "[green]✔[/] nothing to apply: every engine read matches the contracts")
