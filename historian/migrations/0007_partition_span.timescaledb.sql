-- TimescaleDB: the chunk interval follows the expected rate through set_chunk_time_interval
-- (historian.store.sizing, `batchwire db migrate --expected-rate N`); nothing to create here.
SELECT 1;
