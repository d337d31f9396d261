"""The verdict `olist plan` gives for a change to the Flink job, from Flink's own compiled plans (no broker needed):
an option outside the plan restores the savepoint, a change of the view's definition replays it, and the step says
which nodes changed and what the replay reads."""

from __future__ import annotations

import json

import pytest

from emulation.flink import CompiledPlan, inputs_key
from pipeline.provision import programs
from pipeline.settings import Settings
from pipeline.speed import replay
from pipeline.speed.replay import ReplayReads
from pipeline.speed.services import FlinkService

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def state(tmp_path_factory, test_settings) -> Settings:
    """A state folder whose Flink plans are compiled once for the module."""
    return test_settings.replace(state_dir=tmp_path_factory.mktemp("flink-plans"))


def plan_of(settings: Settings, **flink) -> CompiledPlan:
    return FlinkService(settings.replace(flink=flink) if flink else settings).compiled_plan()


def test_options_outside_the_plan_keep_the_view_and_its_state(state):
    base = plan_of(state)
    tuned = plan_of(state, checkpoint_interval_seconds=7, restart_attempts=3, transaction_timeout_ms=600_000)
    assert inputs_key(state.replace(flink={"checkpoint_interval_seconds": 7}).flink) != inputs_key(state.flink)
    assert tuned.key == base.key and not base.changes(tuned)
    stateful = " ".join(base.stateful())
    for operator in ("table-source-scan", "deduplicate (deduplicateState)", "group-aggregate (groupAggregateState)",
                     "over-aggregate", "sink"):
        assert operator in stateful, f"{operator} keeps state: {stateful}"


def test_a_new_window_length_changes_the_view(state):
    base, longer = plan_of(state), plan_of(state, window_seconds=state.flink.window_seconds * 3)
    assert longer.key != base.key
    changes = base.changes(longer)
    assert changes and all(": projection changed" in c and " calc" in c for c in changes), changes
    assert json.loads(longer.path.read_text())["flinkVersion"] == base.flink_version


def test_other_topics_are_another_view(state):
    class Versioned(FlinkService):
        @property
        def topics(self) -> dict[str, str]:
            return {"olist_payments_aggregated_windowed": "olist_payments_aggregated_windowed.v2"}

    base, other = plan_of(state), Versioned(state).compiled_plan()
    assert other.key != base.key and base.document == other.document, "the same plan, on another topic"
    assert base.changes(other) == ["table olist_payments_aggregated_windowed writes "
                                   "olist_payments_aggregated_windowed.v2 (was olist_payments_aggregated_windowed)"]


def test_the_plan_step_restores_or_replays_as_the_compiled_plan_says(state, monkeypatch):
    """The job recorded as running the base plan; options changed outside the plan -> a compatible restart from its
    savepoint; the window length changed -> a replay naming the changed nodes, what it reads and what it costs."""
    running = FlinkService(state)
    running.job_plan()  # what the job keeps in its view's folder as it starts
    programs.record_contracts(state, "flink")
    assert programs.flink_step(state) is None, "nothing changed"

    tuned = state.replace(flink={"checkpoint_interval_seconds": 9})
    step = programs.flink_step(tuned)
    assert step is not None and step.verdict == "compatible" and "savepoint" in step.action
    assert "--checkpoint-interval-seconds" in step.detail and "groupAggregateState" in step.detail

    reads = ReplayReads(archive_files=3, archive_records=900, archive_end={0: 900}, topic={0: (600, 1000)})
    monkeypatch.setattr(replay, "replay_reads", lambda settings: reads)
    longer = state.replace(flink={"window_seconds": state.flink.window_seconds * 2})
    step = programs.flink_step(longer)
    assert step is not None and step.verdict == "replay"
    assert "calc: projection changed" in step.detail and "[600, 1,000): 400 changes" in step.detail
    assert "600 older changes are only in the archive" in step.detail


def test_replay_reads_count_the_archive_the_topic_and_what_retention_took():
    reads = ReplayReads(archive_files=2, archive_records=700, archive_end={0: 700}, topic={0: (500, 1200)})
    assert reads.topic_records == 700 and reads.tail_records == 500 and reads.lost_to_retention == 500
    caught_up = ReplayReads(archive_files=0, archive_records=0, archive_end={}, topic={0: (0, 50)})
    assert caught_up.tail_records == 50 and caught_up.lost_to_retention == 0
