-- Indexes the API's reads need: recent commits (health, "what arrived since"), and
-- per-edge completeness over a time range (messages of an edge whose samples start in it).
CREATE INDEX ingest_log_committed_idx ON batchwire.ingest_log (committed);
CREATE INDEX ingest_log_edge_first_ts_idx ON batchwire.ingest_log (edge, first_ts);
