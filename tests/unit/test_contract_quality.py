"""Quality codes are OPC UA StatusCodes: the contract's constants must equal asyncua's."""

from asyncua.ua import StatusCodes

from edge.contract import quality


def test_constants_match_the_opc_ua_status_codes():
    names = {
        "GOOD": "Good", "UNCERTAIN": "Uncertain", "BAD": "Bad",
        "UNCERTAIN_LAST_USABLE_VALUE": "UncertainLastUsableValue",
        "BAD_COMMUNICATION_ERROR": "BadCommunicationError", "BAD_TIMEOUT": "BadTimeout",
        "BAD_SENSOR_FAILURE": "BadSensorFailure", "BAD_NOT_CONNECTED": "BadNotConnected",
        "BAD_DEVICE_FAILURE": "BadDeviceFailure", "BAD_OUT_OF_SERVICE": "BadOutOfService",
    }
    for const, opc in names.items():
        assert getattr(quality, const) == getattr(StatusCodes, opc), const


def test_severity():
    assert quality.severity(quality.GOOD) == "good"
    assert quality.severity(quality.UNCERTAIN_LAST_USABLE_VALUE) == "uncertain"
    assert quality.severity(quality.BAD_SENSOR_FAILURE) == "bad"
    assert quality.is_good(0) and not quality.is_good(quality.BAD)
