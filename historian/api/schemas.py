"""Response shapes, for the OpenAPI document at ``/docs``.

The handlers return bodies built by :mod:`historian.query` directly (fast, and with the
documented encoding of non-finite numbers); these models describe those bodies.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, Field

#: A float that may be non-finite: a JSON number, or "NaN" / "Infinity" / "-Infinity".
Num = Union[float, Literal["NaN", "Infinity", "-Infinity"], None]
Time = str


class ErrorBody(BaseModel):
    detail: str = Field(description="What is wrong, naming the offending parameter or resource")
    parameter: str | None = Field(None, description="The offending request parameter (400/422)")


class Tag(BaseModel):
    name: str
    datatype: Literal["float", "int", "bool", "string"]
    unit: str | None = Field(None, description="Engineering unit, e.g. degC")
    description: str | None = None
    source: str | None = Field(None, description="Source address, e.g. opcua:ns=2;s=BR01.TEMP.PV")
    low: Num = None
    high: Num = None
    site: str | None = None
    edge: str | None = None
    created_at: Time
    updated_at: Time


class Sample(BaseModel):
    ts: Time = Field(description="Source timestamp, UTC")
    value: Union[float, int, bool, str, None] = Field(
        description='Typed by the tag datatype; non-finite floats are "NaN", "Infinity", "-Infinity"')
    quality: int = Field(description="OPC UA StatusCode as an unsigned 32-bit integer")
    good: bool = Field(description="Quality severity is Good")
    batch: str | None = None
    phase: str | None = None
    unit: str | None = Field(None, description="ISA-88 unit (equipment) the sample was acquired on")
    recipe: str | None = None
    site: str | None = None


class Recorded(BaseModel):
    tag: str
    datatype: str
    unit: str | None = Field(None, description="Engineering unit of the tag")
    start: Time
    end: Time
    samples: list[Sample]
    truncated: bool = Field(description="More samples exist in the range than limit allowed")


class Phase(BaseModel):
    phase: str
    start: Time
    end: Time


class Batch(BaseModel):
    site: str
    unit: str
    batch: str
    recipe: str | None = None
    start: Time
    end: Time
    phases: list[Phase]


class CompletenessSummary(BaseModel):
    complete: bool
    expected: int
    received: int
    missing: int
    data_gaps: int


class BatchDetail(Batch):
    completeness: CompletenessSummary


class QuarantineEntry(BaseModel):
    id: int
    received: Time
    topic: str
    reason: str
    detail: str
    edge: str | None = None
    session: str | None = None
    seq: int | None = None
    size: int = Field(description="Payload size in bytes")
    payload_preview: str = Field(description="First 2000 bytes as UTF-8, invalid bytes as U+FFFD")
    preview_truncated: bool


class QuarantineList(BaseModel):
    start: Time | None
    end: Time | None
    messages: list[QuarantineEntry]
    truncated: bool


class Gap(BaseModel):
    first_seq: int
    last_seq: int
    count: int
    after: Time | None = Field(description="Last sample time of the message before the gap (null: none)")
    before: Time = Field(description="First sample time of the message after the gap")


class SessionCompleteness(BaseModel):
    edge: str
    session: str
    site: str | None
    first_seq: int
    last_seq: int
    expected: int
    received: int
    missing_count: int
    missing: list[list[int]] = Field(description="Inclusive [first, last] ranges of missing seqs")
    gaps: list[Gap]
    quarantined: list[list[int]] = Field(
        description="Missing seqs whose payload is in quarantine (refused by ingest, not lost)")
    quarantined_count: int
    messages_in_range: int
    samples: int
    first_time: Time | None
    last_time: Time | None


class Event(BaseModel):
    id: int
    type: str
    edge: str | None
    site: str | None
    source_id: str | None
    ts: Time
    start: Time | None
    end: Time | None
    tags: list[str]
    detail: dict[str, Any]
    recorded_at: Time


class Completeness(BaseModel):
    start: Time | None
    end: Time | None
    complete: bool = Field(description="No missing messages and no data-gap events in the range")
    expected: int
    received: int
    missing: int
    sessions: list[SessionCompleteness]
    data_gaps: list[Event]
    data_gaps_truncated: bool


class BatchCompleteness(Completeness):
    batch: str
    site: str
    unit: str
    edges: list[str]


class Edge(BaseModel):
    edge: str
    site: str
    session: str | None
    state: str
    changed_at: Time
    last_birth: Time | None


class EventList(BaseModel):
    start: Time | None
    end: Time | None
    events: list[Event]
    truncated: bool


class DatabaseHealth(BaseModel):
    ok: bool
    latency_ms: float | None
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded", "down"]
    database: DatabaseHealth
    broker: dict[str, Any] | None
    ingest: dict[str, Any] | None
