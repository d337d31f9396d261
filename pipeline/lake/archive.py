"""The raw topic's archive on S3, its layout: files in the seed's layout, committed by their manifests, and the
ranges Kafka no longer held recorded as gaps. The archive writer (``pipeline.speed.archive``) and the batch lane's
readers (``pipeline.batch.ingest.read``) both go through :class:`ArchiveLayout`.

Files are ``PREFIX/TOPIC/year=YYYY/month=MM/day=DD/hour=HH/TOPIC+PARTITION+STARTOFFSET.parquet`` (the hour of the
records' Kafka timestamps, UTC); a file's manifest (``PREFIX/TOPIC/_manifests/partition=P/START-END.json``: the file,
its offsets ``[start, end)``, records and times) commits it; gaps are under ``PREFIX/TOPIC/_gaps/``. Readers take
only manifested files and, of each, only its manifested offsets.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.contracts import load_registry, stream_names
from pipeline.contracts.render_arrow import arrow_schema
from pipeline.storage import S3Location

# The archive's Parquet layout, from its contract (contracts/archive/): the record's topic, partition, offset,
# timestamp, key and value.
SCHEMA = arrow_schema(load_registry().archive_of(stream_names().raw))


def archive_key(prefix: str, topic: str, partition: int, start_offset: int, hour: dt.datetime) -> str:
    return (f"{prefix}/{topic}/year={hour:%Y}/month={hour:%m}/day={hour:%d}/hour={hour:%H}/"
            f"{topic}+{partition}+{start_offset:010d}.parquet")


@dataclass(frozen=True)
class ArchivedFile:
    """The manifest of one archived file: it holds the topic's offsets ``[start, end)`` of ``partition``."""

    key: str
    partition: int
    start: int
    end: int
    records: int
    first_timestamp_ms: int
    last_timestamp_ms: int


@dataclass(frozen=True)
class Gap:
    """Offsets ``[start, end)`` of ``partition`` that Kafka no longer held when the archive needed them."""

    partition: int
    start: int
    end: int
    found_at: str


class ArchiveLayout:
    """Where an archive keeps its files, manifests and gap records, and how to read them back."""

    def __init__(self, loc: S3Location, prefix: str, topic: str, fs: pafs.FileSystem | None = None) -> None:
        self.loc, self.prefix, self.topic = loc, prefix, topic
        self.fs = fs or loc.arrow_fs()

    def _dir(self, kind: str, partition: int | None = None) -> str:
        base = self.loc.path(f"{self.prefix}/{self.topic}/{kind}")
        return base if partition is None else f"{base}/partition={partition}"

    def _read_json(self, kind: str) -> list[dict]:
        infos = self.fs.get_file_info(pafs.FileSelector(self._dir(kind), recursive=True, allow_not_found=True))
        out = []
        for info in sorted((i for i in infos if i.path.endswith(".json")), key=lambda i: i.path):
            with self.fs.open_input_stream(info.path) as fh:
                out.append(json.loads(fh.read()))
        return out

    def _write_json(self, kind: str, partition: int, name: str, record: object) -> None:
        with self.fs.open_output_stream(f"{self._dir(kind, partition)}/{name}.json") as fh:
            fh.write(json.dumps(asdict(record)).encode())  # type: ignore[call-overload]

    def manifests(self) -> list[ArchivedFile]:
        """Every committed file, by partition and start offset."""
        return sorted((ArchivedFile(**m) for m in self._read_json("_manifests")), key=lambda f: (f.partition, f.start))

    def gaps(self) -> list[Gap]:
        return sorted((Gap(**g) for g in self._read_json("_gaps")), key=lambda g: (g.partition, g.start))

    def commit(self, file: ArchivedFile) -> None:
        self._write_json("_manifests", file.partition, f"{file.start:020d}-{file.end:020d}", file)

    def record_gap(self, gap: Gap) -> None:
        self._write_json("_gaps", gap.partition, f"{gap.start:020d}-{gap.end:020d}", gap)

    def progress(self, manifests: list[ArchivedFile] | None = None) -> dict[int, int]:
        """The next offset to archive, per partition the manifests (read here unless given) know."""
        out: dict[int, int] = {}
        for m in self.manifests() if manifests is None else manifests:
            out[m.partition] = max(out.get(m.partition, 0), m.end)
        return out

    def read_file(self, m: ArchivedFile, start: int | None = None, end: int | None = None) -> pa.Table:
        """One committed file's records: only its manifested offsets (within ``[start, end)`` when given)."""
        table = pq.read_table(self.loc.path(m.key), filesystem=self.fs, schema=SCHEMA)
        offsets = table.column("kafka_offset")
        lo, hi = max(m.start, start or 0), m.end if end is None else min(m.end, end)
        return table.filter(pc.and_(pc.greater_equal(offsets, lo), pc.less(offsets, hi)))

    def read(self) -> pa.Table:
        """Every archived record, once, in partition and offset order (the manifests' offsets of each file)."""
        parts = [self.read_file(m) for m in self.manifests()]
        if not parts:
            return SCHEMA.empty_table()
        return pa.concat_tables(parts).sort_by([("kafka_partition", "ascending"), ("kafka_offset", "ascending")])
