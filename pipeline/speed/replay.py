"""What recomputing the Flink job's view reads, and roughly costs: the verdict `olist plan` gives before a change.

The master dataset is the raw archive (every manifested file, in offset order) and the raw topic after the
archive's end; Kafka alone holds only its retention. :func:`replay_reads` counts both from the manifests and the
topic's offsets, without reading a record.
"""

from __future__ import annotations

from dataclasses import dataclass

from emulation.resources import engine
from pipeline.contracts import stream_names
from pipeline.settings import Settings

# Changes per second a replay recomputes on this kind of machine (2 cores), measured by `nox -s bench`
# (tests/bench/bench_replay.py): the order of magnitude a plan's cost is given in.
REPLAY_RATE = 4_000


@dataclass(frozen=True)
class ReplayReads:
    """The raw history a replay can read: the archive's manifested files and the topic's retained offsets."""

    archive_files: int
    archive_records: int
    archive_end: dict[int, int]  # per partition: the archive's next offset
    topic: dict[int, tuple[int, int]]  # per partition: [earliest retained, end)

    @property
    def topic_records(self) -> int:
        return sum(high - low for low, high in self.topic.values())

    @property
    def tail_records(self) -> int:
        """Records of the topic after the archive's end (what the archive does not hold yet)."""
        return sum(max(0, high - max(low, self.archive_end.get(p, 0))) for p, (low, high) in self.topic.items())

    @property
    def lost_to_retention(self) -> int:
        """Archived records the topic no longer holds: a replay of the topic alone would leave them out."""
        return sum(max(0, min(low, self.archive_end.get(p, 0))) for p, (low, _) in self.topic.items())

    def seconds(self, records: int) -> float:
        return records / REPLAY_RATE

    def describe_topic_replay(self) -> str:
        """The replay of the raw topic from its earliest retained offset (what a restart from no state reads)."""
        ranges = ", ".join(f"partition {p} [{low:,}, {high:,})" for p, (low, high) in sorted(self.topic.items()))
        text = (f"it reads the raw topic {ranges}: {self.topic_records:,} changes, about "
                f"{self.seconds(self.topic_records):.0f} s at ~{REPLAY_RATE:,}/s")
        if self.lost_to_retention:
            text += (f"; {self.lost_to_retention:,} older changes are only in the archive ({self.archive_files} files) "
                     f"and their windows are not recomputed")
        return text


def replay_reads(settings: Settings) -> ReplayReads:
    from pipeline.lake import ArchiveLayout
    from pipeline.speed.topics import offset_ranges
    from pipeline.storage import s3_location

    names = stream_names()
    manifests = ArchiveLayout(s3_location(settings), settings.raw_prefix, names.raw).manifests()
    end: dict[int, int] = {}
    for m in manifests:
        end[m.partition] = max(end.get(m.partition, 0), m.end)
    topic = offset_ranges(engine("kafka", settings).client_config(), names.raw)
    return ReplayReads(len(manifests), sum(m.records for m in manifests), end, topic)
