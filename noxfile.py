"""Every entry point: `nox -s demo` runs the platform, `nox -s tests` runs every check CI runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["tests"]

PYTHON = "3.11"
WORKERS = os.environ.get("OLIST_TEST_WORKERS", "2")  # pytest-xdist workers for `nox -s tests`
ROOT = Path(__file__).parent
# Debian packages the engines need, by the binary that proves they are there.
SYSTEM_PACKAGES = {
    "postgresql": ["/usr/lib/postgresql/*/bin/pg_ctl"],
    "openjdk-17-jre-headless": ["/usr/bin/java"],
    "maven": ["/usr/bin/mvn"],
    "chromium": ["/usr/bin/chromium"],
}


def ensure_system_packages(session: nox.Session) -> None:
    """Install missing Debian packages (as root, the way CI and a fresh machine run)."""
    missing = [pkg for pkg, globs in SYSTEM_PACKAGES.items()
               if not any(any(Path("/").glob(g.lstrip("/"))) for g in globs)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        session.error(f"missing system packages {missing}: install them with your package manager")
    session.run("apt-get", "update", "-qq", external=True)
    session.run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, external=True,
                env={"DEBIAN_FRONTEND": "noninteractive"})


def contracts_base() -> str | None:
    """What `olist contracts diff` compares with: OLIST_CONTRACTS_BASE, else the merge base with origin/main
    (a branch), else the previous commit (main itself); None in a one-commit or shallow clone."""
    if base := os.environ.get("OLIST_CONTRACTS_BASE"):
        return base

    def git(*args: str) -> str | None:
        proc = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)
        return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None

    head, merge_base = git("rev-parse", "HEAD"), git("merge-base", "HEAD", "origin/main")
    if merge_base and merge_base != head:
        return merge_base
    return git("rev-parse", "--verify", "-q", "HEAD~1")


def contracts_diff(session: nox.Session) -> None:
    if base := contracts_base():
        session.run("olist", "contracts", "diff", base)
    else:
        session.log("contracts diff skipped: no earlier commit to compare with (a one-commit or shallow clone)")


def install(session: nox.Session, *extras: str) -> None:
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff, then the contracts: lint and generated-artifact drift."""
    install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("olist", "contracts", "lint")
    session.run("olist", "contracts", "check")
    contracts_diff(session)


def pytest(session: nox.Session, *paths: str, extras: tuple[str, ...] = ("test",)) -> None:
    install(session, *extras)
    ensure_system_packages(session)
    session.run("pytest", *paths, *session.posargs)


@nox.session(python=PYTHON)
def unit(session: nox.Session) -> None:
    """Unit and property tests: no engine needed."""
    pytest(session, "tests/unit")


@nox.session(python=PYTHON)
def integration(session: nox.Session) -> None:
    """Tests against real engines started by emulation/."""
    pytest(session, "tests/integration")


@nox.session(python=PYTHON)
def e2e(session: nox.Session) -> None:
    """Whole lanes end to end."""
    pytest(session, "tests/e2e", extras=("test", "snowflake"))


def images_for_containers(session: nox.Session) -> None:
    """The containers backend's images (emulation/images.py: podman from apt, a debootstrapped base, PostgreSQL and
    LocalStack; each step skipped when done, nothing with a Docker engine), so its tests run instead of skipping.
    In CI they must build; elsewhere a machine that cannot (not root) is told why and its tests skip."""
    session.run("python", "-m", "emulation.images", *([] if os.environ.get("CI") else ["--if-possible"]))


@nox.session(python=PYTHON)
def images(session: nox.Session) -> None:
    """Build the containers backend's images here, where no image registry is reachable (cached: a second run
    skips every step)."""
    install(session, "containers")
    session.run("python", "-m", "emulation.images")


@nox.session(python=PYTHON)
def containers(session: nox.Session) -> None:
    """The batch lane's integration tests on both engines backends (processes, containers), images built first
    (CI runs it after `nox -s tests`)."""
    install(session, "test")
    ensure_system_packages(session)
    images_for_containers(session)
    session.run("pytest", "tests/integration/test_containers_backend.py", "tests/integration/test_load_postgres.py",
                "tests/integration/test_ingest.py", "tests/integration/test_s3_emulators.py", "--durations=10",
                *session.posargs)


CHANGE = "tests/e2e/test_contract_change.py"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Lint, contract checks, unit, integration and end-to-end tests. The batch lane's tests also run on the containers
    backend where its images are built (`nox -s images`; else they skip, saying so): building them costs a fresh
    machine about 4.5 minutes, so CI does it in `nox -s containers`, after this."""
    install(session, "test", "lint", "snowflake")
    ensure_system_packages(session)
    session.run("ruff", "check", ".")
    session.run("olist", "contracts", "lint")
    session.run("olist", "contracts", "check")
    contracts_diff(session)  # a breaking change without a major version fails CI
    # Two workers, each taking whole files (a module's engines stay in one process): the engines of one wait on
    # start-up or on a stream while the other's run, so the two cores are both busy. The engines' JVMs compile with
    # C1 alone (tests/conftest.py says why).
    session.env["OLIST_TEST_C1"] = "1"
    session.run("pytest", "tests", "--ignore=tests/faults", f"--ignore={CHANGE}", "--durations=25", "-n", WORKERS,
                "--dist", "loadfile", *session.posargs)


@nox.session(python=PYTHON)
def change(session: nox.Session) -> None:
    """Change rehearsed end to end (CI runs it after `nox -s tests`): the previous release's platform upgraded by
    `olist apply`, then a new column, a new payment type, a tenth table and a refused breaking change, each
    applied while the simulator trades. A whole platform of its own, so it runs alone rather than beside the
    suite's two workers."""
    install(session, "test", "snowflake")
    ensure_system_packages(session)
    session.env["OLIST_TEST_C1"] = "1"
    session.run("pytest", CHANGE, "-v", "--durations=0", *session.posargs)


@nox.session(python=PYTHON)
def fuzz(session: nox.Session) -> None:
    """The fuzzers on a long profile: thousands of mutated CSV files through the loader, hundreds into PostgreSQL,
    and tens of batches of bad events straight onto the raw topic of a running lane."""
    session.env |= {"OLIST_FUZZ_EXAMPLES": os.environ.get("OLIST_FUZZ_EXAMPLES", "3000"),
                    "OLIST_FUZZ_LOAD_EXAMPLES": os.environ.get("OLIST_FUZZ_LOAD_EXAMPLES", "300"),
                    "OLIST_FUZZ_EVENT_EXAMPLES": os.environ.get("OLIST_FUZZ_EVENT_EXAMPLES", "25")}
    pytest(session, "tests/unit/test_loader_fuzz.py", "tests/integration/test_load_fuzz.py",
           "tests/e2e/test_streaming_exact.py")


@nox.session(python=PYTHON)
def browser(session: nox.Session) -> None:
    """The browser suite ten times in a row while another process keeps one core busy (steadiness, not speed)."""
    install(session, "test")
    session.install("pytest-repeat==0.9.4")
    ensure_system_packages(session)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        session.run("pytest", "tests/e2e/test_dashboard.py", "--count", os.environ.get("OLIST_BROWSER_RUNS", "10"),
                    *session.posargs)
    finally:
        busy.kill()


@nox.session(python=PYTHON)
def faults(session: nox.Session) -> None:
    """Fault injection on the speed lane: each component killed with SIGKILL mid-stream, results exact after."""
    pytest(session, "tests/faults", "-s")


@nox.session(python=PYTHON)
def cluster(session: nox.Session) -> None:
    """The production topology on loopback (3 Kafka nodes, 2 Connect workers, a Flink session cluster, 3 Cassandra
    nodes, PostgreSQL, S3; about 5 GB): the exact streaming scenario on it by settings alone, then each kind of node
    killed mid-stream (about 9 minutes; CI runs it after the fault suite)."""
    install(session, "test")
    ensure_system_packages(session)
    session.run("pytest", "tests/e2e/test_streaming_exact.py", "tests/faults/test_faults.py", "-s", *session.posargs,
                env={"OLIST_TEST_DEPLOYMENT": "cluster"})


@nox.session(python=PYTHON)
def promote(session: nox.Session) -> None:
    """Rehearse the Snowflake promotion offline: the batch lane on DuckDB, then the same dbt models on
    fakesnow (or on the account in SNOWFLAKE_* when set), every gold table compared."""
    install(session, "snowflake")
    ensure_system_packages(session)
    session.run("olist", "demo")
    try:
        session.run("olist", "promote")
    finally:
        session.run("olist", "down")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The platform on its embedded defaults (services stay up; `olist down` stops them)."""
    install(session)
    ensure_system_packages(session)
    session.run("olist", "demo", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks: each prints ratios against a baseline run in the same process."""
    install(session, "test", "bench")
    ensure_system_packages(session)
    session.env["PYTHONPATH"] = str(ROOT)  # the benches import the tests' reference and fixtures
    session.run("python", "tests/bench/bench_load.py", *session.posargs)
    session.run("python", "tests/bench/bench_batch.py", *session.posargs)
    session.run("python", "tests/bench/bench_cdc.py", *session.posargs)
    session.run("python", "tests/bench/bench_streaming.py", *session.posargs)
    session.run("python", "tests/bench/bench_streaming_cost.py", *session.posargs)
    session.run("python", "tests/bench/bench_replay.py", *session.posargs)
