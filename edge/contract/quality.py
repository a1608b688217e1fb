"""Quality codes: OPC UA StatusCodes (Part 4, 7.39), used for every source.

Only the severity bits matter for most queries: ``0b00`` Good, ``0b01`` Uncertain,
``0b10``/``0b11`` Bad. Non-OPC-UA sources map their conditions onto these codes.
"""

GOOD = 0x00000000
UNCERTAIN = 0x40000000
UNCERTAIN_LAST_USABLE_VALUE = 0x40900000
BAD = 0x80000000
BAD_COMMUNICATION_ERROR = 0x80050000
BAD_TIMEOUT = 0x800A0000
BAD_SENSOR_FAILURE = 0x808C0000
BAD_NOT_CONNECTED = 0x808A0000
BAD_DEVICE_FAILURE = 0x808B0000
BAD_OUT_OF_SERVICE = 0x808D0000


def severity(code: int) -> str:
    """``good``, ``uncertain`` or ``bad``."""
    top = code >> 30
    return "good" if top == 0 else "uncertain" if top == 1 else "bad"


def is_good(code: int) -> bool:
    return code >> 30 == 0
