"""Kafka converged to the contracts and the settings: every contract topic (and its dead-letter topic) with its
partitions and topic configuration, and the component principals' ACLs exactly as ``pipeline/speed/access.py`` grants
them (any other ACL of theirs is revoked)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    ResourcePatternType,
    ResourceType,
)

from emulation.kafka import COMPONENTS, KafkaService, kafka_user
from emulation.resources import engine
from pipeline.contracts import Registry, load_registry
from pipeline.provision.steps import Step
from pipeline.settings import Settings

# Lowering these drops records the broker holds today: not a change `apply` makes on its own.
RETENTION = ("retention.ms", "retention.bytes")


@dataclass(frozen=True)
class TopicSpec:
    """A contract topic: name, partitions and topic-level config (e.g. ``{"cleanup.policy": "compact"}``)."""

    name: str
    partitions: int = 1
    config: dict[str, str] = field(default_factory=dict)
    contract: str = ""


def topic_specs(registry: Registry | None = None) -> list[TopicSpec]:
    """Every Kafka topic the contracts describe, with its dead-letter topic."""
    registry = registry or load_registry()
    specs = []
    for ds in registry.topics():
        partitions = int(ds.custom_property("kafkaPartitions", 1))
        config = {k: str(v) for k, v in dict(ds.custom_property("kafkaConfig", {})).items()}
        where = f"contract {ds.contract_id} {ds.version}"
        specs.append(TopicSpec(ds.physical_name, partitions, config, where))
        if dlq := ds.custom_property("deadLetterTopic"):
            specs.append(TopicSpec(dlq, 1, {"cleanup.policy": "delete"}, where))
    return specs


def retention_limit(value: str | None) -> float:
    """A retention setting as a number; -1 (no limit) as infinity."""
    number = float(value) if value not in (None, "") else -1
    return float("inf") if number < 0 else number


def topic_steps(kafka: KafkaService, specs: list[TopicSpec]) -> list[Step]:
    admin = kafka.admin()
    metadata = admin.list_topics(timeout=30).topics
    steps: list[Step] = []
    existing = [s for s in specs if s.name in metadata]
    configs: dict[str, dict[str, str]] = {}
    if existing:
        resources = [ConfigResource(ConfigResource.Type.TOPIC, s.name) for s in existing]
        for resource, future in admin.describe_configs(resources, request_timeout=30).items():
            configs[resource.name] = {k: v.value for k, v in future.result(30).items()}
    for spec in specs:
        target = f"topic {spec.name}"
        if spec.name not in metadata:
            steps.append(Step("kafka", target, f"create ({spec.partitions} partitions"
                              + "".join(f", {k}={v}" for k, v in sorted(spec.config.items())) + ")", creates=True,
                              run=lambda s=spec: _create(kafka, s)))
            continue
        have = len(metadata[spec.name].partitions)
        if have < spec.partitions:
            steps.append(Step("kafka", target, f"add partitions {have} -> {spec.partitions}",
                              detail="new records of a key may land on another partition than its older ones: order "
                                     "per key holds within each record's partition from now on",
                              run=lambda s=spec: _partitions(kafka, s.name, s.partitions)))
        elif have > spec.partitions:
            steps.append(Step("kafka", target, f"{have} partitions, the contract says {spec.partitions}", "breaking",
                              detail=f"{spec.contract}: Kafka cannot remove partitions; a new topic (a new major "
                                     "version) beside the old, and readers moved to it, is the way down"))
        actual = configs.get(spec.name, {})
        changed = {k: v for k, v in spec.config.items() if actual.get(k) != v}
        lowered = {k: v for k, v in changed.items()
                   if k in RETENTION and retention_limit(v) < retention_limit(actual.get(k))}
        if lowered:
            steps.append(Step("kafka", target, "lower " + ", ".join(f"{k} {actual.get(k)} -> {v}"
                                                                     for k, v in lowered.items()), "breaking",
                              detail=f"{spec.contract}: the broker would delete records the archive, the recompute "
                                     "and every replay read; keep the retention or lower it by hand, knowingly"))
        if rest := {k: v for k, v in changed.items() if k not in lowered}:
            steps.append(Step("kafka", target, "set " + ", ".join(f"{k}={v}" for k, v in sorted(rest.items())),
                              run=lambda n=spec.name, c=rest: _configure(kafka, n, c)))
    return steps


def _create(kafka: KafkaService, spec: TopicSpec) -> None:
    kafka.create_topics([spec])


def _partitions(kafka: KafkaService, name: str, count: int) -> None:
    admin = kafka.admin()  # kept alive until every future is done
    for future in admin.create_partitions([NewPartitions(name, count)], request_timeout=30).values():
        future.result(30)


def _configure(kafka: KafkaService, name: str, config: dict[str, str]) -> None:
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in config.items()]
    resource = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=entries)
    admin = kafka.admin()
    for future in admin.incremental_alter_configs([resource], request_timeout=30).values():
        future.result(30)


# -- ACLs ------------------------------------------------------------------------------------------

def _key(b: AclBinding) -> tuple:
    return (b.principal, b.restype, b.name, b.resource_pattern_type, b.operation, b.host, b.permission_type)


def acl_steps(kafka: KafkaService, settings: Settings) -> list[Step]:
    from pipeline.speed.access import kafka_grants

    admin = kafka.admin()
    wanted = {(g.user, ResourceType[g.resource.upper()], g.name, ResourcePatternType[g.pattern.upper()],
               AclOperation[g.operation], "*", AclPermissionType.ALLOW) for g in kafka_grants(settings)}
    ours = {f"User:{kafka_user(p)}" for p in COMPONENTS}
    anything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                                AclPermissionType.ANY)
    present = [b for b in admin.describe_acls(anything, request_timeout=30).result() if b.principal in ours]
    have = {_key(b) for b in present}
    missing = [AclBinding(r, n, pt, who, host, op, permission)
               for who, r, n, pt, op, host, permission in sorted(wanted - have, key=str)]
    stale = [b for b in present if _key(b) not in wanted]  # a DENY, another host, a grant no longer in access.py
    steps = []
    for who in sorted({b.principal for b in missing}):
        mine = [b for b in missing if b.principal == who]
        steps.append(Step("kafka", f"acl {who}", f"grant {len(mine)} ACLs ("
                          + ", ".join(sorted({f'{b.operation.name} {b.name}' for b in mine}))[:160] + ")",
                          creates=True, run=_acl(kafka, create=mine)))
    for who in sorted({b.principal for b in stale}):
        theirs = [b for b in stale if b.principal == who]
        steps.append(Step("kafka", f"acl {who}", f"revoke {len(theirs)} ACLs not in the grants ("
                          + ", ".join(sorted({f'{b.operation.name} {b.name}' for b in theirs}))[:160] + ")",
                          creates=True, run=_acl(kafka, delete=theirs)))
    return steps


def _acl(kafka: KafkaService, create: list[AclBinding] | None = None,
         delete: list[AclBinding] | None = None) -> Callable[[], None]:
    def run() -> None:
        admin = kafka.admin()
        if create:
            for future in admin.create_acls(create, request_timeout=30).values():
                future.result()
        for binding in delete or []:
            exact = AclBindingFilter(binding.restype, binding.name, binding.resource_pattern_type, binding.principal,
                                     binding.host, binding.operation, binding.permission_type)
            for future in admin.delete_acls([exact], request_timeout=30).values():
                future.result()

    return run


def plan(settings: Settings, registry: Registry | None = None) -> list[Step]:
    kafka = engine("kafka", settings)
    return topic_steps(kafka, topic_specs(registry)) + acl_steps(kafka, settings)
