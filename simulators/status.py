"""OPC UA StatusCode values the simulator puts on its values (OPC UA Part 4, 7.39)."""

from __future__ import annotations

GOOD = 0x00000000
UNCERTAIN = 0x40000000
BAD = 0x80000000
BAD_COMMUNICATION_ERROR = 0x80050000
BAD_TIMEOUT = 0x800A0000
BAD_WAITING_FOR_INITIAL_DATA = 0x80320000
BAD_NOT_CONNECTED = 0x808A0000
BAD_DEVICE_FAILURE = 0x808B0000
BAD_SENSOR_FAILURE = 0x808C0000
BAD_OUT_OF_SERVICE = 0x808D0000

BY_NAME: dict[str, int] = {
    "Good": GOOD,
    "Uncertain": UNCERTAIN,
    "Bad": BAD,
    "BadCommunicationError": BAD_COMMUNICATION_ERROR,
    "BadTimeout": BAD_TIMEOUT,
    "BadWaitingForInitialData": BAD_WAITING_FOR_INITIAL_DATA,
    "BadNotConnected": BAD_NOT_CONNECTED,
    "BadDeviceFailure": BAD_DEVICE_FAILURE,
    "BadSensorFailure": BAD_SENSOR_FAILURE,
    "BadOutOfService": BAD_OUT_OF_SERVICE,
}


def is_bad(code: int) -> bool:
    return code >> 30 >= 2
