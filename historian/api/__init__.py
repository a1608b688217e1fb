"""The historian's HTTP API (FastAPI). Routers only wire parameters to :mod:`historian.query`."""

from historian.api.app import create_app

__all__ = ["create_app"]
