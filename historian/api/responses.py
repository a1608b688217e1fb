"""JSON responses encoded with orjson.

Bodies are built by :mod:`historian.query`, whose shapers turn every float column into a
JSON-safe value (:func:`historian.query.values.encode_float`: non-finite floats become the
strings ``"NaN"``/``"Infinity"``/``"-Infinity"``) and every time into an ISO 8601 string.
That is where the encoding is decided; this class only serialises, fast.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
