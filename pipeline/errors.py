"""The errors that mean "cannot do that, and here is why in one line": the CLI shows them without a traceback."""

from emulation.service import ServiceError
from pipeline.batch.load.reader import LoadError
from pipeline.contracts.registry import ContractError
from pipeline.speed.archive import ArchiveBusy

USER_ERRORS: tuple[type[Exception], ...] = (ServiceError, LoadError, ContractError, ArchiveBusy)

__all__ = ["USER_ERRORS", "ArchiveBusy", "ContractError", "LoadError", "ServiceError"]
