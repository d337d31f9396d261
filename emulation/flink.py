"""The Flink job of the streaming lane (flink/payments_windows.py) as a local service: PyFlink in its own
virtualenv, the job on a local mini-cluster in one background process, its REST API on 127.0.0.1.

PyFlink pins clash with dbt's (apache-beam pins protobuf < 6, numpy < 2.2), so the job never runs in the
project's environment: :func:`ensure_venv` creates ``<cache>/flink-venv-<hash of flink/requirements.txt>``
once (``uv venv`` + ``uv pip install``, else ``python -m venv`` + pip; about 850 MB) and reuses it after,
outside the work tree like the JVM jars. The Kafka SQL connector jar comes from the ``flink`` Maven profile.

Healthy means: the process runs, the mini-cluster's REST API answers, and the job is RUNNING with every
task running (so it reads and, on each checkpoint, commits its results).

With ``OLIST_FLINK_MODE=session`` the job is submitted instead to the session cluster at ``OLIST_FLINK_REST_URL``
(emulation/flink_session.py runs one locally) with the venv's ``flink run``, attached: the supervised program is the
client (through :func:`emulation.flink_session.attach`), the job script its Python driver, which reports its state
and stops with a savepoint as on a mini-cluster; health is read from the cluster's REST API, for the job this service
submitted. Checkpoints and savepoints stay in the service's ``job_dir`` on ``file://``: the cluster must be on this
machine (retaining them on S3 for a cluster elsewhere is not done here).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulation import flink_session, venvs
from emulation.jvm import fetch
from emulation.kafka import KafkaService
from emulation.resources import engine
from emulation.service import Endpoint, ServiceError, host_port, write_private
from emulation.supervisor import SupervisedService
from pipeline.settings import PROJECT_ROOT, FlinkSettings, Settings

FLINK_DIR = PROJECT_ROOT / "flink"
JOB = FLINK_DIR / "payments_windows.py"
REQUIREMENTS = FLINK_DIR / "requirements.txt"
# The Kafka SQL connector jar shades the Kafka client: its JAAS login modules are under this prefix.
SHADED_SCRAM_MODULE = "org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram.ScramLoginModule"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- the virtualenv ------------------------------------------------------------------------------


def ensure_venv(settings: FlinkSettings | None = None, requirements: Path = REQUIREMENTS) -> Path:
    """The python of the Flink venv, created on first call (idempotent, safe across processes)."""
    settings = settings or Settings().flink
    return venvs.ensure_venv("flink", requirements, base=settings.venv_base, python=settings.python,
                             timeout=settings.venv_timeout, check="import pyflink.table")


def job_arguments(flink: FlinkSettings) -> list[str]:
    """The job's tuning as its command-line options, from the settings (the one place they are declared)."""
    return ["--group-id", flink.group_id, "--startup-mode", flink.startup_mode,
            "--window-seconds", str(flink.window_seconds),
            "--watermark-delay-seconds", str(flink.watermark_delay_seconds),
            "--checkpoint-interval-seconds", str(flink.checkpoint_interval_seconds),
            "--state-ttl", flink.state_ttl, "--transaction-timeout-ms", str(flink.transaction_timeout_ms),
            "--parallelism", str(flink.parallelism), "--restart-attempts", str(flink.restart_attempts),
            "--mini-batch-latency-ms", str(flink.mini_batch_latency_ms)]


def write_kafka_properties(kafka: KafkaService, path: Path, principal: str = "flink") -> Path:
    """The job's Kafka client properties as ``principal`` (``--kafka-properties``), in a 0600 file."""
    write_private(path, json.dumps(kafka.java_security(principal, login_module=SHADED_SCRAM_MODULE)))
    return path


# -- the service ---------------------------------------------------------------------------------


def inputs_key(flink: FlinkSettings) -> str:
    """What the job's compiled plan is compiled from: its code, its generated SQL and its options (a change to any of
    them is compiled again to see whether the plan, and so the state, changed)."""
    digest = hashlib.sha256(JOB.read_bytes())
    for path in sorted((PROJECT_ROOT / "contracts" / "generated" / "flink").iterdir()):
        digest.update(path.read_bytes())
    digest.update(" ".join(job_arguments(flink)).encode())
    return digest.hexdigest()[:12]


# Node types whose operators keep state without listing it in the plan (the sources' offsets, the sinks' pending
# transactions, an OVER aggregate's accumulators), beside those that list it under "state".
_STATEFUL_TYPES = ("table-source-scan", "sink", "over-aggregate")


@dataclass(frozen=True)
class CompiledPlan:
    """The job's compiled plan (Flink's JSON: its ExecNodes, with versions, state and edges) and the topics its tables
    name: the view the job computes. Its state belongs to it: a savepoint restores into the same plan (its operators'
    uids are the nodes'), a job whose plan changed must recompute its view."""

    path: Path
    topics: tuple[tuple[str, str], ...] = ()  # (table, topic) of every Kafka table: the plan names tables only

    @functools.cached_property
    def document(self) -> dict[str, Any]:
        return json.loads(self.path.read_text(encoding="utf-8"))

    @property
    def flink_version(self) -> str:
        return str(self.document.get("flinkVersion"))

    @property
    def nodes(self) -> dict[int, dict[str, Any]]:
        return {n["id"]: n for n in self.document["nodes"]}

    @property
    def key(self) -> str:
        """The view's identity: the plan without the Flink version that compiled it, and its topics."""
        plan = {k: v for k, v in self.document.items() if k != "flinkVersion"}
        body = json.dumps({"plan": plan, "topics": self.topics}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:12]

    @staticmethod
    def describe(node: dict[str, Any]) -> str:
        kind = re.sub(r"^stream-exec-|_\d+$", "", node["type"])
        state = [s["name"] for s in node.get("state", [])]
        return f"{node['id']} {kind}" + (f" ({', '.join(state)})" if state else "")

    def stateful(self) -> list[str]:
        return [self.describe(n) for n in self.nodes.values()
                if n.get("state") or any(t in n["type"] for t in _STATEFUL_TYPES)]

    def changes(self, other: CompiledPlan) -> list[str]:
        """How ``other`` differs from this plan, node by node (by id), and in its topics."""
        mine, theirs = self.nodes, other.nodes
        out = [f"{self.describe(theirs[i])} added" for i in sorted(set(theirs) - set(mine))]
        out += [f"{self.describe(mine[i])} removed" for i in sorted(set(mine) - set(theirs))]
        for i in sorted(set(mine) & set(theirs)):
            if mine[i] != theirs[i]:
                fields = sorted(k for k in {*mine[i], *theirs[i]} if k != "description" and mine[i].get(k)
                                != theirs[i].get(k))
                out.append(f"{self.describe(theirs[i])}: {', '.join(fields) or 'description'} changed")
        if self.document.get("edges") != other.document.get("edges"):
            out.append("edges changed")
        out += [f"table {t} writes {topic} (was {dict(self.topics).get(t)})" for t, topic in other.topics
                if dict(self.topics).get(t) != topic]
        return out


def job_topics() -> dict[str, str]:
    """The job's Kafka tables and the contract topic each reads or writes (``contracts/generated/flink/job.json``)."""
    roles = json.loads((PROJECT_ROOT / "contracts" / "generated" / "flink" / "job.json").read_text(encoding="utf-8"))
    sinks = ("aggregated", "installments", "late")
    return {roles["events"]: roles["source_topic"], **{roles[r]: roles[r] for r in sinks}}


def topic_arguments(topics: dict[str, str]) -> list[str]:
    """The job's ``--topic CONTRACT_TOPIC=TOPIC`` options for these overrides."""
    return [arg for topic, other in topics.items() for arg in ("--topic", f"{topic}={other}")]


def compile_plan(flink: FlinkSettings, connector_jar: Path, target: Path, topics: dict[str, str] | None = None,
                 timeout: float = 300) -> None:
    """Compile the job's plan into ``target`` with the Flink venv (no broker needed; about 10 s for its JVM)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    overrides = topic_arguments(topics or {})
    with tempfile.TemporaryDirectory(prefix="olist-flink-compile-") as tmp:
        out = Path(tmp) / "plan.json"
        cmd = [str(ensure_venv(flink)), str(JOB), *job_arguments(flink), "--bootstrap", "127.0.0.1:9",
               "--connector-jar", str(connector_jar), "--state-dir", tmp, *overrides, "--compile-plan", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **({"JVM_ARGS": flink.jvm_opts} if flink.jvm_opts else {})})
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise ServiceError(f"flink: compiling the job's plan failed: {' | '.join(tail)}")
        shutil.move(out, target)


def newest_state(state_dir: Path) -> Path | None:
    """The newest savepoint or retained checkpoint under ``state_dir`` that is complete (holds ``_metadata``;
    a newer ``chk-N`` without it was still being written when the job stopped)."""
    complete = [m.parent for pattern in ("savepoints/*/_metadata", "checkpoints/*/chk-*/_metadata")
                for m in state_dir.glob(pattern)]
    return max(complete, key=lambda d: d.joinpath("_metadata").stat().st_mtime, default=None)


class FlinkJobService(SupervisedService):
    """The payments-windows job on a local mini-cluster (or submitted to a session cluster), a program of the
    supervisor: restarted after a failure (or a ``kill -9``), resuming from its newest savepoint or retained
    checkpoint; stopped with a savepoint."""

    name = "flink"
    program = "flink"
    stop_wait = 90  # it takes a savepoint

    def __init__(self, settings: Settings, source_topic: str = "the source topic") -> None:
        super().__init__(settings)
        self.flink = settings.flink
        self.kafka = engine("kafka", settings)
        self.source_topic = source_topic  # what the job reads (its generated SQL names it), as the caller names it

    def prepare(self) -> None:
        """What must exist before the job starts, made by the caller: the job's topics (its sinks, compacted ones above
        all) are the contracts', so the platform's service (``pipeline.speed.services.FlinkService``) creates them;
        here nothing."""

    @property
    def status_file(self) -> Path:
        return self.state_dir / "status.json"

    @property
    def topics(self) -> dict[str, str]:
        """Topics the job reads or writes instead of the contracts' (``--topic``): none here."""
        return {}

    def compiled_plan(self) -> CompiledPlan:
        """The job's plan as its code, SQL and options are now: compiled once per set of inputs (``inputs_key``) and
        kept under ``compiled/``."""
        path = self.state_dir / "compiled" / f"{inputs_key(self.flink)}-{self._topics_key()}.json"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with (path.parent / ".lock").open("w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not path.exists():
                    compile_plan(self.flink, self._connector_jar(), path, self.topics)
        topics = {table: self.topics.get(topic, topic) for table, topic in job_topics().items()}
        return CompiledPlan(path, tuple(sorted(topics.items())))

    def _topics_key(self) -> str:
        return hashlib.sha256(json.dumps(self.topics, sort_keys=True).encode()).hexdigest()[:6]

    @property
    def job_dir(self) -> Path:
        """Checkpoints, savepoints and the compiled plan of the job's view as its plan is now (``CompiledPlan.key``)."""
        return self.state_dir / "jobs" / self.compiled_plan().key

    @property
    def session(self) -> bool:
        return self.flink.mode == "session"

    def job_status(self) -> dict[str, Any]:
        """What the job last reported (state, job id, REST URL, what it resumed from), or {} before its first report."""
        with contextlib.suppress(OSError, ValueError):
            status = json.loads(self.status_file.read_text())
            return (status | {"rest_url": self.flink.rest_url}) if self.session else status
        return {}

    # -- Service interface ---------------------------------------------------------------------
    def endpoint_extra(self, saved: dict) -> dict[str, str]:
        return {"url": saved.get("url") or f"http://{saved['host']}:{saved['port']}",
                "bootstrap_servers": saved["bootstrap"]}

    def health(self) -> bool:
        """The cluster (the mini-cluster, or the session cluster at rest_url) answers and the job (there: the one this
        service submitted) is RUNNING with all its tasks running."""
        return self.pid() is not None and self.running_job() is not None

    def running_job(self) -> dict[str, Any] | None:
        overview = self._rest("/jobs/overview")
        jobs = (overview or {}).get("jobs", [])
        if self.session:  # a cluster others may use too: only the job this service submitted
            jobs = [job for job in jobs if job.get("jid") == self.job_status().get("job_id")]
        for job in jobs:
            tasks = job.get("tasks", {})
            if job.get("state") == "RUNNING" and tasks.get("total") and tasks.get("running") == tasks.get("total"):
                return job
        return None

    def start(self) -> Endpoint:
        if self.pid() is not None:
            self._wait_running(time.monotonic())
            return self._require_endpoint()
        if not self.kafka.health():
            raise self.fail("Kafka is not answering; start it first (`olist up kafka`)")
        self.prepare()
        ensure_venv(self.flink)  # here, so a slow first install and its errors show where they were asked for
        self._connector_jar()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.session:
            self._save_session_endpoint()
            self.end_unattended_job()  # before its job id is forgotten with the status file
        else:
            port = self._keep_ports("127.0.0.1", port=self.flink.rest_port)["port"]
            self._save_endpoint(host="127.0.0.1", port=port, bootstrap=self.kafka.bootstrap_servers())
        self.status_file.unlink(missing_ok=True)
        started = time.monotonic()
        self.start_program()
        self._wait_running(started)
        return self._require_endpoint()

    def job_command(self) -> tuple[list[str], str]:
        """The job's command line for this start (in the supervisor's program), and what it resumes from."""
        saved = self._saved_endpoint()
        if saved is None:
            raise self.fail("no endpoint file: start the job with `olist up flink`")
        if self.session:
            self.end_unattended_job()  # its client was killed: the job ran on without it
        plan = self.job_plan()
        restore = newest_state(self.job_dir)
        self._prune(keep=restore)
        cmd = [*(self._session_command(saved) if self.session else self._local_command(saved)), "--plan", str(plan)]
        if restore is None:
            return cmd, f"no savepoint or checkpoint: reading {self.source_topic} from the {self.flink.startup_mode}"
        kind = "savepoint" if restore.parent.name == "savepoints" else "checkpoint"
        return [*cmd, "--restore", str(restore)], f"resuming from {kind} {restore}"

    def job_plan(self) -> Path:
        """The compiled plan the job runs: the one its view's state was first made by (kept in ``job_dir``, so a later
        Flink restores a savepoint into the same operators), else the plan as it is now."""
        compiled = self.compiled_plan()
        kept = self.job_dir / "plan.json"
        if not kept.exists():
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(compiled.path, kept.with_suffix(".tmp"))
            kept.with_suffix(".tmp").replace(kept)
        return kept

    def _local_command(self, saved: dict) -> list[str]:
        """The job script on a mini-cluster of its own, its REST API on the saved port."""
        return [str(ensure_venv(self.flink)), "-u", str(JOB), *job_arguments(self.flink), "--bootstrap",
                saved["bootstrap"], "--connector-jar", str(self._connector_jar()), "--transactional-id-prefix",
                self.flink.transactional_id_prefix, "--state-dir", str(self.job_dir), "--rest-port",
                str(saved["port"]), "--status-file", str(self.status_file),
                "--kafka-properties", str(write_kafka_properties(self.kafka, self.state_dir / "kafka.json")),
                *topic_arguments(self.topics)]

    def _session_command(self, saved: dict) -> list[str]:
        """``flink run`` of the job script to the session cluster, attached, under the signal-passing wrapper; the
        connector jar shipped with ``-j``, the job's options after ``--`` (``--restore`` is appended to them)."""
        python = ensure_venv(self.flink)
        client = [str(flink_session.pyflink_dir(self.flink) / "bin" / "flink"), "run", "-m",
                  f"{saved['host']}:{saved['port']}", "-pyclientexec", str(python), "-py", str(JOB),
                  "-j", str(self._connector_jar()), "--", *job_arguments(self.flink),
                  "--bootstrap", saved["bootstrap"], "--transactional-id-prefix", self.flink.transactional_id_prefix,
                  "--state-dir", str(self.job_dir), "--status-file", str(self.status_file),
                  "--kafka-properties", str(write_kafka_properties(self.kafka, self.state_dir / "kafka.json")),
                  *topic_arguments(self.topics)]
        return [sys.executable, "-m", "emulation.flink_session", "attach", str(JOB), *client]

    def job_environment(self) -> dict[str, str]:
        """What the job's process adds to its environment: the JVM's options, which PyFlink reads as JVM_ARGS (and,
        for ``flink run``, its own conf folder)."""
        if self.session:
            return flink_session.client_environment(self.flink, self.state_dir / "client-conf")
        return {"JVM_ARGS": self.flink.jvm_opts} if self.flink.jvm_opts else {}

    def stop(self) -> None:
        """Stop the job with a savepoint (in session mode also a job of ours that outlived its client)."""
        super().stop()
        if self.session:
            self.end_unattended_job()

    def destroy(self) -> None:
        """Stop (with a savepoint) and delete the job's state (checkpoints, savepoints, logs)."""
        self.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- session mode --------------------------------------------------------------------------
    def end_unattended_job(self) -> str | None:
        """Session mode: stop the job this service submitted last if it still runs on the cluster although no client
        of ours does (the client was killed; a session cluster keeps its jobs), with a savepoint in ``job_dir``, so
        the next submission resumes from it instead of running beside it. The savepoint's location; None when
        there was no such job, or it could only be cancelled (its retained checkpoints stay)."""
        jid, url = self.job_status().get("job_id"), self.flink.rest_url
        if not jid or not url or flink_session.job_state(url, jid) in (None, *flink_session.ENDED):
            return None
        return flink_session.stop_job(url, jid, self.job_dir / "savepoints")

    def _save_session_endpoint(self) -> None:
        url = str(self.flink.rest_url).rstrip("/")
        if "flink-version" not in (flink_session.rest(url, "/overview") or {}):
            raise self.fail(f"the session cluster at {url} is not answering (OLIST_FLINK_REST_URL)")
        host, port = host_port(url.removeprefix("http://"), 8081)
        self._save_endpoint(host=host, port=port, url=url, bootstrap=self.kafka.bootstrap_servers())

    # -- plumbing ------------------------------------------------------------------------------
    def _prune(self, keep: Path | None) -> None:
        """Forget the state of other plans, and every savepoint and checkpoint but the one resumed from (each run
        checkpoints under its own job id)."""
        for plan in (self.state_dir / "jobs").glob("*"):
            if plan != self.job_dir:
                shutil.rmtree(plan, ignore_errors=True)
        for old in [*(self.job_dir / "checkpoints").glob("*"), *(self.job_dir / "savepoints").glob("*")]:
            if keep is None or (old != keep and old not in keep.parents):
                shutil.rmtree(old, ignore_errors=True)

    def _connector_jar(self) -> Path:
        jar = next(iter(sorted(fetch(self.settings.jvm).lib("flink").glob("flink-sql-connector-kafka-*.jar"))), None)
        if jar is None:
            raise self.fail("no flink-sql-connector-kafka jar in the `flink` Maven profile")
        return jar

    def _wait_running(self, started: float) -> None:
        deadline = started + self.flink.start_timeout
        while time.monotonic() < deadline:
            if self.health():
                return
            info = self.supervisor.program(self.program)
            if info is not None and info.state in ("FATAL", "STOPPED"):
                raise self.fail(f"the job is {info.state} ({self.job_status().get('error', 'see the log')})")
            if self.job_status().get("state") in ("FAILED", "CANCELED"):
                raise self.fail(f"the job {self.job_status()['state']}: {self.job_status().get('error', '')}")
            time.sleep(0.5)
        raise self.fail(f"the job is not RUNNING after {self.flink.start_timeout:.0f}s ({self.job_status()})")

    def _rest(self, path: str) -> Any:
        ep = self.endpoint()
        if ep is None:
            return None
        try:
            with _NO_PROXY.open(ep.extra["url"] + path, timeout=3) as resp:
                return json.loads(resp.read())
        except (OSError, ValueError, urllib.error.URLError):
            return None
