"""Errors of the storage engine; psycopg's exceptions are translated into these."""


class StoreError(Exception):
    """Something went wrong talking to the database."""


class StoreUnavailable(StoreError):
    """The database cannot be reached (down, restarting, network); retrying later may work."""


class MigrationError(StoreError):
    """A migration could not be applied; the message names the migration."""
