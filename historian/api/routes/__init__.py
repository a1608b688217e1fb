"""API routers: each module wires one resource's parameters to :mod:`historian.query`."""
