"""Acquisition sources. Pure parts (read planning, register decoding, quality mapping) sit
beside the thin I/O shells (``opcua``, ``modbus``) that use them."""
