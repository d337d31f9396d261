"""What `olist plan` says about the speed lane's supervised programs: which contracts each reads, how a change
of them is named, and whether the supervisor's programs run this release's code."""

from __future__ import annotations

from pipeline.contracts import load_registry, stream_names
from pipeline.provision.programs import _changes, contracts_read, record_contracts, recorded
from pipeline.settings import Settings


def test_each_program_reads_the_contracts_it_checks_records_against(tmp_path):
    settings = Settings(state_dir=tmp_path)
    registry, names = load_registry(), stream_names()
    served = {registry.dataset(t).contract_id for t in names.served}
    assert set(contracts_read("serve", settings)) == served
    archive = set(contracts_read("archive", settings))
    assert registry.topic("raw").contract_id in archive and "olist.order_payments" in archive, \
        "the raw topic's rows are order_payments': a change of the table changes what the archive checks"
    assert contracts_read("watchdog", settings) == {}, "the Flink job's record is its compiled plan's: " \
        "tests/integration/test_flink_plan.py"


def test_a_program_records_what_it_read_and_a_change_is_named_by_version(tmp_path):
    settings = Settings(state_dir=tmp_path)
    assert recorded(settings, "serve") is None
    record_contracts(settings, "serve")
    have = recorded(settings, "serve")
    assert have == contracts_read("serve", settings)
    cid, version = next(iter(have.items()))
    bumped = {**have, cid: f"1.9.0 {'0' * 8}"}
    assert _changes(have, bumped) == f"contracts changed: {cid} {version.split()[0]} -> 1.9.0"
    assert _changes(None, have) == "started by an earlier release"


def test_a_supervisor_config_written_by_another_release_is_not_current(tmp_path):
    from emulation.supervisor import SupervisorService

    supervisor = SupervisorService(Settings(state_dir=tmp_path))
    assert not supervisor.current, "no config at all"
    supervisor.state_dir.mkdir(parents=True, exist_ok=True)
    supervisor._write_config()
    assert supervisor.current
    text = supervisor._config_file.read_text()
    supervisor._config_file.write_text(text.replace(str(supervisor._release), "; release: /elsewhere/clone python"))
    assert not supervisor.current, "its programs would run another folder's code"
    supervisor._config_file.write_text(text.split("\n", 1)[1])
    assert not supervisor.current, "a config of a release before the marker"
