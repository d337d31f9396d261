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

    def endpoint_extra(self, saved: dict) -> dict[str, str]:
        return {**FAKESNOW_LOGIN, "protocol": "http"}

    def login(self) -> dict[str, str | int]:
        """The connection fields of ``SnowflakeSettings`` (account, user, password, host, port, protocol)."""
        ep = self._require_endpoint()
        return {**FAKESNOW_LOGIN, "host": ep.host, "port": ep.port, "protocol": "http"}

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

