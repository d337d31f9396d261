"""A Snowflake stand-in: fakesnow's HTTP server (DuckDB underneath) for offline promotion rehearsals.

Only started when no real Snowflake account is configured (``SNOWFLAKE_ACCOUNT`` unset). When fakesnow
answers an error the connector retries for ever, so every client here sets short timeouts.
"""

from __future__ import annotations

import sys

from emulation.process import ProcessService
from emulation.service import Endpoint, free_port

# fakesnow's fixed credentials: it accepts these and nothing else matters offline.
FAKESNOW_LOGIN = {"account": "fakesnow", "user": "fake", "password": "snow"}


class FakesnowService(ProcessService):
    name = "snowflake"

    process_name = "fakesnow"

    def endpoint(self) -> Endpoint | None:
        saved = self._saved_endpoint()
        if saved is None:
            return None
        return Endpoint(saved["host"], int(saved["port"]), {**FAKESNOW_LOGIN, "protocol": "http"})

    def env(self) -> dict[str, str]:
        """The ``SNOWFLAKE_*`` variables dbt's profile and the loader read."""
        ep = self.endpoint()
        assert ep is not None
        return {"SNOWFLAKE_ACCOUNT": ep.extra["account"], "SNOWFLAKE_USER": ep.extra["user"],
                "SNOWFLAKE_PASSWORD": ep.extra["password"], "SNOWFLAKE_HOST": ep.host,
                "SNOWFLAKE_PORT": str(ep.port), "SNOWFLAKE_PROTOCOL": "http"}

    def health(self) -> bool:
        import snowflake.connector

        ep = self.endpoint()
        if ep is None:
            return False
        try:
            with snowflake.connector.connect(
                account=ep.extra["account"], user=ep.extra["user"], password=ep.extra["password"],
                host=ep.host, port=ep.port, protocol="http", login_timeout=3, network_timeout=5,
            ) as conn:
                return conn.cursor().execute("select 1").fetchone() == (1,)
        except Exception:  # any failure means "not healthy yet"
            return False

    def start(self) -> Endpoint:
        if self.pid() is None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            port = free_port(self.settings.bind_host)
            self._save_endpoint(host=self.settings.bind_host, port=port)
            self.process.start([sys.executable, "-m", "fakesnow", "-s", "--host", self.settings.bind_host,
                                "-p", str(port), "-d", str(self.state_dir / "databases")])

        self.wait_ready("fakesnow")
        ep = self.endpoint()
        assert ep is not None
        return ep

