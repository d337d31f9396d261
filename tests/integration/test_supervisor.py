"""The supervisor knows no program of its own: a service registers its program as it starts (adding a program is
adding its service), supervisord restarts it after a kill -9, and registering another leaves the running one be."""

from __future__ import annotations

import os
import signal
import time

import pytest

from emulation.service import Endpoint, ServiceError
from emulation.supervisor import SupervisedService, SupervisorService
from pipeline.settings import Settings


class Toy(SupervisedService):
    runner = "tests.fixtures.supervised_toy"
    stop_wait = 7

    def __init__(self, settings: Settings, program: str) -> None:
        self.name = self.program = program
        super().__init__(settings)

    def endpoint(self) -> Endpoint | None:
        return Endpoint(f"supervisor/{self.program}", 0, {}) if self.supervisor.endpoint() else None

    def health(self) -> bool:
        info = self.supervisor.program(self.program)
        return info is not None and info.state == "RUNNING"


def wait_for(check, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def settings(tmp_path):
    settings = Settings(state_dir=tmp_path)
    yield settings
    SupervisorService(settings).stop()


def test_a_service_registers_its_program_and_supervisord_restarts_it(settings):
    supervisor = SupervisorService(settings)
    first = Toy(settings, "first")
    first.start()
    assert supervisor.running() == ["first"]
    assert "stopwaitsecs=7" in (supervisor.programs_dir / "first.conf").read_text()
    pid = first.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: first.pid() not in (None, pid)), "supervisord started it again"
    assert wait_for(lambda: first.restarts() == 1)

    second = Toy(settings, "second")
    kept = first.pid()
    second.start()
    assert sorted(supervisor.running()) == ["first", "second"]
    assert first.pid() == kept, "registering another program leaves the running one be"

    first.stop()
    assert supervisor.running() == ["second"]
    second.stop()
    assert supervisor.pid() is None, "the last program stopped: nothing left to supervise"


def test_a_service_without_a_runner_says_so(settings):
    class Nameless(SupervisedService):
        name = program = "nameless"

        def health(self) -> bool:
            return False

    with pytest.raises(ServiceError, match="nameless: no runner module"):
        Nameless(settings).start()
