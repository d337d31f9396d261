"""Least privilege, checked without engines: the Kafka grants per component and the Snowflake stage's SQL."""

from __future__ import annotations

import pytest

from emulation.connect import TOPICS as CONNECT_TOPICS
from emulation.service import ServiceError
from pipeline.batch.promote import stage_sql
from pipeline.contracts import stream_names
from pipeline.settings import Settings, SnowflakeSettings
from pipeline.speed.access import kafka_grants


def grants_of(principal: str) -> set[tuple[str, str, str]]:
    return {(g.resource, g.name, g.operation) for g in kafka_grants(Settings()) if g.principal == principal}


def test_each_component_reads_and_writes_only_its_own_topics():
    names = stream_names()
    topics = {principal: {(n, op) for r, n, op in grants_of(principal) if r == "topic"}
              for principal in ("connect", "flink", "sink", "archive")}
    assert {n for n, op in topics["flink"] if op == "READ"} == {names.raw}
    assert {n for n, op in topics["flink"] if op == "WRITE"} == {*names.windowed, names.late}
    assert {n for n, op in topics["sink"] if op == "READ"} == set(names.served)
    assert {n for n, op in topics["sink"] if op == "WRITE"} == {names.dead_letter(t) for t in names.served}
    assert {n for n, op in topics["archive"] if op == "READ"} == {names.raw}
    assert {n for n, op in topics["archive"] if op == "WRITE"} == {names.dead_letter(names.raw)}
    assert {n for n, op in topics["connect"] if op == "WRITE"} == {names.raw, *CONNECT_TOPICS.values()}
    creators = {g.principal for g in kafka_grants(Settings()) if g.operation == "CREATE"}
    assert creators == {"connect"}, "only Connect creates topics, and only its own three"
    assert {n for n, op in topics["connect"] if op == "CREATE"} == set(CONNECT_TOPICS.values())


def test_no_grant_is_a_wildcard_or_on_the_cluster():
    for g in kafka_grants(Settings()):
        assert g.name and g.name != "*" and g.resource != "cluster", g
        assert g.operation not in ("ALL", "ALTER", "ALTER_CONFIGS", "DELETE", "CLUSTER_ACTION"), g


def test_the_snowflake_stage_reads_through_an_integration_and_never_holds_a_key():
    sql = stage_sql("olist-lake", SnowflakeSettings(storage_integration="OLIST_LAKE_S3"))
    assert "storage_integration = OLIST_LAKE_S3" in sql and "s3://olist-lake/" in sql
    assert "credentials" not in sql.lower() and "aws_" not in sql.lower()
    with pytest.raises(ServiceError, match="SNOWFLAKE_STORAGE_INTEGRATION"):
        stage_sql("olist-lake", SnowflakeSettings())
    with pytest.raises(ServiceError, match="not a plain identifier"):
        stage_sql("olist-lake", SnowflakeSettings(storage_integration="x' credentials=(aws_key_id='k')"))


def test_a_configured_password_that_could_break_a_jaas_line_is_refused_without_being_echoed(monkeypatch):
    from pydantic import ValidationError

    bad = 'quote"and;semicolon'
    monkeypatch.setenv("OLIST_KAFKA_SINK_PASSWORD", bad)
    with pytest.raises(ValidationError) as err:
        Settings()
    assert "sink_password" in str(err.value) and bad not in str(err.value)
    monkeypatch.setenv("OLIST_KAFKA_SINK_PASSWORD", "Fine_password-123")
    assert Settings().kafka.sink_password == "Fine_password-123"


def test_another_s3_endpoint_without_keys_leaves_them_to_the_aws_chain():
    from pipeline.storage import s3_location

    settings = Settings(s3_endpoint_url="http://127.0.0.1:1")
    loc = s3_location(settings)
    assert (loc.access_key_id, loc.secret_access_key) == (None, None)
    half = s3_location(settings.replace(s3_access_key_id="AKIAEXAMPLE"))
    assert (half.access_key_id, half.secret_access_key) == (None, None), "a key pair or nothing"
    both = s3_location(settings.replace(s3_access_key_id="AKIAEXAMPLE", s3_secret_access_key="s3cret"))
    assert (both.access_key_id, both.secret_access_key) == ("AKIAEXAMPLE", "s3cret")
