-- Retention and compression settings per tag group, and store-wide settings.
--
-- A tag belongs to at most ONE group: a group that lists it by name (tag_group_members)
-- wins over groups whose pattern matches it; among pattern matches the longest pattern
-- (the most specific) wins, then the group name. Tags in no group follow the store-wide
-- defaults in batchwire.settings ('raw_retention', 'compress_after'). The retention job
-- (historian.store.retention) applies all of it; see docs/storage.md "Tag groups".

CREATE TABLE batchwire.settings (
    key         text PRIMARY KEY,
    value       text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE batchwire.tag_groups (
    name            text PRIMARY KEY CHECK (name <> ''),
    -- shell-style: * any characters, ? one character (e.g. 'BR01.*'); NULL: members only
    pattern         text CHECK (pattern <> ''),
    -- raw samples older than this are deleted; NULL keeps them forever (raw is the record)
    raw_retention   interval CHECK (raw_retention > INTERVAL '0'),
    -- TimescaleDB: compress chunks older than this (per hypertable: see docs); NULL: default
    compress_after  interval CHECK (compress_after > INTERVAL '0'),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Explicit membership by tag NAME, so a group can be set up before its tags are declared.
CREATE TABLE batchwire.tag_group_members (
    group_name  text NOT NULL REFERENCES batchwire.tag_groups (name) ON DELETE CASCADE,
    tag_name    text NOT NULL,
    PRIMARY KEY (group_name, tag_name)
);
CREATE INDEX tag_group_members_tag_idx ON batchwire.tag_group_members (tag_name);

-- '*' -> '%', '?' -> '_', LIKE's own wildcards and the escape character taken literally.
CREATE FUNCTION batchwire.glob_to_like(glob text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT replace(replace(replace(replace(replace(glob, '\', '\\'), '%', '\%'), '_', '\_'), '*', '%'), '?', '_')
$$;

-- The group of each tag that has one (rule above).
CREATE VIEW batchwire.tag_group_of AS
SELECT DISTINCT ON (t.tag_id) t.tag_id, t.name AS tag_name, g.name AS group_name,
       g.raw_retention, g.compress_after
FROM batchwire.tags t
JOIN batchwire.tag_groups g
  ON EXISTS (SELECT 1 FROM batchwire.tag_group_members m WHERE m.group_name = g.name AND m.tag_name = t.name)
  OR (g.pattern IS NOT NULL AND t.name LIKE batchwire.glob_to_like(g.pattern))
ORDER BY t.tag_id,
         EXISTS (SELECT 1 FROM batchwire.tag_group_members m WHERE m.group_name = g.name AND m.tag_name = t.name) DESC,
         length(g.pattern) DESC NULLS LAST, g.name;
