"""Generated reference tables for ``docs/simulator.md``: the OPC UA node list and the Modbus register map.

The tables are rendered from the model definitions (via a catalog of one unit of every kind),
between ``<!-- BEGIN GENERATED -->`` and ``<!-- END GENERATED -->`` in the document; a test
checks the committed document is current. Regenerate with ``batchwire sim docs --write``.
"""

from __future__ import annotations

from pathlib import Path

from simulators.catalog import Catalog, Signal
from simulators.plant import BioreactorConfig, CpsConfig, PlantConfig, SensorConfig, demo_recipe
from simulators.plantmodel import PlantModel

BEGIN = "<!-- BEGIN GENERATED: do not edit by hand; `batchwire sim docs --write` -->"
END = "<!-- END GENERATED -->"
DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "simulator.md"
EXAMPLE_PLANT = Path(__file__).resolve().parent.parent / "deploy" / "examples" / "plant.toml"

_TABLE_NAMES = {"input": "input register (FC 4)", "holding": "holding register (FC 3/6/16)",
                "coil": "coil (FC 1/5/15)", "discrete": "discrete input (FC 2)"}


def reference_catalog() -> Catalog:
    """A catalog with one unit of each kind: BR01, CPS01 and one sensor of each kind."""
    from datetime import datetime, timezone

    cfg = PlantConfig(
        recipes=[demo_recipe()], bioreactors=[BioreactorConfig(name="BR01", recipe="CHO-FB-DEMO")],
        cps=[CpsConfig(name="CPS01", unit_id=1)],
        sensors=[SensorConfig(name="RM01", kind="room", unit_id=10),
                 SensorConfig(name="DP01", kind="diff_pressure", unit_id=11),
                 SensorConfig(name="BAL01", kind="balance", unit_id=12),
                 SensorConfig(name="INC01", kind="incubator", unit_id=13)])
    return PlantModel(cfg, datetime(2026, 1, 1, tzinfo=timezone.utc)).catalog


def _num(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _dtype(s: Signal) -> str:
    return {"float": "Double", "int": "Int32", "bool": "Boolean", "string": "String"}[s.datatype]


def node_table(catalog: Catalog, unit: str) -> str:
    rows = ["| node id (ns = urn:batchwire:sim) | type | unit | range | access | description |",
            "|---|---|---|---|---|---|"]
    for s in catalog.for_unit(unit):
        rng = f"{_num(s.low)} .. {_num(s.high)}" if s.low is not None and s.datatype != "string" else ""
        rows.append(f"| `{s.node_id}` | {_dtype(s)} | {s.eng_unit or ''} | {rng} | "
                    f"{'read/write' if s.writable else 'read'} | {s.description} |")
    return "\n".join(rows)


def register_table(catalog: Catalog, unit: str) -> str:
    rows = ["| tag | table | address | words | encoding | scale | unit | range | access | description |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for s in sorted(catalog.for_unit(unit), key=lambda s: (list(_TABLE_NAMES).index(s.table), s.address)):
        words = f"{s.register_count}" if s.table in ("input", "holding") else "bit"
        enc = s.encoding + (" ABCD" if s.encoding in ("float32", "int32", "uint32") else "")
        rng = f"{_num(s.low)} .. {_num(s.high)}" if s.low is not None else ""
        rows.append(f"| `{s.name}` | {_TABLE_NAMES[s.table]} | {s.address} | {words} | {enc} | "
                    f"{_num(s.scale) if s.encoding != 'bool' else ''} | {s.eng_unit or ''} | {rng} | "
                    f"{'read/write' if s.writable else 'read'} | {s.description} |")
    return "\n".join(rows)


def render_reference(catalog: Catalog | None = None) -> str:
    """The generated part of docs/simulator.md."""
    cat = catalog or reference_catalog()
    out = ["### OPC UA: bioreactor `BR01` (every `BRnn` has the same variables)", "",
           node_table(cat, "BR01"), ""]
    titles = {"CPS01": "cell-processing system `CPS01` (default unit id 1)",
              "RM01": "room sensor (kind `room`), e.g. `RM01`",
              "DP01": "differential-pressure sensor (kind `diff_pressure`), e.g. `DP01`",
              "BAL01": "balance (kind `balance`), e.g. `BAL01`",
              "INC01": "incubator (kind `incubator`), e.g. `INC01`"}
    for unit, title in titles.items():
        out += [f"### Modbus: {title}", "", register_table(cat, unit), ""]
    codes = cat.phase_names("CPS01")
    out += ["### Modbus: `CPS01.PHASE_CODE` values", "", "| code | phase |", "|---|---|"]
    out += [f"| {c} | {p or '(idle)'} |" for c, p in sorted(codes.items())]
    out += ["", "### Units of `deploy/examples/plant.toml`", "", units_table(PlantConfig.load(EXAMPLE_PLANT))]
    return "\n".join(out) + "\n"


def units_table(cfg: PlantConfig) -> str:
    """Every unit of a plant with its protocol address (the layouts are in the tables above)."""
    rows = ["| unit | kind | protocol | address | signals |", "|---|---|---|---|---|"]
    for b in cfg.bioreactors:
        rows.append(f"| `{b.name}` | bioreactor (recipe `{b.recipe}`) | OPC UA | `s={b.name}.<SIGNAL>` | "
                    f"as `BR01` |")
    for c in cfg.cps:
        rows.append(f"| `{c.name}` | cell-processing system | Modbus | unit id {c.unit_id} | as `CPS01` |")
    like = {"room": "RM01", "diff_pressure": "DP01", "balance": "BAL01", "incubator": "INC01"}
    for sn in cfg.sensors:
        rows.append(f"| `{sn.name}` | {sn.kind} | Modbus | unit id {sn.unit_id} | as `{like[sn.kind]}` |")
    return "\n".join(rows)


def splice(document: str, generated: str) -> str:
    """``document`` with its generated section replaced by ``generated``."""
    if BEGIN not in document or END not in document:
        raise ValueError("document has no generated section markers")
    head, rest = document.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{generated}{END}{tail}"


def register_map_text(catalog: Catalog) -> str:
    """Compact plain-text register map of a running plant (printed by ``sim run``)."""
    lines = []
    for unit in catalog.units():
        sigs = catalog.for_unit(unit)
        if sigs[0].protocol != "modbus":
            continue
        lines.append(f"  unit id {sigs[0].unit_id:>3}  {unit}")
        for s in sigs:
            enc = s.encoding + ("" if s.scale == 1 else f" x{s.scale:g}")
            lines.append(f"      {s.table:<8} {s.address:>4}  {enc:<14} {s.name:<22} {s.eng_unit or ''}"
                         f"{'  (writable)' if s.writable else ''}")
    return "\n".join(lines)
