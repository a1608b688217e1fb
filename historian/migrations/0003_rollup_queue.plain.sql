-- Plain backend: rollup upkeep leaves the ingest transaction. Each ingest transaction
-- appends ONE row naming the (tag, minute) buckets it touched; the rollup maintainer
-- (batchwire.store.rollups.catch_up) takes pending rows, recomputes those buckets from raw
-- samples and deletes the rows in one transaction. Append-only, no unique key: concurrent
-- ingest workers never wait on each other here.
CREATE TABLE batchwire.rollup_pending (
    pending_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tag_ids     integer[] NOT NULL,
    minutes     timestamptz[] NOT NULL,
    queued_at   timestamptz NOT NULL DEFAULT now()
);
