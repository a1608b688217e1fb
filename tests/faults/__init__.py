"""Fault-injection support: a TCP fault proxy and services the tests own and may break."""
