"""An engine process found again by its pid file: after another command restarted it, after a clock step, never a
reused pid."""

from __future__ import annotations


def test_a_process_restarted_by_another_command_is_still_found_and_stopped(tmp_path):
    """`olist down` + `olist up` in between: the first handle's own child is dead, but the engine runs again under
    the same pid file, and the first handle must still see it and stop it (a test fixture's handle did not, and
    leaked a server after the session)."""
    import sys

    from emulation.process import BackgroundProcess

    cmd = [sys.executable, "-c", "import time; time.sleep(120)"]
    first = BackgroundProcess(tmp_path / "p.pid", tmp_path / "p.log")
    first.start(cmd)
    second = BackgroundProcess(tmp_path / "p.pid", tmp_path / "p.log")
    second.stop()
    assert first.pid() is None, "the process it started is gone"
    restarted = second.start(cmd)
    try:
        assert first.pid() == restarted
        first.stop()
        assert second.pid() is None and not (tmp_path / "p.pid").exists()
    finally:
        second.stop()


def test_a_process_is_still_found_after_the_wall_clock_steps(tmp_path, monkeypatch):
    """A VM fork stepped the clock 17 s mid-run: psutil's create_time moved with it and every engine looked dead
    (and was left running after the session). The start is kept as time since boot, which no step moves; a pid
    file naming another process's start is still refused."""
    import json
    import sys

    import psutil

    from emulation.process import BackgroundProcess

    proc = BackgroundProcess(tmp_path / "p.pid", tmp_path / "p.log")
    pid = proc.start([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        real = psutil._psplatform.boot_time
        monkeypatch.setattr(psutil._psplatform, "boot_time", lambda: real() + 17)
        assert psutil.Process(pid).create_time() - json.loads(proc.pid_file.read_text())["created"] > 16
        assert proc.pid() == pid
        saved = json.loads(proc.pid_file.read_text())
        proc.pid_file.write_text(json.dumps({**saved, "since_boot": saved["since_boot"] - 3}))
        assert proc.pid() is None, "another start at the same pid is not the engine"
        proc.pid_file.write_text(json.dumps(saved))
    finally:
        proc.stop()
    assert proc.pid() is None
