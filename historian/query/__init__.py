"""Query engine of the historian: SQL builders, result shaping and the pure calculations
behind the HTTP API (time parsing, value encoding, completeness over sequence numbers).

Modules come in two kinds: pure ones (:mod:`timeparse`, :mod:`values`, :mod:`seqgaps`, the
``build_*``/``shape_*`` functions) with no I/O, and thin async ``fetch_*`` functions that run
one statement on a psycopg ``AsyncConnection`` and hand the rows to the pure shapers.
"""
