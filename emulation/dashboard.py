"""The dashboards (``python -m pipeline.serving.dashboard``, a Dash app) as a background process on 127.0.0.1.

Like the engines it keeps a pid file, a log and an endpoint file under ``state/dashboard``; it is healthy when
``GET /`` answers 200. The port is chosen at first start (or given) and kept across restarts when free.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

from emulation.process import ProcessService
from emulation.service import Endpoint, write_private
from pipeline.settings import Settings


class DashboardService(ProcessService):
    name = "dashboard"
    process_name = "dashboard"

    def __init__(self, settings: Settings, port: int = 0, warehouse: Path | None = None) -> None:
        super().__init__(settings)
        self.port = port
        self.warehouse = warehouse

    def endpoint_extra(self, saved: dict) -> dict[str, str]:
        return {"url": f"http://{saved['host']}:{saved['port']}/"}

    @property
    def url(self) -> str | None:
        ep = self.endpoint()
        return ep.extra["url"] if ep else None

    def health(self) -> bool:
        url = self.url
        if url is None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _choose_port(self) -> int:
        return self._keep_ports(self.settings.bind_host, port=self.port)["port"]

    def start(self) -> Endpoint:
        if self.pid() is not None:
            self.wait_ready("dashboard")
            return self.endpoint()  # type: ignore[return-value]
        port = self._choose_port()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._save_endpoint(host=self.settings.bind_host, port=port)
        cmd = [sys.executable, "-m", "pipeline.serving.dashboard", "--port", str(port)]
        if self.warehouse is not None:
            cmd += ["--warehouse", str(self.warehouse)]
        # The child runs with exactly these settings (the deployment's endpoints and passwords too), from a 0600 file.
        settings_file = self.state_dir / "settings.json"
        write_private(settings_file, self.settings.model_dump_json())
        cmd += ["--settings", str(settings_file)]
        self.process.start(cmd, env={"PYTHONUNBUFFERED": "1"}, cwd=self.state_dir)
        self.wait_ready("dashboard")
        return self.endpoint()  # type: ignore[return-value]
