"""MQTT ingest: subscribe, decode, batch, write, acknowledge after commit."""

from .ingestor import Ingestor

__all__ = ["Ingestor"]
