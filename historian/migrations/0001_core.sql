-- batchwire core schema, shared by the plain-PostgreSQL and TimescaleDB backends.
-- Backend-specific storage for batchwire.samples (range partitions or a hypertable) and the
-- rollups follow in 0002_samples.<backend>.sql; names and columns are identical on both.

CREATE SCHEMA IF NOT EXISTS batchwire;

-- Tag registry, filled from edge birth messages. Data for a tag not declared here is
-- quarantined, never auto-created.
CREATE TABLE batchwire.tags (
    tag_id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    datatype    text NOT NULL CHECK (datatype IN ('float', 'int', 'bool', 'string')),
    unit        text,
    description text,
    source      text,
    low         double precision,
    high        double precision,
    site        text,
    edge        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every metadata version a tag has had (append-only): a birth that changes anything adds a row.
CREATE TABLE batchwire.tag_history (
    tag_id      integer NOT NULL REFERENCES batchwire.tags (tag_id),
    valid_from  timestamptz NOT NULL DEFAULT now(),
    datatype    text NOT NULL,
    unit        text,
    description text,
    source      text,
    low         double precision,
    high        double precision,
    site        text,
    edge        text,
    session     text,
    PRIMARY KEY (tag_id, valid_from)
);

-- Distinct ISA-88 contexts; samples reference them by a 4-byte id instead of repeating text.
CREATE TABLE batchwire.contexts (
    context_id  integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site        text NOT NULL,
    unit        text NOT NULL,
    batch       text,
    phase       text,
    recipe      text,
    UNIQUE NULLS NOT DISTINCT (site, unit, batch, phase, recipe)
);

-- Raw samples (batchwire.samples) and the rollups samples_1m / samples_1h are created by the
-- backend-specific migration 0002_samples.{plain,timescaledb}.sql: a hypertable cannot be
-- made from a partitioned table, so the two shapes differ from the first statement on.

-- One row per applied data message: the idempotency key and the completeness record.
CREATE TABLE batchwire.ingest_log (
    edge        text NOT NULL,
    session     text NOT NULL,
    seq         bigint NOT NULL,
    site        text NOT NULL,
    sent        timestamptz NOT NULL,
    received    timestamptz NOT NULL,
    committed   timestamptz NOT NULL DEFAULT now(),
    samples     integer NOT NULL,
    first_ts    timestamptz,
    last_ts     timestamptz,
    historical  boolean NOT NULL DEFAULT false,
    worker      text,
    -- samples whose source timestamp was further from the receive time than the configured
    -- clock-skew limit: stored as sent, counted here so they are visible, never rejected
    skewed      integer NOT NULL DEFAULT 0,
    -- samples of tags no birth declared: not applied, the payload is in quarantine
    undeclared  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (edge, session, seq)
);

-- Payloads that could not be applied, kept raw with the reason.
CREATE TABLE batchwire.quarantine (
    quarantine_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received    timestamptz NOT NULL DEFAULT now(),
    topic       text NOT NULL,
    reason      text NOT NULL,
    detail      text NOT NULL,
    edge        text,
    session     text,
    seq         bigint,
    payload     bytea NOT NULL,
    worker      text
);
CREATE INDEX quarantine_received_idx ON batchwire.quarantine (received);

-- Edge liveness as last reported.
CREATE TABLE batchwire.edges (
    edge        text PRIMARY KEY,
    site        text NOT NULL,
    session     text,
    state       text NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    last_birth  timestamptz
);

-- Batches and phases derived from the contexts samples carry (start = first sample seen
-- in it, end = last); order-independent, so late and replayed data extend them correctly.
CREATE TABLE batchwire.batches (
    site        text NOT NULL,
    unit        text NOT NULL,
    batch       text NOT NULL,
    recipe      text,
    start_ts    timestamptz NOT NULL,
    end_ts      timestamptz NOT NULL,
    PRIMARY KEY (site, unit, batch)
);

CREATE TABLE batchwire.phases (
    site        text NOT NULL,
    unit        text NOT NULL,
    batch       text NOT NULL,
    phase       text NOT NULL,
    start_ts    timestamptz NOT NULL,
    end_ts      timestamptz NOT NULL,
    PRIMARY KEY (site, unit, batch, phase)
);

-- Events from edges (data gaps, source outages) and from the historian itself.
CREATE TABLE batchwire.events (
    event_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    edge        text,
    site        text,
    source_id   text,
    type        text NOT NULL,
    ts          timestamptz NOT NULL,
    start_ts    timestamptz,
    end_ts      timestamptz,
    tags        text[] NOT NULL DEFAULT '{}',
    detail      jsonb NOT NULL DEFAULT '{}',
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (edge, source_id)
);
CREATE INDEX events_ts_idx ON batchwire.events (ts);
