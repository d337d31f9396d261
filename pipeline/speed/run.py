"""What the supervisor runs for each of the platform's programs (``pipeline.platform.PROGRAMS``):
``python -m pipeline.speed.run NAME --settings FILE`` runs the service's ``run`` until SIGTERM, again after a
failure with exponential backoff (tenacity); supervisord restarts a program that dies.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from tenacity import Retrying, retry_if_exception_type, wait_exponential

from pipeline.settings import Settings

log = logging.getLogger("olist.speed")


def forever(step: Callable[[threading.Event], object], stop: threading.Event, name: str) -> None:
    """Run ``step`` until ``stop``; after a failure wait 1, 2, 4 ... up to 30 s and run it again."""
    for attempt in Retrying(wait=wait_exponential(multiplier=1, max=30), retry=retry_if_exception_type(Exception),
                            reraise=True, before_sleep=lambda state: log.warning(
                                "%s failed (%s); retrying in %.0f s", name, state.outcome.exception(),
                                state.next_action.sleep if state.next_action else 0)):
        with attempt:
            if stop.is_set():
                return
            step(stop)
            if not stop.is_set():
                raise RuntimeError(f"{name} returned before it was told to stop")


def main(argv: list[str] | None = None) -> int:
    from emulation.supervisor import SupervisorService
    from pipeline.platform import PROGRAMS, get_service
    from pipeline.provision.programs import record_contracts

    parser = argparse.ArgumentParser(prog="python -m pipeline.speed.run", description=__doc__)
    parser.add_argument("program", choices=tuple(PROGRAMS))
    parser.add_argument("--settings", type=Path, required=True, help="the settings file the supervisor wrote")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    settings = Settings.model_validate_json(args.settings.read_text())
    SupervisorService(settings).record_start(args.program)
    record_contracts(settings, args.program)  # what it reads now: `olist plan` restarts it when they change
    service = get_service(args.program, settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    forever(service.run, stop, args.program)  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
