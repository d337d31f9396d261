"""The raw archive on a real Kafka broker and a real S3 endpoint: layout; every offset exactly once even after a
crash between the upload and the manifest; progress kept with the files (not in Kafka); an emptied archive
rebuilt from the earliest offset Kafka holds, with the range it could not recover recorded."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections import Counter

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer

from emulation.kafka import KafkaService, TopicSpec
from emulation.resources import engine
from pipeline.contracts import stream_names
from pipeline.lake import ArchiveLayout, Gap
from pipeline.speed.archive import RawArchiver
from tests.conftest import running
from tests.kafka_helpers import fresh_topic, read_topic

pytestmark = pytest.mark.integration
BEFORE_11 = dt.datetime(2026, 11, 27, 10, 59, 50, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def kafka(test_settings):
    with running(engine("kafka", test_settings.model_copy(
            update={"state_dir": test_settings.state_dir / f"k{os.getpid()}"}))) as svc:
        yield svc


def produce(kafka: KafkaService, topic: str, count: int) -> None:
    # The records carry fixed timestamps days old: without retention.ms=-1 the broker's retention check (every
    # minute, the deployment keeps 6 h) may delete them mid-test (CI: the gap came out as [0, 12), not [0, 5)).
    kafka.create_topics([TopicSpec(topic, config={"retention.ms": "-1"})])
    producer = Producer(kafka.client_config())
    for i in range(count):
        ts = BEFORE_11 + dt.timedelta(seconds=i)  # offsets 0..9 in hour 10, 10.. in hour 11
        value = None if i == 3 else f'{{"op": "c", "n": {i}}}'.encode()  # offset 3 is a tombstone
        producer.produce(topic, key=f'{{"id": {i}}}'.encode(), value=value, timestamp=int(ts.timestamp() * 1000))
    producer.flush(10)


def archived(loc, prefix):
    fs = loc.arrow_fs()
    infos = fs.get_file_info(pafs.FileSelector(loc.path(prefix), recursive=True, allow_not_found=True))
    files = sorted(i.path for i in infos if i.path.endswith(".parquet"))
    offsets = Counter(o for f in files for o in pq.read_table(f, filesystem=fs).column("kafka_offset").to_pylist())
    return files, offsets


def test_files_follow_the_seed_layout_and_hold_every_offset_once(kafka, s3_location):
    topic, prefix = f"raw-{uuid.uuid4().hex[:6]}", f"raw-{uuid.uuid4().hex[:6]}"
    produce(kafka, topic, 23)
    report = RawArchiver(kafka.client_config(), s3_location, topic, prefix, group=f"g-{topic}",
                         flush_records=5, flush_seconds=60).run(until_idle=3)
    files, offsets = archived(s3_location, prefix)
    assert report.records == 23 and offsets == Counter(range(23))
    names = [f.split(f"{prefix}/", 1)[1] for f in files]
    assert names == [
        f"{topic}/year=2026/month=11/day=27/hour=10/{topic}+0+{o:010d}.parquet" for o in (0, 5)
    ] + [f"{topic}/year=2026/month=11/day=27/hour=11/{topic}+0+{o:010d}.parquet" for o in (10, 15, 20)]
    fs = s3_location.arrow_fs()
    first = pq.read_table(files[0], filesystem=fs).to_pylist()
    assert first[3]["record_value"] is None and first[3]["record_key"] == '{"id": 3}', "tombstones are archived as such"


def test_a_crash_between_upload_and_commit_still_leaves_each_offset_in_one_file(kafka, s3_location):
    topic, prefix = f"raw-{uuid.uuid4().hex[:6]}", f"raw-{uuid.uuid4().hex[:6]}"
    produce(kafka, topic, 8)

    def crash(_key: str) -> None:
        raise RuntimeError("killed after the upload, before the commit")

    with pytest.raises(RuntimeError):
        RawArchiver(kafka.client_config(), s3_location, topic, prefix, group=f"g-{topic}", flush_records=3,
                    after_upload=crash).run(until_idle=3)
    assert archived(s3_location, prefix)[1] == Counter(range(3))  # uploaded, never committed
    report = RawArchiver(kafka.client_config(), s3_location, topic, prefix, group=f"g-{topic}",
                         flush_records=4).run(until_idle=3)
    files, offsets = archived(s3_location, prefix)
    assert report.records == 8
    assert offsets == Counter(range(8)), "the replay replaced the uncommitted file instead of duplicating it"
    layout = ArchiveLayout(s3_location, prefix, topic)
    assert layout.read().column("kafka_offset").to_pylist() == list(range(8))
    assert [(m.start, m.end) for m in layout.manifests()] == [(0, 4), (4, 8)]
    assert [f.rsplit("+", 1)[1] for f in files] == ["0000000000.parquet", "0000000004.parquet",
                                                     "0000000008.parquet"][: len(files)]


def test_events_that_break_the_contract_are_dead_lettered_with_their_reason(kafka, s3_location):
    topic, prefix, dlq = stream_names().raw, f"raw-{uuid.uuid4().hex[:6]}", f"dlq-{uuid.uuid4().hex[:6]}"
    fresh_topic(kafka, TopicSpec(topic))  # the contract's own name: validation goes by it
    kafka.create_topics([TopicSpec(dlq)])
    row = {"order_id": "a" * 32, "payment_sequential": 1, "payment_type": "boleto", "payment_installments": 1,
           "payment_value": 10.5}
    source = {"connector": "postgresql", "db": "olist", "schema": "olist", "table": "order_payments", "ts_ms": 1}
    good = {"before": None, "after": row, "op": "c", "ts_ms": 2, "source": source}
    bad = {**good, "after": {**row, "payment_type": "pix"}}
    producer = Producer(kafka.client_config())
    for value in (good, bad, b"{not json", None):
        payload = value if value is None or isinstance(value, bytes) else json.dumps(value).encode()
        producer.produce(topic, key=b'{"k": 1}', value=payload)
    producer.flush(10)
    report = RawArchiver(kafka.client_config(), s3_location, topic, prefix, group=f"g-{prefix}",
                         dead_letter=dlq).run(until_idle=3)
    assert (report.records, report.dead_lettered) == (4, 2), "everything archived, the two bad ones dead-lettered"
    letters = [r.headers for r in read_topic(kafka, dlq, isolation="read_uncommitted")]
    assert len(letters) == 2
    reasons = sorted(h["olist.reason"] for h in letters)
    assert reasons[0].startswith("after.payment_type: 'pix' is not one of")
    assert reasons[1].startswith("not JSON:")
    assert all(h["olist.source"].startswith(f"{topic}/0/") for h in letters)


def test_idle_counts_only_once_the_topic_is_read_to_its_end_at_the_start(kafka, s3_location):
    """An archiver whose first fetch comes later than ``until_idle`` (a loaded machine; here no grace at all) still
    reads what the topic held when it started before it calls itself idle."""
    topic, prefix = f"raw-{uuid.uuid4().hex[:6]}", f"raw-{uuid.uuid4().hex[:6]}"
    produce(kafka, topic, 6)
    report = RawArchiver(kafka.client_config(), s3_location, topic, prefix, group=f"i-{topic}").run(until_idle=0)
    assert (report.started_from, report.records) == ({0: 0}, 6)


def test_progress_lives_with_the_files_not_in_a_consumer_group(kafka, s3_location):
    """A second run, under another consumer group, goes on from the archive's last manifest."""
    topic, prefix = f"raw-{uuid.uuid4().hex[:6]}", f"raw-{uuid.uuid4().hex[:6]}"
    produce(kafka, topic, 6)
    first = RawArchiver(kafka.client_config(), s3_location, topic, prefix, group=f"a-{topic}").run(until_idle=3)
    produce(kafka, topic, 4)
    second = RawArchiver(kafka.client_config(), s3_location, topic, prefix, group=f"b-{topic}").run(until_idle=3)
    assert (first.started_from, first.records) == ({0: 0}, 6)
    assert (second.started_from, second.records) == ({0: 6}, 4)
    assert ArchiveLayout(s3_location, prefix, topic).read().column("kafka_offset").to_pylist() == list(range(10))


def test_an_emptied_archive_is_rebuilt_from_the_earliest_offset_and_the_lost_range_recorded(kafka, s3_location):
    """Files gone (moto keeps objects in memory) and the topic already truncated below offset 5 (retention): the
    archive starts again from offset 5 and records the gap [0, 5) in S3, in its report, never silently."""
    from confluent_kafka import TopicPartition

    topic, prefix = f"raw-{uuid.uuid4().hex[:6]}", f"raw-{uuid.uuid4().hex[:6]}"
    produce(kafka, topic, 12)
    RawArchiver(kafka.client_config(), s3_location, topic, prefix, group=f"g-{topic}").run(until_idle=3)
    fs = s3_location.arrow_fs()
    fs.delete_dir_contents(s3_location.path(prefix))
    admin = kafka.admin()  # kept alive until its futures are done
    for future in admin.delete_records([TopicPartition(topic, 0, 5)]).values():
        future.result(30)
    report = RawArchiver(kafka.client_config(), s3_location, topic, prefix, group=f"g-{topic}").run(until_idle=3)
    layout = ArchiveLayout(s3_location, prefix, topic)
    assert [(g.partition, g.start, g.end) for g in report.gaps] == [(0, 0, 5)]
    assert [(g.partition, g.start, g.end) for g in layout.gaps()] == [(0, 0, 5)]
    assert isinstance(layout.gaps()[0], Gap)
    assert layout.read().column("kafka_offset").to_pylist() == list(range(5, 12))
    again = RawArchiver(kafka.client_config(), s3_location, topic, prefix, group=f"g-{topic}").run(until_idle=3)
    assert again.gaps == [] and again.records == 0, "a gap is recorded once; the archive then goes on from 12"


def test_the_archive_feeds_a_replay_every_record_once_in_offset_order_across_a_crash(kafka, s3_location):
    """The feed a replaying Flink job reads first: the archive's records below the cut, in offset order, each with its
    key, value, timestamp and raw offset. A feed that crashes with a transaction sent but not committed goes on after
    the last committed record, and a read_committed reader sees every record once."""
    from pipeline.speed.replay import OFFSET_HEADER, ArchiveFeed

    topic, prefix = f"raw-{uuid.uuid4().hex[:6]}", f"raw-{uuid.uuid4().hex[:6]}"
    produce(kafka, topic, 23)
    RawArchiver(kafka.client_config(), s3_location, topic, prefix, group=f"g-{topic}", flush_records=7).run(
        until_idle=3)
    layout, feed = ArchiveLayout(s3_location, prefix, topic), f"{topic}-feed"
    kafka.create_topics([TopicSpec(feed, config={"retention.ms": "-1"})])

    def crash(records: int) -> None:
        if records > 10:
            raise RuntimeError("killed with a transaction open")

    with pytest.raises(RuntimeError, match="transaction open"):
        ArchiveFeed(kafka.client_config(), layout, feed, batch=5, before_commit=crash).run(until={0: 20})
    report = ArchiveFeed(kafka.client_config(), layout, feed, batch=5).run(until={0: 20})
    assert report.resumed_from == {0: 10} and report.records == 10, "two transactions of 5 had committed"
    raw, fed = read_topic(kafka, topic), read_topic(kafka, feed)
    assert [int(r.headers[OFFSET_HEADER]) for r in fed] == list(range(20)), "offsets [0, 20) once, in order"
    assert [(r.key, r.value, r.timestamp_ms) for r in fed] == [(r.key, r.value, r.timestamp_ms) for r in raw[:20]]
    assert ArchiveFeed(kafka.client_config(), layout, feed, batch=5).run(until={0: 20}).records == 0, "idempotent"
