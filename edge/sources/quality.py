"""How source failures become quality codes (OPC UA StatusCodes, see
:mod:`edge.contract.quality`). Pure.

When a source cannot deliver a value the edge records a sample with no value and a bad
quality saying why, so a gap in the data is visible in the record rather than silent.
"""

from __future__ import annotations

from edge.contract import quality as q

GOOD = q.GOOD

#: Modbus exception codes (application protocol v1.1b3, 7) -> quality.
MODBUS_EXCEPTIONS: dict[int, int] = {
    1: q.BAD,  # illegal function: the device does not support this table
    2: q.BAD,  # illegal data address: configured address does not exist
    3: q.BAD,  # illegal data value
    4: q.BAD_DEVICE_FAILURE,  # server device failure
    5: q.BAD_TIMEOUT,  # acknowledge: long operation, no value yet
    6: q.BAD_COMMUNICATION_ERROR,  # server device busy
    8: q.BAD_DEVICE_FAILURE,  # memory parity error
    10: q.BAD_NOT_CONNECTED,  # gateway path unavailable
    11: q.BAD_TIMEOUT,  # gateway target device failed to respond
}


def modbus_exception(code: int) -> int:
    return MODBUS_EXCEPTIONS.get(code, q.BAD)


def not_connected() -> int:
    """The source is disconnected (or was never reached)."""
    return q.BAD_NOT_CONNECTED


def timeout() -> int:
    return q.BAD_TIMEOUT


def communication_error() -> int:
    """The request failed on the wire (reset connection, malformed reply)."""
    return q.BAD_COMMUNICATION_ERROR


def decode_failure() -> int:
    """The device answered but the value could not be decoded as configured."""
    return q.BAD


def opcua_status(code: int | None) -> int:
    """OPC UA status codes are already in the contract's terms; keep only the 32 bits."""
    return 0 if code is None else int(code) & 0xFFFFFFFF
