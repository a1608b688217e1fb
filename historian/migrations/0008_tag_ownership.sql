-- Tag ownership: a tag belongs to the edge whose birth declared it (batchwire.tags.edge).
-- Another edge's birth does not take it over; an operator moves it with
-- `batchwire db tags reassign TAG --edge EDGE`, which is recorded here with who and why.
ALTER TABLE batchwire.tag_history
    ADD COLUMN reason     text,   -- NULL for a birth; the operator's reason for a reassignment
    ADD COLUMN changed_by text;   -- NULL for a birth; who reassigned the tag
