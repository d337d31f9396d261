"""The streaming lane's Flink job: payments per tumbling window of commit time, from the Debezium changelog of
``olist.order_payments`` to the windowed topics, exactly once; changes that arrive behind the watermark are
applied too and reported to ``olist_payments_late_events``.

Runs with PyFlink 2.2 (its own environment, see requirements.txt) and the Kafka SQL connector jar::

    python flink/payments_windows.py --bootstrap 127.0.0.1:9092 --connector-jar flink-sql-connector-kafka.jar

on a local mini-cluster, or unchanged on a cluster with ``flink run -py flink/payments_windows.py
-j flink-sql-connector-kafka.jar -- --bootstrap ...``. Every option has an ``OLIST_FLINK_*`` environment
variable (``--window-seconds`` is ``OLIST_FLINK_WINDOW_SECONDS``). The tables' DDL is not written here: it
is generated from the contracts into ``contracts/generated/flink/*.sql`` and only templated with the options.

Semantics (see flink/README.md): snapshot reads (op = r) are history, not live payments, and are left out;
each payment keeps its last streamed change in topic order, so an update retracts the payment's previous
version from the window of ITS commit time and adds the new version to the window of the update's commit time,
and a delete retracts the current version. Each window record is therefore, at any time, the aggregate of the
payments whose current streamed version was committed in that window; records are updated (upsert, tombstone
when a key empties), never final.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import string
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
SQL_DIR = HERE.parent / "contracts" / "generated" / "flink"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"OLIST_FLINK_{name.upper().replace('-', '_')}", default)


def _tuning(p: argparse.ArgumentParser, flag: str, kind: type, help: str) -> None:
    """An option without a default of its own: the caller (emulation/flink.py, from the settings) passes it, or
    its OLIST_FLINK_* variable gives it."""
    value = _env(flag.removeprefix("--"))
    p.add_argument(flag, type=kind, default=None if value is None else kind(value), required=value is None, help=help)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bootstrap", default=_env("bootstrap"), help="Kafka bootstrap servers (required)")
    p.add_argument(
        "--connector-jar",
        default=_env("connector_jar"),
        help="the flink-sql-connector-kafka jar (local runs; on a cluster pass it with `flink run -j`)",
    )
    _tuning(p, "--group-id", str, "consumer group prefix (one group per source table)")
    _tuning(p, "--startup-mode", str, "earliest-offset, latest-offset, group-offsets, ...")
    _tuning(p, "--window-seconds", Decimal, "tumbling window size")
    _tuning(p, "--watermark-delay-seconds", Decimal, "bounded out-of-orderness of commit times")
    _tuning(p, "--checkpoint-interval-seconds", float, "results are committed on checkpoints")
    _tuning(p, "--state-ttl", str, "idle state retention (e.g. '7 d'); 0 keeps every key's state (exact, unbounded)")
    _tuning(p, "--transaction-timeout-ms", int, "at most the broker's transaction.max.timeout.ms (15 min by default)")
    _tuning(p, "--parallelism", int, "default parallelism")
    _tuning(p, "--mini-batch-latency-ms", int, "0: off; else the operators buffer changes this long and emit each "
            "key once (two-phase aggregation)")
    _tuning(p, "--restart-attempts", int, "restarts after a failure (-1: unbounded, exponential backoff; 0: none)")
    p.add_argument("--transactional-id-prefix", default=_env("transactional_id_prefix", "olist-flink"))
    p.add_argument(
        "--state-dir",
        default=_env("state_dir"),
        help="checkpoints go to STATE_DIR/checkpoints (default: a new temporary folder)",
    )
    p.add_argument(
        "--rest-port",
        type=int,
        default=int(_env("rest_port", "0")),
        help="the mini-cluster's REST API on 127.0.0.1 (0: none)",
    )
    p.add_argument(
        "--status-file", default=_env("status_file"), help="JSON file the job keeps up to date: state, job id, REST URL"
    )
    p.add_argument("--restore", default=_env("restore"), help="a savepoint or retained checkpoint to resume from")
    p.add_argument(
        "--kafka-properties",
        default=_env("kafka_properties"),
        help="JSON file of Kafka client properties (security.protocol, sasl.mechanism, sasl.jaas.config, ...) for "
        "every Kafka table: the credentials stay out of the command line",
    )
    p.add_argument("--sql-dir", default=_env("sql_dir", str(SQL_DIR)), help="the generated DDL")
    p.add_argument(
        "--bounded",
        action="store_true",
        default=_env("bounded", "") in ("1", "true"),
        help="read the source topic up to its current end offsets, then finish (tests)",
    )
    p.add_argument("--start-offsets", default=_env("start_offsets"), metavar="PARTITION:OFFSET[,...]",
                   help="read the source topic from these offsets (a replay's live tail, after the archive's end)")
    p.add_argument("--fresh-source", action="store_true", default=_env("fresh_source", "") in ("1", "true"),
                   help="with --plan and --restore: the source starts anew (from --start-offsets) and every other "
                   "operator takes its state; the plan's source node gets a new id, so its uid and old state go")
    p.add_argument("--explain", action="store_true", help="print the job's optimised plan and exit (no broker needed)")
    p.add_argument("--compile-plan", metavar="FILE", help="write the job's compiled plan (JSON) to FILE and exit (no "
                   "broker needed): what its state belongs to")
    p.add_argument("--plan", default=_env("plan"), metavar="FILE",
                   help="run this compiled plan instead of compiling the SQL: its operators keep the uids of the "
                   "plan's nodes, so a savepoint of it restores here, under a later Flink too")
    p.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="CONTRACT_TOPIC=TOPIC",
        help="read or write another topic instead of a contract's (tests); repeatable",
    )
    args = p.parse_args(argv)
    if not args.bootstrap:
        p.error("--bootstrap (or OLIST_FLINK_BOOTSTRAP) is required")
    args.topics = dict(t.split("=", 1) for t in args.topic)
    return args


# -- SQL -----------------------------------------------------------------------------------------


def load_ddl(sql_dir: Path, values: dict[str, str]) -> list[str]:
    """Every CREATE TABLE of the generated files, templated with the connection options."""
    statements = []
    for path in sorted(sql_dir.glob("*.sql")):
        text = string.Template(path.read_text(encoding="utf-8")).substitute(values)
        body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
        statements += [s.strip() for s in body.split(";\n") if s.strip().rstrip(";").strip()]
    return [s.rstrip(";") for s in statements]


def kafka_access(ddl: list[str], path: str | None) -> list[str]:
    """``ALTER TABLE ... SET`` statements giving every Kafka table the client properties in ``path`` (none without
    one): the deployment's security settings, kept out of the generated DDL."""
    if not path:
        return []
    props = json.loads(Path(path).read_text(encoding="utf-8"))
    options = ", ".join(f"'properties.{k}' = '{str(v).replace(chr(39), chr(39) * 2)}'" for k, v in props.items())
    tables = [m.group(1) for s in ddl if "'connector' = 'kafka'" in s or "'connector' = 'upsert-kafka'" in s
              if (m := re.match(r"CREATE TABLE `([^`]+)`", s))]
    return [f"ALTER TABLE `{t}` SET ({options})" for t in tables]


def job_tables(sql_dir: Path) -> dict[str, str]:
    """The tables by role (source_topic, changelog, events, aggregated, installments, late), generated from the
    contracts beside the DDL."""
    return json.loads((sql_dir / "job.json").read_text(encoding="utf-8"))


CURRENT = "current_payments"
ROW = "COALESCE(`after`, `before`)"  # the row an event is about: the new image, or the old one of a delete


def ms(seconds: float | Decimal) -> int:
    """Seconds as whole milliseconds (rounded: 1.005 s is 1005 ms)."""
    return round(seconds * 1000)


def valid(args: argparse.Namespace) -> str:
    """The condition under which an event counts, generated from the contracts (pipeline/contracts/row_rules.py):
    a known op, a commit time, its key and (unless a delete) an after image meeting the row's rules. Others (a
    record breaking the topic's contract) are skipped, not fatal; the raw archive dead-letters them with the
    reason, and the batch recompute applies the same rules."""
    return job_tables(Path(args.sql_dir))["valid_event"]


def views(args: argparse.Namespace) -> list[str]:
    """The view both window aggregates read: each payment's current streamed version, with its window.

    Snapshot reads (op = r) are history, not live payments: they are left out before the versions are kept, so
    a payment that only the snapshot saw counts nowhere, its later update counts in the update's window, its
    delete removes nothing, and a re-snapshot changes no window. Each key keeps its last streamed event in topic
    order (arrival time; the topic has one partition), which also folds Debezium's at-least-once repeats; a
    delete as the last event removes the payment."""
    t = job_tables(Path(args.sql_dir))
    size_ms = ms(args.window_seconds)
    row = ROW
    streamed = f"""
        SELECT {row}.order_id AS order_id, CAST({row}.payment_sequential AS INT) AS payment_sequential, op,
               `after`.payment_type AS payment_type, `after`.payment_installments AS payment_installments,
               `after`.payment_value AS payment_value, `source`.ts_ms AS commit_ms, proc_time
        FROM `{t["events"]}`
        WHERE op <> 'r' AND {valid(args)}"""
    return [f"""
        CREATE TEMPORARY VIEW `{CURRENT}` AS
        SELECT payment_type, CAST(payment_installments AS INT) AS payment_installments, payment_value,
               CAST(TO_TIMESTAMP_LTZ(commit_ms - MOD(commit_ms, {size_ms}), 3) AS TIMESTAMP(3)) AS window_start,
               CAST(TO_TIMESTAMP_LTZ(commit_ms - MOD(commit_ms, {size_ms}) + {size_ms}, 3) AS TIMESTAMP(3))
                   AS window_end
        FROM (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY order_id, payment_sequential ORDER BY proc_time DESC) AS version
            FROM ({streamed})
        )
        WHERE version = 1 AND op <> 'd'"""]


def table_overrides(args: argparse.Namespace) -> list[str]:
    """``ALTER TABLE ... SET`` for each ``--topic`` given and for ``--bounded``: in the catalog, not query hints, so a
    compiled plan (which names its tables, not their options) runs on them too."""
    t = job_tables(Path(args.sql_dir))
    tables = {t["source_topic"]: t["events"], **{t[role]: t[role] for role in ("aggregated", "installments", "late")}}
    unknown = set(args.topics) - set(tables)
    if unknown:
        raise SystemExit(f"--topic: {', '.join(sorted(unknown))} is not a topic of the job ({', '.join(tables)})")
    out = [f"ALTER TABLE `{tables[topic]}` SET ('topic' = '{other}')" for topic, other in args.topics.items()]
    if args.bounded:
        out.append(f"ALTER TABLE `{t['events']}` SET ('scan.bounded.mode' = 'latest-offset')")
    if args.start_offsets:
        offsets = ";".join(f"partition:{p},offset:{o}" for p, o in
                           (item.split(":") for item in args.start_offsets.split(",")))
        out.append(f"ALTER TABLE `{t['events']}` SET ('scan.startup.mode' = 'specific-offsets', "
                   f"'scan.startup.specific-offsets' = '{offsets}')")
    return out


def fresh_source(plan: dict) -> dict:
    """The plan with its source scan under a new node id (so a new operator uid): restored from a savepoint of the
    plan, the source's state (the splits and offsets of what it read before) is left unclaimed and it starts from its
    table's startup options, while every other operator (same id, same uid) takes its state."""
    ids = [n["id"] for n in plan["nodes"]]
    fresh = {n["id"]: max(ids) + 1 + i for i, n in enumerate(
        n for n in plan["nodes"] if n["type"].startswith("stream-exec-table-source-scan"))}
    nodes = [{**n, "id": fresh.get(n["id"], n["id"])} for n in plan["nodes"]]
    edges = [{**e, "source": fresh.get(e["source"], e["source"]), "target": fresh.get(e["target"], e["target"])}
             for e in plan["edges"]]
    return {**plan, "nodes": nodes, "edges": edges}


def queries(args: argparse.Namespace) -> list[str]:
    """The three INSERTs of the job's one statement set (the aggregates over :func:`views`)."""
    t = job_tables(Path(args.sql_dir))
    size_ms = ms(args.window_seconds)

    def sink(name: str) -> str:
        return f"`{name}`"

    # window_end is part of the group (and so of the upsert key): the sinks' key names the window whole.
    aggregated = f"""
        INSERT INTO {sink(t["aggregated"])} (window_start, window_end, payment_type, payment_count, payment_sum,
                                        payment_avg, payment_min, payment_max)
        SELECT window_start, window_end, payment_type, COUNT(*), CAST(SUM(payment_value) AS DECIMAL(14, 2)),
               CAST(SUM(payment_value) AS DOUBLE) / COUNT(*), MIN(payment_value), MAX(payment_value)
        FROM `{CURRENT}`
        GROUP BY window_start, window_end, payment_type"""
    installments = f"""
        INSERT INTO {sink(t["installments"])} (window_start, window_end, payment_type, payment_installments,
                                          installment_count)
        SELECT window_start, window_end, payment_type, payment_installments, COUNT(*)
        FROM `{CURRENT}`
        GROUP BY window_start, window_end, payment_type, payment_installments"""
    row = ROW
    delay_ms = ms(args.watermark_delay_seconds)
    # The watermark before each event: the newest commit time of every earlier record in topic order (arrival
    # time; one partition) less the delay. A running MAX in checkpointed state, not Flink's watermark: a restart
    # resumes it, and a mini-batch assigner cannot replace it. Including the event itself changes nothing for a
    # late one (it is not the newest), and makes no event the newest late. A change is reported once: Debezium
    # is at-least-once, and a late change delivered again (same key, op, commit time and log position) is counted
    # by a second running count, per change and over the late ones only, and dropped. (Not ROW_NUMBER's keep-first
    # deduplication: with mini-batch on, Flink makes that an updating stream, which the append topic refuses.)
    late = f"""
        INSERT INTO {sink(t["late"])} (order_id, payment_sequential, op, payment_type, commit_time, window_start,
                                  watermark_time)
        SELECT order_id, payment_sequential, op, payment_type, CAST(TO_TIMESTAMP_LTZ(commit_ms, 3) AS TIMESTAMP(3)),
               CAST(TO_TIMESTAMP_LTZ(commit_ms - MOD(commit_ms, {size_ms}), 3) AS TIMESTAMP(3)),
               CAST(TO_TIMESTAMP_LTZ(newest_ms - {delay_ms}, 3) AS TIMESTAMP(3))
        FROM (
            SELECT *, COUNT(*) OVER (PARTITION BY order_id, payment_sequential, op, commit_ms, lsn
                                     ORDER BY proc_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS delivery
            FROM (
                SELECT {row}.order_id AS order_id, CAST({row}.payment_sequential AS INT) AS payment_sequential, op,
                       {row}.payment_type AS payment_type, `source`.ts_ms AS commit_ms, `source`.lsn AS lsn,
                       proc_time, ({valid(args)}) AS counts,
                       MAX(COALESCE(`source`.ts_ms, 0)) OVER (
                           ORDER BY proc_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS newest_ms
                FROM `{t["events"]}`
            )
            WHERE op <> 'r' AND counts IS TRUE AND commit_ms < newest_ms - {delay_ms}
        )
        WHERE delivery = 1"""
    return [aggregated, installments, late]


def configuration(args: argparse.Namespace) -> dict[str, str]:
    conf = {
        "table.local-time-zone": "UTC",
        "parallelism.default": str(args.parallelism),
        "pipeline.name": "olist-payments-windows",
        # A compiled plan names its tables, not their options: those (connection, credentials) come from the DDL
        # of the run that executes it.
        "table.plan.compile.catalog-objects": "IDENTIFIER",
        "table.exec.state.ttl": args.state_ttl,
        # Mini-batch: the deduplication and the aggregates fold a key's changes before they emit (two-phase);
        # off, only the upsert sinks fold them in their buffer.
        "table.exec.mini-batch.enabled": "true" if args.mini_batch_latency_ms else "false",
        "table.optimizer.agg-phase-strategy": "TWO_PHASE" if args.mini_batch_latency_ms else "ONE_PHASE",
        "execution.checkpointing.interval": f"{ms(args.checkpoint_interval_seconds)} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.min-pause": "0 ms",
        # A cancel or a kill leaves the newest checkpoints on disk: the next start resumes from them.
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "3",
    }
    if args.mini_batch_latency_ms:
        conf |= {"table.exec.mini-batch.allow-latency": f"{args.mini_batch_latency_ms} ms",
                 "table.exec.mini-batch.size": "5000"}
    if args.restart_attempts < 0:  # unbounded: 1 s, 2 s, 4 s ... at most 30 s between attempts
        conf |= {"restart-strategy.type": "exponential-delay",
                 "restart-strategy.exponential-delay.initial-backoff": "1 s",
                 "restart-strategy.exponential-delay.max-backoff": "30 s",
                 "restart-strategy.exponential-delay.backoff-multiplier": "2.0",
                 "restart-strategy.exponential-delay.reset-backoff-threshold": "60 s",
                 "restart-strategy.exponential-delay.attempts-before-reset-backoff": "2147483647"}
    elif args.restart_attempts == 0:
        conf["restart-strategy.type"] = "none"
    else:
        conf |= {"restart-strategy.type": "fixed-delay", "restart-strategy.fixed-delay.delay": "2 s",
                 "restart-strategy.fixed-delay.attempts": str(args.restart_attempts)}
    if args.restore:
        conf["execution.state-recovery.path"] = Path(args.restore).resolve().as_uri()
        if args.fresh_source:  # the old source's state has no operator to go to
            conf["execution.state-recovery.ignore-unclaimed-state"] = "true"
    if args.connector_jar:
        conf["pipeline.jars"] = Path(args.connector_jar).resolve().as_uri()
    # Checkpoints on a file system always (the default JobManager storage caps state at 5 MB).
    state_dir = Path(args.state_dir or tempfile.mkdtemp(prefix="olist-flink-")).resolve()
    conf["execution.checkpointing.dir"] = (state_dir / "checkpoints").as_uri()
    conf["execution.checkpointing.savepoint-dir"] = (state_dir / "savepoints").as_uri()
    # Every socket of the mini-cluster on loopback: the BLOB server binds jobmanager.bind-host (the wildcard
    # otherwise), the TaskManager its own; RPC and the REST API their addresses.
    conf |= {"jobmanager.bind-host": "127.0.0.1", "jobmanager.rpc.address": "127.0.0.1",
             "taskmanager.bind-host": "127.0.0.1", "taskmanager.host": "127.0.0.1",
             "rest.bind-address": "127.0.0.1", "rest.address": "127.0.0.1"}
    if args.rest_port:
        conf["rest.port"] = str(args.rest_port)
    return conf


# -- running -------------------------------------------------------------------------------------


class Status:
    """The job's state for whoever started it (the emulation service): written atomically as JSON."""

    def __init__(self, path: str | None, rest_port: int) -> None:
        self.path = Path(path) if path else None
        self.fields: dict[str, object] = {
            "pid": os.getpid(),
            "rest_url": f"http://127.0.0.1:{rest_port}" if rest_port else None,
        }

    def write(self, **fields: object) -> None:
        self.fields |= fields | {"updated": time.time()}
        print(json.dumps(self.fields), flush=True)
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.fields))
            tmp.replace(self.path)


def stop_with_savepoint(client: object, state_dir: Path) -> str:
    """Stop the job with a canonical savepoint under STATE_DIR/savepoints; its path. (PyFlink 2.2's
    ``JobClient.stop_with_savepoint`` calls a Java signature that no longer exists, so the Java client is used.)"""
    from pyflink.java_gateway import get_gateway

    canonical = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType.CANONICAL
    future = client._j_job_client.stopWithSavepoint(False, (state_dir.resolve() / "savepoints").as_uri(), canonical)
    return str(future.get())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    status = Status(args.status_file, args.rest_port)
    status.write(state="STARTING", restored_from=args.restore)
    # A pure-SQL job runs no Python code: no Beam worker pool (PyFlink starts one on a local mini-cluster, on
    # every interface, running whatever it is sent, unauthenticated). The variable is the one PyFlink's own tests
    # set to skip it.
    os.environ.setdefault("_python_worker_execution_mode", "process")
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    for key, value in configuration(args).items():
        env.get_config().set(key, value)
    values = {
        "bootstrap_servers": args.bootstrap,
        "group_id": args.group_id,
        "startup_mode": args.startup_mode,
        "transactional_id_prefix": args.transactional_id_prefix,
        "transaction_timeout_ms": str(args.transaction_timeout_ms),
    }
    ddl = load_ddl(Path(args.sql_dir), values)
    for statement in [*ddl, *kafka_access(ddl, args.kafka_properties), *table_overrides(args), *views(args)]:
        env.execute_sql(statement)
    statements = env.create_statement_set()
    for sql in queries(args):
        statements.add_insert_sql(sql)
    if args.explain:
        print(statements.explain(), flush=True)
        return 0
    if args.compile_plan:
        Path(args.compile_plan).write_text(statements.compile_plan().as_json_string(), encoding="utf-8")
        return 0
    if args.plan:
        from pyflink.table import PlanReference
        from pyflink.table.compiled_plan import CompiledPlan

        # PyFlink 2.2's load_plan hands its plan the Java environment, whose execute() then fails
        # (`_before_execute` does not exist): the same plan, with the Python one.
        reference = PlanReference.from_file(args.plan)
        if args.fresh_source:
            reference = PlanReference.from_json_string(json.dumps(fresh_source(json.loads(
                Path(args.plan).read_text(encoding="utf-8")))))
        j_plan = env._j_tenv.loadPlan(reference._j_plan_reference)
        result = CompiledPlan(j_compiled_plan=j_plan, t_env=env).execute()
    else:
        result = statements.execute()
    client = result.get_job_client()
    job_id = str(client.get_job_id()) if client else None
    status.write(state="SUBMITTED", job_id=job_id)

    def stop(signum: int, _frame: object) -> None:
        """Stop with a savepoint (the next start resumes from it); cancel if that fails (checkpoints stay)."""
        status.write(state="STOPPING")
        if client is not None:
            try:
                status.write(state="STOPPED", savepoint=stop_with_savepoint(client, Path(args.state_dir)))
                os._exit(0)
            except Exception as exc:  # a savepoint is best effort: the retained checkpoints remain
                print(f"stop with savepoint failed ({exc}); cancelling", file=sys.stderr, flush=True)
            try:
                client.cancel().result()
            except Exception as exc:  # leaving anyway
                print(f"cancel failed: {exc}", file=sys.stderr, flush=True)
        status.write(state="CANCELED")
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    last = None
    while client is not None:  # report the job's state as it changes (RUNNING once scheduled)
        try:
            state = str(client.get_job_status().result()).rsplit(".", 1)[-1]
        except Exception:  # the job is gone: its result says how it ended
            break
        if state != last:
            status.write(state=state)
            last = state
        if state in ("FINISHED", "FAILED", "CANCELED"):
            break
        time.sleep(0.5)
    try:
        result.wait()
    except Exception as exc:  # report, then fail
        status.write(state="FAILED", error=str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__)
        raise
    status.write(state="FINISHED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
