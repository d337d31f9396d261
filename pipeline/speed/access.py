"""Who may do what on the speed lane's Kafka topics: one principal per component, and nothing else.

The grants are derived from the topic contracts (the raw, windowed and late-events topics and their dead-letter
topics) and from the settings (consumer groups, transactional ids); the broker applies them at every start and
removes any other grant of these principals. ``olist_admin`` is a super user (topic creation, these grants, the
platform's checks and the tests); every component runs as its own principal:

- ``connect``: the Connect worker's three internal topics (it creates them) and writes the raw CDC topic;
- ``flink``: reads the raw topic, writes the windowed and late-events topics in transactions;
- ``sink``: reads the served topics, writes their dead-letter topics;
- ``archive``: reads the raw topic, writes its dead-letter topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from emulation.connect import GROUP_ID as CONNECT_GROUP
from emulation.connect import TOPICS as CONNECT_TOPICS
from emulation.kafka import kafka_user
from pipeline.contracts import stream_names
from pipeline.settings import Settings
from pipeline.speed.archive import GROUP as ARCHIVE_GROUP
from pipeline.speed.sink import GROUP as SINK_GROUP

Resource = Literal["topic", "group", "transactional_id"]
Pattern = Literal["literal", "prefixed"]

READ = ("READ", "DESCRIBE")
WRITE = ("WRITE", "DESCRIBE")


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL: ``principal`` may do ``operation`` on the resource ``name`` (literal or a prefix)."""

    principal: str
    resource: Resource
    name: str
    operation: str
    pattern: Pattern = "literal"

    @property
    def user(self) -> str:
        return f"User:{kafka_user(self.principal)}"


def _grants(principal: str, resource: Resource, names: tuple[str, ...] | list[str], operations: tuple[str, ...],
            pattern: Pattern = "literal") -> list[Grant]:
    return [Grant(principal, resource, n, op, pattern) for n in names for op in operations]


def kafka_grants(settings: Settings) -> list[Grant]:
    """Every grant of every component principal, sorted."""
    names = stream_names()
    connect_topics = sorted(CONNECT_TOPICS.values())
    flink = settings.flink
    grants = [
        *_grants("connect", "topic", connect_topics, ("READ", "WRITE", "DESCRIBE", "DESCRIBE_CONFIGS", "CREATE")),
        *_grants("connect", "group", [CONNECT_GROUP], READ),
        *_grants("connect", "topic", [names.raw], WRITE),
        # exactly-once source: the leader's and each task's transactional producer (connect-cluster-<group>,
        # <group>-<connector>-<task>)
        *(_grants("connect", "transactional_id", [f"connect-cluster-{CONNECT_GROUP}", CONNECT_GROUP], WRITE,
                  "prefixed") if settings.connect.exactly_once_source else []),
        *_grants("flink", "topic", [names.raw], READ),
        *_grants("flink", "group", [flink.group_id], READ, "prefixed"),
        *_grants("flink", "topic", [*names.windowed, names.late], WRITE),
        *_grants("flink", "transactional_id", [flink.transactional_id_prefix], WRITE, "prefixed"),
        *_grants("sink", "topic", list(names.served), READ),
        *_grants("sink", "group", [SINK_GROUP], READ),
        *_grants("sink", "topic", [names.dead_letter(t) for t in names.served], WRITE),
        *_grants("archive", "topic", [names.raw], READ),
        *_grants("archive", "group", [ARCHIVE_GROUP], READ),
        *_grants("archive", "topic", [names.dead_letter(names.raw)], WRITE),
    ]
    return sorted(set(grants))
