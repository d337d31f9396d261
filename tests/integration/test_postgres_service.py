"""The PostgreSQL service on a real server: start, health, settings, restart, failure reporting."""

from __future__ import annotations

import socket

import psutil
import psycopg
import pytest

from emulation.resources import engine
from emulation.service import ServiceError
from pipeline.settings import Settings

pytestmark = pytest.mark.integration


def test_running_server_is_healthy_on_loopback_with_logical_wal(postgres):
    st = postgres.status()
    assert st.running and st.healthy
    assert st.endpoint.host == "127.0.0.1"
    with psycopg.connect(postgres.conninfo()) as conn:
        settings = dict(conn.execute(
            "select name, setting from pg_settings where name in ('wal_level', 'listen_addresses')").fetchall())
    assert settings == {"wal_level": "logical", "listen_addresses": "127.0.0.1"}
    assert psutil.Process(st.pid).uids().real != 0, "PostgreSQL must not run as root"


def test_the_pipeline_role_owns_its_database_but_is_no_superuser(postgres, test_settings):
    """Every client of conninfo() is the pipeline's role: it owns the database (so it makes its schemas, tables
    and publication) and cannot make roles or databases, read the server's files, or log in without its
    password; only the superuser's own connection may."""
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        attributes = conn.execute("select rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls "
                                  "from pg_roles where rolname = current_user").fetchone()
        assert attributes == (False, False, False, False, False)
        owner = conn.execute("select pg_get_userbyid(datdba) from pg_database where datname = current_database()")
        assert owner.fetchone() == (test_settings.pg_user,)
        conn.execute("create schema if not exists owned_by_pipeline; drop schema owned_by_pipeline")
        for forbidden in ("create role intruder", "create database intruder", "select pg_read_file('PG_VERSION')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(forbidden)
    with psycopg.connect(postgres.admin_conninfo(), autocommit=True) as conn:
        assert conn.execute("select rolsuper from pg_roles where rolname = current_user").fetchone() == (True,)
    ep = postgres.endpoint()
    for user in (test_settings.pg_user, test_settings.pg_admin_user):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(host=ep.host, port=ep.port, user=user, dbname="postgres", password="wrong",
                            connect_timeout=5)


def test_stop_then_start_keeps_data(test_settings, tmp_path):
    settings = test_settings.model_copy(update={"state_dir": test_settings.state_dir / "restart"})
    svc = engine("postgres", settings)
    try:
        svc.start()
        with psycopg.connect(svc.conninfo(), autocommit=True) as conn:
            conn.execute("create table kept (x int); insert into kept values (42)")
        svc.stop()
        assert svc.status().running is False
        assert svc.pid() is None
        svc.stop()  # stopping a stopped service is a no-op
        svc.start()
        with psycopg.connect(svc.conninfo()) as conn:
            assert conn.execute("select x from kept").fetchone() == (42,)
        assert "database system is ready" in svc.logs(200)
    finally:
        svc.destroy()


def test_a_server_that_cannot_start_says_why_with_its_log(test_settings):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = test_settings.model_copy(
            update={"state_dir": test_settings.state_dir / "busy", "pg_port": port, "service_start_timeout": 10})
        svc = engine("postgres", settings)
        try:
            with pytest.raises(ServiceError) as err:
                svc.start()
            text = str(err.value)
            assert text.startswith("postgres: ")
            assert "last lines of" in text and "could not" in text.lower()
        finally:
            svc.destroy()


def test_missing_binaries_give_an_actionable_error(tmp_path):
    svc = engine("postgres", Settings(state_dir=tmp_path, pg_bin_dir=tmp_path / "nowhere"))
    with pytest.raises(ServiceError, match="no PostgreSQL server binaries"):
        svc.start()


def test_a_cluster_without_the_superuser_gets_it_and_keeps_its_data(test_settings):
    """A cluster of an earlier release (its superuser named otherwise, or holding another password) is brought to the
    settings' superuser in single-user mode; its data stays, and no purge is asked for."""
    state = test_settings.state_dir / "older-admin"
    older = engine("postgres", test_settings.replace(state_dir=state, pg_admin_user="older_admin"))
    now = engine("postgres", test_settings.replace(state_dir=state))
    try:
        older.start()
        with psycopg.connect(older.conninfo(), autocommit=True) as conn:
            conn.execute("create table kept (x int); insert into kept values (42)")
        older.stop()
        now.start()
        with psycopg.connect(now.admin_conninfo(), autocommit=True) as conn:
            assert conn.execute("select rolsuper from pg_roles where rolname = current_user").fetchone() == (True,)
        with psycopg.connect(now.conninfo(), autocommit=True) as conn:
            assert conn.execute("select x from kept").fetchall() == [(42,)]
        now.stop()
        (now.state_dir / "admin_password").write_text("another-than-the-cluster-has")  # the setting's, changed
        now.start()
        assert now.health(), "the superuser's password is the setting's again"
    finally:
        now.destroy()
