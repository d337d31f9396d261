"""PostgreSQL from the machine's own packages, run as an unprivileged user on 127.0.0.1.

PostgreSQL refuses to run as root, and development and CI run as root: the server then runs as
``settings.pg_os_user`` (Debian's ``postgres``). When that user cannot reach the project folder
(a clone under a private temporary folder, say), the cluster lives in a folder of its own under
the system temp dir and ``.state/postgres/data`` links to it.

Two roles: the cluster's superuser (``settings.pg_admin_user``), used only to make roles and to drop
replication slots, and the pipeline's (``settings.pg_user``: no superuser, no CREATEDB/CREATEROLE), which owns
the database and everything in it; every client of :meth:`PostgresService.conninfo` is the pipeline. Passwords
reach the server as SCRAM verifiers made here, never in clear in SQL text.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import psutil
import psycopg
from psycopg import sql
from tenacity import retry, retry_if_exception, stop_after_delay, wait_fixed

from emulation.service import Endpoint, Service, ServiceError, kept_secret, write_private
from pipeline.settings import Settings

# Emulation tuning: durability off (a laptop cluster rebuilt at will), logical decoding on for CDC.
SERVER_CONF = {
    "listen_addresses": "'{host}'",
    "port": "{port}",
    "unix_socket_directories": "''",
    "wal_level": "logical",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_wal_size": "'4GB'",
    "checkpoint_timeout": "'30min'",
    "shared_buffers": "'256MB'",
    "maintenance_work_mem": "'256MB'",
    "log_min_messages": "warning",
    "log_connections": "off",
}


# Who may connect, written at every start: passwords (SCRAM) on loopback, the server's own OS user on the socket,
# and no physical replication for anyone. CDC decodes its publication over a database connection (a logical
# walsender matches the database lines); a base backup of the whole cluster (pg_basebackup) needs a
# `replication` line, and every one of those rejects.
HBA = """# Written by emulation/postgres.py at every start; edits are overwritten.
local   all          all                     peer
host    all          all        127.0.0.1/32 scram-sha-256
host    all          all        ::1/128      scram-sha-256
local   replication  all                     reject
host    replication  all        127.0.0.1/32 reject
host    replication  all        ::1/128      reject
"""

def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 secret PostgreSQL keeps for ``password`` (RFC 5802/7677), which ``PASSWORD '...'``
    accepts as is: the server never sees the password itself."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(hashlib.sha256(client_key).digest())}:{b64(server_key)}"


def find_bin_dir(configured: Path | None) -> Path:
    """The folder holding initdb/pg_ctl/postgres: the setting, else the newest Debian install."""
    if configured:
        candidates = [configured]
    else:
        candidates = sorted(
            Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True
        )
        which = shutil.which("pg_ctl")
        if which:
            candidates.append(Path(which).parent)
    for cand in candidates:
        if (cand / "pg_ctl").exists() and (cand / "initdb").exists():
            return cand
    raise ServiceError(
        "postgres: no PostgreSQL server binaries (initdb, pg_ctl) found; install Debian's "
        "postgresql package (the nox sessions do this as root) or set OLIST_PG_BIN_DIR"
    )


class AdminRefused(ServiceError):
    """The cluster refuses the superuser the settings name (made by an earlier release, or another password)."""


class PostgresService(Service):
    """A PostgreSQL cluster with ``wal_level=logical`` and the project's database."""

    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.state_dir)
        self.settings = settings
        self.run_as = settings.pg_os_user if os.geteuid() == 0 else None

    # -- paths ---------------------------------------------------------------------------------
    @property
    def runtime_dir(self) -> Path:
        if self.run_as is None or self._reachable_by_run_as(self.state_dir):
            return self.state_dir
        digest = hashlib.sha1(str(self.state_dir.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"olist-postgres-{digest}"

    @property
    def data_dir(self) -> Path:
        return self.runtime_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.runtime_dir / "postgres.log"


    def _reachable_by_run_as(self, path: Path) -> bool:
        """Can the service user traverse every folder down to ``path`` (which root then gives it)?"""
        path.mkdir(parents=True, exist_ok=True)
        return subprocess.run(["test", "-x", str(path)], user=self.run_as).returncode == 0

    # -- process helpers -----------------------------------------------------------------------
    def _run(self, *args: str | Path, check: bool = True, stdin: str | None = None
             ) -> subprocess.CompletedProcess[str]:
        cmd = [str(a) for a in args]
        proc = subprocess.run(
            cmd, user=self.run_as, capture_output=True, text=True, cwd="/", env=self._env(), check=False, input=stdin
        )
        if check and proc.returncode != 0:
            out = (proc.stderr or proc.stdout).strip()
            raise self.fail(f"{Path(cmd[0]).name} exited {proc.returncode}: {out}")
        return proc

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"
        if self.run_as:
            env["HOME"] = pwd.getpwnam(self.run_as).pw_dir
        return env

    def _own(self, path: Path) -> None:
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    # -- credentials ---------------------------------------------------------------------------
    def password(self) -> str:
        """The pipeline role's password: the setting, else generated once and kept (0600)."""
        return self.settings.pg_password or self._generated("password", "OLIST_PG_PASSWORD")

    def admin_password(self) -> str:
        """The superuser's password: the setting, else generated once and kept (0600)."""
        return self.settings.pg_admin_password or self._generated("admin_password", "OLIST_PG_ADMIN_PASSWORD")

    def check_credentials(self) -> None:
        for secret in (self.password, self.admin_password, self.cdc_password):
            secret()

    def cdc_password(self) -> str:
        """The CDC role's password: the setting, else generated once and kept (0600)."""
        return self.settings.pg_cdc_password or self._generated("cdc_password", "OLIST_PG_CDC_PASSWORD")

    def _generated(self, name: str, variable: str) -> str:
        if self.external:
            raise ServiceError(f"postgres: {variable} is not set; with OLIST_PG_DSN every role's password comes "
                               "from the settings")
        return kept_secret(self.state_dir / name)

    # -- Service interface ---------------------------------------------------------------------
    def configured(self) -> Endpoint | None:
        if not self.settings.pg_dsn:
            return None
        try:
            dsn = psycopg.conninfo.conninfo_to_dict(self.settings.pg_dsn)
        except psycopg.ProgrammingError as exc:
            raise ServiceError(f"postgres: OLIST_PG_DSN is not a connection string: {exc}") from None
        if "password" in dsn or "user" in dsn:
            raise ServiceError("postgres: OLIST_PG_DSN names a user or password; give them in OLIST_PG_USER and "
                               "OLIST_PG_PASSWORD (the admin's in OLIST_PG_ADMIN_*) instead")
        host, port = str(dsn.pop("host", "")), str(dsn.pop("port", "5432"))
        if not host or "," in host or "," in port:
            raise ServiceError(f"postgres: OLIST_PG_DSN needs one host and port (got host={host!r} port={port!r})")
        options = {k: str(v) for k, v in dsn.items() if k != "dbname"}  # sslmode, sslrootcert ... kept as given
        return Endpoint(host, int(port), {"dbname": str(dsn.get("dbname", self.settings.pg_database)),
                                          "user": self.settings.pg_user, "password": self.settings.pg_password or "",
                                          "options": json.dumps(options)})

    def endpoint_extra(self, saved: dict) -> dict[str, str]:
        return {"dbname": self.settings.pg_database, "user": self.settings.pg_user, "password": self.password()}

    def conninfo(self, dbname: str | None = None) -> str:
        """The pipeline role's connection."""
        return self._conninfo(self.settings.pg_user, self.password(), dbname, "olist")

    def admin_conninfo(self, dbname: str | None = None) -> str:
        """The superuser's connection: making roles, dropping replication slots; nothing the pipeline does."""
        return self._conninfo(self.settings.pg_admin_user, self.admin_password(), dbname, "olist-admin")

    def _conninfo(self, user: str, password: str, dbname: str | None, application: str) -> str:
        ep = self.endpoint()
        if ep is None:
            raise ServiceError("postgres: not started yet (run `olist up`)")
        options = {"connect_timeout": 5, **json.loads(ep.extra.get("options", "{}"))}
        return psycopg.conninfo.make_conninfo(host=ep.host, port=ep.port, dbname=dbname or ep.extra["dbname"],
                                              user=user, password=password, application_name=application, **options)

    def ensure_role(self, name: str, password: str, attributes: str) -> None:
        """Make (or update) login role ``name`` with ``attributes`` (``nosuperuser nocreatedb ...``), its password
        sent as a SCRAM verifier; as the superuser."""
        with psycopg.connect(self.admin_conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_roles where rolname = %s", (name,)).fetchone()
            conn.execute(sql.SQL(("alter" if exists else "create") + " role {} with login " + attributes
                                 + " password {}").format(sql.Identifier(name), sql.Literal(scram_verifier(password))))

    def pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        with contextlib.suppress(psutil.Error):
            if "postgres" in psutil.Process(pid).name():
                return pid
        return None

    def health(self) -> bool:
        try:
            with psycopg.connect(self.admin_conninfo("postgres")) as conn:
                return conn.execute("select 1").fetchone() == (1,)
        except (psycopg.Error, ServiceError):
            return False

    def start(self) -> Endpoint:
        if self.pid() is not None and self.health():
            ep = self.endpoint()
            assert ep is not None
            return ep
        bin_dir = find_bin_dir(self.settings.pg_bin_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        runtime = self.runtime_dir
        runtime.mkdir(parents=True, exist_ok=True)
        self._own(runtime)
        if runtime != self.state_dir:
            link = self.state_dir / "data"
            if not link.is_symlink():
                link.symlink_to(self.data_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bin_dir)
        port = self._choose_port()
        conf = {k: v.format(host=self.settings.bind_host, port=port) for k, v in SERVER_CONF.items()}
        conf["wal_writer_delay"] = f"'{self.settings.pg_wal_writer_delay_ms}ms'"
        (self.data_dir / "olist.conf").write_text("".join(f"{k} = {v}\n" for k, v in conf.items()))
        self._own(self.data_dir / "olist.conf")
        (self.data_dir / "pg_hba.conf").write_text(HBA)
        self._own(self.data_dir / "pg_hba.conf")
        self._save_endpoint(host=self.settings.bind_host, port=port)
        self._pg_ctl_start(bin_dir)
        try:
            self._wait_healthy()
        except AdminRefused:  # a cluster of an earlier release: its superuser is made (or given its password) here
            self.stop()
            self._set_admin(bin_dir)
            self._pg_ctl_start(bin_dir)
            self._wait_healthy()
        self._ensure_database()
        ep = self.endpoint()
        assert ep is not None
        return ep

    def _pg_ctl_start(self, bin_dir: Path) -> None:
        timeout = str(int(self.settings.service_start_timeout))
        proc = self._run(bin_dir / "pg_ctl", "-D", self.data_dir, "-l", self.log_path, "-w", "-t", timeout,
                         "start", check=False)
        if proc.returncode != 0:
            raise self.fail(f"pg_ctl start exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}")

    def _set_admin(self, bin_dir: Path) -> None:
        """Make the superuser, or give it the kept password, in single-user mode (the server stopped): a cluster made
        before the pipeline had its own roles, or one whose admin password is no longer the setting's. The data
        folder is ours; no other role or object is touched."""
        name = self.settings.pg_admin_user
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise self.fail(f"the superuser's name {name!r} is not a plain identifier")
        role = f'"{name}" WITH SUPERUSER LOGIN PASSWORD \'{scram_verifier(self.admin_password())}\''
        statement = (f"DO $olist$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN ALTER ROLE "
                     f"{role}; ELSE CREATE ROLE {role}; END IF; END $olist$;\n")
        proc = self._run(bin_dir / "postgres", "--single", "-D", self.data_dir, "postgres", stdin=statement,
                         check=False)
        if proc.returncode != 0 or "ERROR" in proc.stdout + proc.stderr:
            raise self.fail(f"single-user mode could not make the superuser {name!r}: "
                            f"{(proc.stderr or proc.stdout).strip()}")

    def stop(self) -> None:
        if self.pid() is None:
            return
        bin_dir = find_bin_dir(self.settings.pg_bin_dir)
        self._run(bin_dir / "pg_ctl", "-D", self.data_dir, "-m", "fast", "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        """Stop and delete the cluster and its state (tests and `olist down --purge`)."""
        self.stop()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- steps ---------------------------------------------------------------------------------
    def _initdb(self, bin_dir: Path) -> None:
        pwfile = self.runtime_dir / ".pwfile"
        write_private(pwfile, self.admin_password() + "\n")
        self._own(pwfile)
        try:
            self._run(bin_dir / "initdb", "-D", self.data_dir, "-U", self.settings.pg_admin_user,
                      f"--pwfile={pwfile}", "--auth-local=peer", "--auth-host=scram-sha-256",
                      "--encoding=UTF8", "--locale=C.UTF-8")
        finally:
            pwfile.unlink(missing_ok=True)
        main_conf = self.data_dir / "postgresql.conf"
        main_conf.write_text(main_conf.read_text() + "\ninclude_if_exists = 'olist.conf'\n")

    def _choose_port(self) -> int:
        return self._keep_ports(self.settings.bind_host, port=self.settings.pg_port)["port"]

    def _wait_healthy(self) -> None:
        @retry(stop=stop_after_delay(self.settings.service_start_timeout), wait=wait_fixed(0.2),
               retry=retry_if_exception(lambda e: isinstance(e, psycopg.OperationalError)
                                        and "password authentication failed" not in str(e)), reraise=True)
        def ping() -> None:
            with psycopg.connect(self.admin_conninfo("postgres")) as conn:
                conn.execute("select 1")

        try:
            ping()
        except psycopg.OperationalError as exc:
            if "password authentication failed" in str(exc):
                raise AdminRefused(str(self.fail(f"the cluster in {self.data_dir} refuses the superuser "
                                                 f"{self.settings.pg_admin_user!r} and its kept password"))) from exc
            ep = self.endpoint()
            raise self.fail(f"not answering on {ep.address if ep else '?'}: {exc}") from exc

    def _ensure_database(self) -> None:
        """The pipeline's role (login, nothing more) and its database, which it owns."""
        self.ensure_role(self.settings.pg_user, self.password(),
                         "nosuperuser nocreatedb nocreaterole noreplication nobypassrls")
        role, database = sql.Identifier(self.settings.pg_user), sql.Identifier(self.settings.pg_database)
        with psycopg.connect(self.admin_conninfo("postgres"), autocommit=True) as conn:
            owner = conn.execute("select pg_get_userbyid(datdba) from pg_database where datname = %s",
                                 (self.settings.pg_database,)).fetchone()
            if owner is None:
                conn.execute(sql.SQL("create database {} owner {}").format(database, role))
            elif owner[0] != self.settings.pg_user:
                conn.execute(sql.SQL("alter database {} owner to {}").format(database, role))
