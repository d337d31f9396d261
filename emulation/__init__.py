"""Local cloud emulation: real engines run as local processes on 127.0.0.1.

Every engine implements :class:`emulation.service.Service` (start, stop, status, endpoint, logs,
health); the CLI (``olist up/down/status``) and the pytest fixtures share it.
"""

from emulation.registry import all_services, get_service
from emulation.service import Endpoint, Service, ServiceError, ServiceStatus

__all__ = ["Endpoint", "Service", "ServiceError", "ServiceStatus", "all_services", "get_service"]
