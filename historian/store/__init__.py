"""batchwire storage engine: migrations, backend detection, the samples writer."""

from .backend import Backend, detect_backend
from .errors import MigrationError, StoreError, StoreUnavailable
from .migrate import migrate

__all__ = ["Backend", "detect_backend", "MigrationError", "StoreError", "StoreUnavailable", "migrate"]
