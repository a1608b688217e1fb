"""The plant's signal catalog: every OPC UA variable and Modbus register the simulator serves.

A :class:`Signal` is a flat, protocol-complete description of one served value, built from the
model definitions (:mod:`simulators.models.signals`) by :func:`simulators.plantmodel.build_catalog`.
Edge configurations, tests and the generated documentation all read the catalog, so what is
served and what is documented cannot drift apart.

Conventions
-----------
* OPC UA: namespace URI :data:`NAMESPACE_URI`; ``node_id`` is the identifier part only
  (``"s=BR01.TEMP"``). Batch context of an OPC UA unit is in the string variables
  ``<UNIT>.BATCH_ID``, ``<UNIT>.PHASE`` and ``<UNIT>.RECIPE`` (empty strings when idle).
* Modbus: ``address`` is the 0-based protocol address inside ``table``. 32-bit values occupy
  two registers, high word first (``word_order="big"``, byte order ``ABCD``); each register is
  big-endian as Modbus requires. Engineering value = ``raw * scale + offset``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Literal

NAMESPACE_URI = "urn:batchwire:sim"

Protocol = Literal["opcua", "modbus"]
DataType = Literal["float", "int", "bool", "string"]
Table = Literal["holding", "input", "coil", "discrete"]
Encoding = Literal["float32", "int16", "uint16", "int32", "uint32", "bool"]

REGISTER_WIDTH: dict[str, int] = {"float32": 2, "int32": 2, "uint32": 2, "int16": 1, "uint16": 1, "bool": 1}


@dataclass(frozen=True)
class Signal:
    """One served value.

    ``name`` is the tag name ``<UNIT>.<SIGNAL>``. Modbus fields are meaningful only when
    ``protocol == "modbus"``; ``node_id`` only when ``protocol == "opcua"``.
    """

    unit: str
    name: str
    protocol: Protocol
    datatype: DataType
    eng_unit: str | None
    description: str
    low: float | None = None
    high: float | None = None
    node_id: str | None = None
    writable: bool = False
    unit_id: int = 0
    table: Table = "input"
    address: int = 0
    encoding: Encoding = "float32"
    word_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    offset: float = 0.0

    @property
    def signal(self) -> str:
        """The mnemonic without the unit prefix (``"TEMP"`` for ``"BR01.TEMP"``)."""
        return self.name.split(".", 1)[1]

    @property
    def register_count(self) -> int:
        return REGISTER_WIDTH[self.encoding] if self.protocol == "modbus" else 0


@dataclass
class Catalog:
    """All served signals plus batch-context lookups.

    Iterating yields :class:`Signal`; ``len()`` counts them. ``phase_codes[unit]`` maps a
    Modbus unit's phase-code register values to phase names.
    """

    signals: list[Signal] = field(default_factory=list)
    phase_codes: dict[str, dict[int, str]] = field(default_factory=dict)
    _index: dict[str, Signal] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __iter__(self) -> Iterator[Signal]:
        return iter(self.signals)

    def __len__(self) -> int:
        return len(self.signals)

    def get(self, name: str) -> Signal:
        """The signal with tag name ``name``; KeyError when unknown."""
        if len(self._index) != len(self.signals):
            self._index = {s.name: s for s in self.signals}
        return self._index[name]

    def units(self) -> list[str]:
        seen: dict[str, None] = {}
        for sig in self.signals:
            seen.setdefault(sig.unit, None)
        return list(seen)

    def for_unit(self, unit: str) -> list[Signal]:
        return [s for s in self.signals if s.unit == unit]

    def opcua(self) -> list[Signal]:
        return [s for s in self.signals if s.protocol == "opcua"]

    def modbus(self) -> list[Signal]:
        return [s for s in self.signals if s.protocol == "modbus"]

    def context_nodes(self, unit: str) -> dict[str, str]:
        """Node ids (identifier part) of an OPC UA unit's batch, phase and recipe variables."""
        names = {"batch": f"{unit}.BATCH_ID", "phase": f"{unit}.PHASE", "recipe": f"{unit}.RECIPE"}
        out: dict[str, str] = {}
        for key, tag in names.items():
            sig = self.get(tag)
            if sig.node_id is None:
                raise KeyError(f"{tag} is not an OPC UA variable")
            out[key] = sig.node_id
        return out

    def phase_register(self, unit: str) -> Signal:
        """The phase-code register of a Modbus unit (decode with :meth:`phase_names`)."""
        return self.get(f"{unit}.PHASE_CODE")

    def phase_names(self, unit: str) -> dict[int, str]:
        """Phase code -> phase name for a Modbus unit (code 0 is idle, name ``""``)."""
        return dict(self.phase_codes[unit])


def context_nodes(catalog: Catalog, unit: str) -> dict[str, str]:
    """Module-level form of :meth:`Catalog.context_nodes`."""
    return catalog.context_nodes(unit)
