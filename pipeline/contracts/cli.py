"""`olist contracts`: lint, generate, check and diff the data contracts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.console import console, err_console
from pipeline.contracts.registry import ContractError

contracts_app = typer.Typer(help="Lint, generate, check and diff the data contracts.", no_args_is_help=True)


@contracts_app.command("lint")
def contracts_lint() -> None:
    """Validate every contract: ODCS JSON Schema, cross-references, keys and enums."""
    from pipeline.contracts import load_registry
    from pipeline.contracts.lint import lint

    issues = lint()
    for issue in issues:
        err_console.print(f"[red]✘[/] {issue}", highlight=False, soft_wrap=True)
    if issues:
        raise typer.Exit(1)
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
    """List changes since REF; exit 1 when any is breaking and its contract's major version did not rise."""
    from pipeline.contracts import load_registry
    from pipeline.contracts.diff import diff, registry_at_ref

    try:
        changes = diff(registry_at_ref(ref), load_registry())
    except ContractError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    for change in changes:
        console.print(f"[{'red' if change.breaking else 'green'}]{change}", highlight=False)
    breaking = [c for c in changes if c.breaking]
    failing = [c for c in breaking if c.fails]
    console.print(f"{len(changes)} changes since {ref}, {len(breaking)} breaking"
                  + (f" ({len(breaking) - len(failing)} announced by a major version)" if len(failing) < len(breaking)
                     else ""))
    if failing:
        raise typer.Exit(1)


@contracts_app.command("datacontract")
def contracts_datacontract(
    postgres: Annotated[bool, typer.Option("--postgres", help="Also `datacontract test` the loaded tables.")] = False,
    bronze: Annotated[bool, typer.Option("--bronze", help="Also `datacontract test` the bronze layer on S3 (each "
                                         "table's current state, as staging reads it).")] = False,
) -> None:
    """The field's own tool on every contract: `datacontract lint`, and `datacontract test` on PostgreSQL and on the
    bronze Parquet on S3."""
    from pipeline.contracts import datacontract_cli as datacontract
    from pipeline.settings import get_settings

    reports = [datacontract.lint()]
    if postgres:
        reports.append(datacontract.check_postgres(get_settings()))
    if bronze:
        reports.append(datacontract.check_bronze(get_settings()))
    for report in reports:
        for check in report.problems:
            err_console.print(f"[red]✘[/] {check.result}: {Path(check.file).name}: {check.field or '-'}: "
                              f"{check.check}: {check.reason}", highlight=False, soft_wrap=True)
        unseen = sum(c.across_contracts for c in report.checks)
        console.print(f"datacontract {report.mode}: {report.files} contracts, {report.passed} checks passed, "
                      f"{len(report.problems)} not"
                      + (f", {unseen} relationships to other contracts left to `olist contracts lint` and dbt"
                         if unseen else ""))
    if any(r.problems for r in reports):
        raise typer.Exit(1)
