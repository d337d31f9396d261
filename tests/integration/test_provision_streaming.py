"""The provisioning layer against a real Kafka and a real Cassandra: topics, partitions, configs and ACLs, and the
serving tables, planned with their verdicts and converged; a breaking change refused with nothing changed."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from emulation.resources import engine
from pipeline import provision
from pipeline.contracts import Registry, load_registry, stream_names
from tests.conftest import running
from tests.contract_edits import copied_contracts, edit_contract

pytestmark = pytest.mark.integration
AGGREGATED = "olist_payments_aggregated_windowed"


@pytest.fixture(scope="module")
def settings(test_settings):
    return test_settings.model_copy(update={"state_dir": test_settings.state_dir / f"pv{os.getpid()}"})


@pytest.fixture(scope="module")
def kafka(settings):
    with running(engine("kafka", settings)) as svc:
        yield svc


def changed_topic(tmp_path: Path, edit: Callable[[dict], None], topic: str = AGGREGATED) -> Registry:
    """A copy of contracts/ with ``edit`` applied to one topic contract's schema object (its minor version raised)."""
    root = copied_contracts(tmp_path)
    edit_contract(root / "topics" / f"{topic}.odcs.yaml", edit)
    return load_registry(root)


def custom(obj: dict, key: str, value: object) -> None:
    props = obj["customProperties"]
    for p in props:
        if p["property"] == key:
            p["value"] = value
            return
    props.append({"property": key, "value": value})


def test_kafka_converges_topics_partitions_configs_and_acls(kafka, settings, tmp_path):
    made = provision.ensure(settings, "kafka")
    assert {s.target for s in made} >= {f"topic {stream_names().raw}", f"topic {AGGREGATED}"}
    assert provision.plan(settings, ["kafka"]).converged, "a second look finds nothing to do"

    # a stray grant for a component is revoked; a missing one is given back
    admin = kafka.admin()
    stray = AclBinding(ResourceType.TOPIC, stream_names().raw, ResourcePatternType.LITERAL, "User:olist_sink", "*",
                       AclOperation.WRITE, AclPermissionType.ALLOW)
    for future in admin.create_acls([stray]).values():
        future.result()
    plan = provision.plan(settings, ["kafka"])
    assert [(s.target, s.action.split(" (")[0]) for s in plan.steps] == [("acl User:olist_sink",
                                                                          "revoke 1 ACLs not in the grants")]
    provision.ensure(settings, "kafka")
    theirs = AclBindingFilter(ResourceType.TOPIC, stream_names().raw, ResourcePatternType.LITERAL,
                              "User:olist_sink", None, AclOperation.ANY, AclPermissionType.ANY)
    assert admin.describe_acls(theirs, request_timeout=30).result() == []

    def more(obj: dict) -> None:
        custom(obj, "kafkaPartitions", 3)
        custom(obj, "kafkaConfig", {"cleanup.policy": "compact", "retention.ms": "1209600000"})

    registry = changed_topic(tmp_path, more)
    plan = provision.plan(settings, ["kafka"], registry)
    assert [(s.target, s.action, s.verdict) for s in plan.steps] == [
        (f"topic {AGGREGATED}", "add partitions 1 -> 3", "compatible"),
        (f"topic {AGGREGATED}", "set retention.ms=1209600000", "compatible")]
    assert provision.ensure(settings, "kafka", registry=registry) == [], "a command goes on; the change waits"
    assert len(admin.list_topics(timeout=10).topics[AGGREGATED].partitions) == 1
    report = provision.apply(settings, ["kafka"], registry=registry)
    assert report.ok and len(report.applied) == 2
    assert len(admin.list_topics(timeout=10).topics[AGGREGATED].partitions) == 3
    assert kafka.topic_config(AGGREGATED)["retention.ms"] == "1209600000"
    assert provision.plan(settings, ["kafka"], registry).converged

    fewer = changed_topic(tmp_path / "fewer", lambda obj: custom(obj, "kafkaPartitions", 2))
    plan = provision.plan(settings, ["kafka"], fewer)
    assert [s.action for s in plan.breaking] == ["3 partitions, the contract says 2",
                                                 "lower retention.ms 1209600000 -> 604800000"]
    lowered = provision.apply(settings, ["kafka"], registry=fewer)
    assert not lowered.ok and lowered.applied == []
    assert kafka.topic_config(AGGREGATED)["retention.ms"] == "1209600000", "not lowered: the plan was refused"


def test_cassandra_gains_a_contract_column_and_refuses_a_changed_type(settings, tmp_path):
    with running(engine("cassandra", settings)) as cassandra:
        provision.ensure(settings, "cassandra")
        assert provision.plan(settings, ["cassandra"]).converged

        def add(obj: dict) -> None:
            obj["properties"].append({"name": "payment_median", "logicalType": "number", "physicalType": "double",
                                      "required": False, "description": "Median payment_value."})

        registry = changed_topic(tmp_path, add)
        table = f"{registry.keyspace}.{AGGREGATED}"
        plan = provision.plan(settings, ["cassandra"], registry)
        assert [(s.target, s.action, s.verdict) for s in plan.steps] == [
            (table, "add column payment_median double", "compatible")]
        assert provision.apply(settings, ["cassandra"], registry=registry).ok
        with cassandra.session() as session:
            cols = {r.column_name: r.type for r in session.execute(
                "SELECT column_name, type FROM system_schema.columns WHERE keyspace_name = %s AND table_name = %s",
                (registry.keyspace, AGGREGATED))}
        assert cols["payment_median"] == "double"
        assert provision.plan(settings, ["cassandra"], registry).converged

        def retype(obj: dict) -> None:
            add(obj)
            next(p for p in obj["properties"] if p["name"] == "payment_count")["physicalType"] = "integer"

        changed = changed_topic(tmp_path / "retype", retype)
        refused = provision.apply(settings, ["cassandra"], registry=changed)
        assert not refused.ok and [s.action for s in refused.refused] == ["change column payment_count bigint -> int"]
