"""batchwire historian: ingest, storage, queries, HTTP API."""
