"""Edge agent configuration: pydantic models, loaded once at start-up from TOML.

Every error names the offending setting as a path into the file (``opcua[0].tags[3].node``)
and the file it came from, so an operator can fix it without reading code. Unknown keys are
errors too: a misspelt setting silently ignored is a setting silently not applied.

``EdgeConfig`` can also be built from a plain dict (``parse_config``), which is how the demo
assembles one in code.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge.contract.topics import TopicError, check_level


class ConfigError(ValueError):
    """Invalid configuration. ``str(err)`` names the file and the setting path."""

    def __init__(self, message: str, *, source: str = "<config>", problems: list[str] | None = None):
        super().__init__(message)
        self.source = source
        self.problems = problems or [message]


# --------------------------------------------------------------------------- helpers

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``"7d"``, ``"12h"``, ``"30m"``, ``"45s"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30, '45s', '12h' or '7d'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    else:
        raise ValueError(f"expected a duration such as 30, '45s', '12h' or '7d', got {value!r}")
    if seconds <= 0:
        raise ValueError("must be greater than 0")
    return seconds


Duration = Annotated[float, Field(gt=0)]

#: OPC UA node id as configured: an identifier within the source's namespace_uri
#: (``s=BR01.TEMP``, ``i=42``) or a full one (``ns=2;s=..``, ``nsu=urn:..;s=..``).
_NODE_ID = re.compile(r"^(?:(?:ns=\d+|nsu=[^;]+);)?[isgb]=.+$")


def _check_node(value: str) -> str:
    if not _NODE_ID.match(value):
        raise ValueError(
            f"{value!r} is not a node id: use 's=NAME' or 'i=NUMBER' (within namespace_uri), "
            "or a full 'ns=2;s=NAME' / 'nsu=URI;s=NAME'"
        )
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- sections


class EdgeSection(_Model):
    id: str
    site: str
    #: Directory of the durable outbox; default ``.batchwire/edge-<id>``.
    data_dir: Path | None = None

    @field_validator("id", "site")
    @classmethod
    def _topic_level(cls, v: str, info) -> str:
        try:
            return check_level(v, info.field_name)
        except TopicError as err:
            raise ValueError(str(err)) from err

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir if self.data_dir is not None else Path(".batchwire") / f"edge-{self.id}"


class MqttSection(_Model):
    #: ``mqtt://[user[:password]@]host[:port]``; ``mqtts://`` for TLS.
    url: str = "mqtt://127.0.0.1:1883"
    topic_prefix: str = "batchwire"
    #: Default ``batchwire-edge-<edge id>``.
    client_id: str = ""
    max_samples_per_message: int = Field(1000, ge=1, le=100_000)
    #: Longest a sample waits in memory before its message is sealed and committed.
    max_batch_delay: Duration = 0.5
    #: Own bounded window of QoS 1 publishes awaiting the broker's PUBACK.
    inflight_messages: int = Field(32, ge=1, le=65535)
    #: Seconds without the historian's acknowledgement before a message is re-sent.
    ack_timeout: Duration = 30.0
    keepalive: int = Field(30, ge=5, le=3600)
    connect_timeout: Duration = 10.0
    reconnect_delay_max: Duration = 30.0
    #: TLS (``mqtts://`` only): CA certificates to verify the broker with (default: the
    #: system's), and a client certificate and key when the broker asks for one.
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    #: Skip the check that the broker's certificate names the host in ``url`` (the chain is
    #: still verified). For test set-ups only: it lets anyone with a certificate from the
    #: same CA pose as the broker.
    tls_insecure: bool = False

    @model_validator(mode="after")
    def _tls(self):
        given = [f for f in ("ca_file", "cert_file", "key_file") if getattr(self, f) is not None]
        if not self.tls:
            if self.tls_insecure:
                given.append("tls_insecure")
            if given:
                raise ValueError(f"{given[0]}: needs a TLS url (mqtts://host:8883), got {self.url!r}")
            return self
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            raise ValueError(f"{missing}: required with {'cert_file' if missing == 'key_file' else 'key_file'}")
        import ssl

        ctx = ssl.create_default_context()
        if self.ca_file is not None:
            try:
                ctx.load_verify_locations(cafile=str(self.ca_file))
            except (OSError, ssl.SSLError) as err:
                raise ValueError(f"ca_file: cannot load {str(self.ca_file)!r}: {err}") from err
        if self.cert_file is not None:
            try:
                ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
            except (OSError, ssl.SSLError) as err:
                raise ValueError(f"cert_file, key_file: cannot load {str(self.cert_file)!r} with "
                                 f"{str(self.key_file)!r}: {err}") from err
        return self

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"scheme must be mqtt:// or mqtts://, got {v!r}")
        if not parts.hostname:
            raise ValueError(f"no host in {v!r}")
        try:
            parts.port
        except ValueError as err:
            raise ValueError(f"bad port in {v!r}") from err
        return v

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not v or any(c in v for c in "+#\x00") or v.startswith("$") or v.endswith("/"):
            raise ValueError("must be non-empty, without '+', '#', NUL, a leading '$' or trailing '/'")
        return v

    @field_validator("ack_timeout", "max_batch_delay", "connect_timeout", "reconnect_delay_max", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme in ("mqtts", "ssl")

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)

    @property
    def username(self) -> str | None:
        u = urlsplit(self.url).username
        return unquote(u) if u else None

    @property
    def password(self) -> str | None:
        p = urlsplit(self.url).password
        return unquote(p) if p else None


class OutboxSection(_Model):
    #: Bound on the stored (encoded) messages; oldest are dropped first, with a data-gap event.
    max_bytes: int = Field(1_000_000_000, ge=64 * 1024)
    #: Bound on the age of stored messages (seconds or "7d", "12h", ...).
    max_age: Duration = 7 * 86400.0
    #: Bound on samples held in memory while not yet committed (the outbox is failing or
    #: slower than acquisition). Beyond it the oldest are dropped, counted and reported as a
    #: data-gap event once the outbox commits again. ~130 bytes per sample.
    max_memory_samples: int = Field(200_000, ge=1000, le=100_000_000)

    @field_validator("max_age", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)


class _TagMeta(_Model):
    name: str = Field(min_length=1)
    datatype: Literal["float", "int", "bool", "string"] | None = None
    unit: str | None = None
    description: str | None = None
    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _range(self):
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low ({self.low}) is greater than high ({self.high})")
        return self


SecurityPolicy = Literal["None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"]


def _check_pem_or_der(setting: str, path: Path, *, key: bool) -> None:
    """A readable certificate (or private key) file, so a wrong path stops start-up with
    the setting named rather than failing on every connect."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ValueError(f"{setting}: cannot read {str(path)!r}: {err.strerror or err}") from err
    from cryptography import x509  # an asyncua dependency; loaded only when security is used
    from cryptography.hazmat.primitives import serialization

    try:
        if key:
            if b"-----BEGIN" in data:
                serialization.load_pem_private_key(data, password=None)
            else:
                serialization.load_der_private_key(data, password=None)
        elif b"-----BEGIN" in data:
            x509.load_pem_x509_certificate(data)
        else:
            x509.load_der_x509_certificate(data)
    except (ValueError, TypeError) as err:
        what = "an unencrypted private key" if key else "a certificate"
        raise ValueError(f"{setting}: {str(path)!r} is not {what} (PEM or DER): {err}") from err


class OpcUaTag(_TagMeta):
    node: str

    @field_validator("node")
    @classmethod
    def _node(cls, v: str) -> str:
        return _check_node(v)


class OpcUaContext(_Model):
    unit: str = Field(min_length=1)
    batch: str | None = None
    phase: str | None = None
    recipe: str | None = None

    @field_validator("batch", "phase", "recipe")
    @classmethod
    def _node(cls, v: str | None) -> str | None:
        return None if v is None else _check_node(v)


class OpcUaSource(_Model):
    name: str = Field(min_length=1)
    endpoint: str
    #: Namespace of node ids written without ``ns=``/``nsu=``; resolved on connect.
    namespace_uri: str | None = None
    publishing_interval: Duration = 0.5
    #: Monitored-item queue size; must be > 1 (a queue of 1 loses values between publishes).
    queue_size: int = Field(10, ge=2, le=100_000)
    timeout: Duration = 4.0
    reconnect_delay_max: Duration = 30.0
    #: Longest the first birth waits for this server's metadata (data types, units, ranges).
    metadata_timeout: Duration = 10.0
    #: OPC UA security. With a policy, the server's certificate must be pinned
    #: (``server_certificate``): asyncua otherwise trusts whatever certificate the server sends.
    security_policy: SecurityPolicy = "None"
    #: Default ``SignAndEncrypt`` when a policy is set.
    security_mode: Literal["Sign", "SignAndEncrypt"] | None = None
    #: This client's application instance certificate and its private key (PEM or DER).
    certificate: Path | None = None
    private_key: Path | None = None
    #: The server's certificate, pinned: a server presenting another one is refused.
    server_certificate: Path | None = None
    username: str | None = None
    #: The password, or the name of an environment variable holding it (``password_env``),
    #: so it need not be written into the file.
    password: str | None = None
    password_env: str | None = None
    context: OpcUaContext | None = None
    tags: list[OpcUaTag] = Field(min_length=1)

    @model_validator(mode="after")
    def _security(self):
        files = ("certificate", "private_key", "server_certificate")
        if self.security_policy == "None":
            given = [f for f in (*files, "security_mode") if getattr(self, f) is not None]
            if given:
                raise ValueError(f"{given[0]}: has no effect without security_policy "
                                 "(Basic256Sha256, Aes128_Sha256_RsaOaep or Aes256_Sha256_RsaPss)")
        else:
            missing = [
                f"{f}: required when security_policy is {self.security_policy!r}" + (
                    " (the server's certificate, pinned: without it any certificate the server "
                    "presents is trusted)" if f == "server_certificate" else "")
                for f in files if getattr(self, f) is None]
            if missing:
                raise ValueError("; ".join(missing))
            for f in files:
                _check_pem_or_der(f, getattr(self, f), key=(f == "private_key"))
        if self.password is not None and self.password_env is not None:
            raise ValueError("password, password_env: give one or the other")
        if (self.password is not None or self.password_env is not None) and not self.username:
            raise ValueError("username: required with password / password_env")
        if self.password_env is not None and self.password_env not in os.environ:
            raise ValueError(f"password_env: environment variable {self.password_env!r} is not set")
        return self

    @property
    def secret(self) -> str | None:
        """The password (from ``password`` or the ``password_env`` variable, read now)."""
        if self.password_env is not None:
            return os.environ.get(self.password_env)
        return self.password

    @field_validator("publishing_interval", "timeout", "reconnect_delay_max", "metadata_timeout",
                     mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        if not v.startswith("opc.tcp://"):
            raise ValueError(f"must start with opc.tcp://, got {v!r}")
        return v

    @model_validator(mode="after")
    def _namespace(self):
        nodes = [t.node for t in self.tags]
        if self.context:
            nodes += [n for n in (self.context.batch, self.context.phase, self.context.recipe) if n]
        if self.namespace_uri is None:
            relative = [n for n in nodes if not n.startswith(("ns=", "nsu="))]
            if relative:
                raise ValueError(f"node {relative[0]!r} has no namespace: set namespace_uri "
                                 "or write it as 'ns=N;...' / 'nsu=URI;...'")
        return self


RegisterTable = Literal["holding", "input"]
Table = Literal["holding", "input", "coil", "discrete"]
Encoding = Literal["float32", "float64", "int16", "uint16", "int32", "uint32", "int64", "uint64", "bool"]
WordOrder = Literal["big", "little"]


class ContextRegister(_Model):
    """A context value read from the device: numbers via ``names`` or ``format``, or text."""

    table: RegisterTable = "holding"
    address: int = Field(ge=0, le=65535)
    encoding: Literal["int16", "uint16", "int32", "uint32", "string"] = "uint16"
    word_order: WordOrder = "big"
    #: Registers holding the text (two ASCII characters each), for ``encoding = "string"``.
    count: int = Field(1, ge=1, le=125)
    #: Value -> name, e.g. phase numbers to phase names; unmapped values use ``format``.
    names: dict[int, str] = {}
    #: How a number becomes the context value, e.g. ``"B-{}"``.
    format: str = "{}"

    @field_validator("names", mode="before")
    @classmethod
    def _int_keys(cls, v: Any) -> Any:
        # TOML table keys are strings: {0 = "idle"} arrives as {"0": "idle"}
        if isinstance(v, dict):
            try:
                return {int(k): val for k, val in v.items()}
            except ValueError as err:
                raise ValueError("keys must be integers") from err
        return v


class ModbusContext(_Model):
    unit: str = Field(min_length=1)
    #: Each: a fixed string, a register to read, or absent.
    batch: str | ContextRegister | None = None
    phase: str | ContextRegister | None = None
    recipe: str | ContextRegister | None = None


class ModbusTag(_TagMeta):
    table: Table = "holding"
    address: int = Field(ge=0, le=65535)
    #: Default ``uint16`` for registers, ``bool`` for coils and discrete inputs.
    encoding: Encoding | None = None
    word_order: WordOrder = "big"
    scale: float = 1.0
    offset: float = 0.0

    @model_validator(mode="after")
    def _encoding(self):
        bits = self.table in ("coil", "discrete")
        if self.encoding is None:
            object.__setattr__(self, "encoding", "bool" if bits else "uint16")
        elif bits and self.encoding != "bool":
            raise ValueError(f"table {self.table!r} holds bits: encoding must be 'bool'")
        return self

    @property
    def resolved_datatype(self) -> str:
        if self.datatype:
            return self.datatype
        if self.encoding == "bool":
            return "bool"
        if self.encoding.startswith("float") or self.scale != 1.0 or self.offset != 0.0:
            return "float"
        return "int"


class ModbusSource(_Model):
    name: str = Field(min_length=1)
    host: str = Field(min_length=1)
    port: int = Field(502, ge=1, le=65535)
    #: Modbus unit (device) id.
    unit_id: int = Field(1, ge=0, le=255)
    poll_interval: Duration = 1.0
    timeout: Duration = 1.0
    #: Backoff between reconnect attempts (never 0: that spins).
    reconnect_delay: Duration = 1.0
    reconnect_delay_max: Duration = 30.0
    #: Largest gap of unused registers merged into one read rather than split.
    max_gap: int = Field(8, ge=0, le=124)
    context: ModbusContext | None = None
    tags: list[ModbusTag] = Field(min_length=1)


class EdgeConfig(_Model):
    edge: EdgeSection
    mqtt: MqttSection = MqttSection()
    outbox: OutboxSection = OutboxSection()
    opcua: list[OpcUaSource] = []
    modbus: list[ModbusSource] = []

    @model_validator(mode="after")
    def _unique_names(self):
        seen: dict[str, str] = {}
        for kind, sources in (("opcua", self.opcua), ("modbus", self.modbus)):
            for i, src in enumerate(sources):
                for j, tag in enumerate(src.tags):
                    here = f"{kind}[{i}].tags[{j}].name"
                    if tag.name in seen:
                        raise ValueError(f"{here}: duplicate tag name {tag.name!r} "
                                         f"(already {seen[tag.name]})")
                    seen[tag.name] = here
        names: dict[str, str] = {}
        for kind, sources in (("opcua", self.opcua), ("modbus", self.modbus)):
            for i, src in enumerate(sources):
                if src.name in names:
                    raise ValueError(f"{kind}[{i}].name: duplicate source name {src.name!r} "
                                     f"(already {names[src.name]})")
                names[src.name] = f"{kind}[{i}].name"
        return self

    @model_validator(mode="after")
    def _memory_bound(self):
        if self.outbox.max_memory_samples < self.mqtt.max_samples_per_message:
            raise ValueError(
                f"outbox.max_memory_samples ({self.outbox.max_memory_samples}) must be at least "
                f"mqtt.max_samples_per_message ({self.mqtt.max_samples_per_message})")
        return self

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"batchwire-edge-{self.edge.id}"


# --------------------------------------------------------------------------- loading


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _describe(err: ValidationError) -> list[str]:
    errors = err.errors()
    # A setting that may be "a string or a table" fails both branches; when the table branch
    # has something specific to say, the generic "not a string" is noise.
    union_marks = ("str", "ContextRegister")
    def strip(loc: tuple) -> tuple:
        return tuple(p for p in loc if not (isinstance(p, str) and p in union_marks))
    specific = {strip(e["loc"])[:len(strip(e["loc"]))] for e in errors if "ContextRegister" in e["loc"]}
    problems = []
    for e in errors:
        loc = strip(e["loc"])
        if "str" in e["loc"] and any(s[:len(loc)] == loc for s in specific):
            continue
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        elif msg == "Field required":
            msg = "field required"
        elif msg == "Extra inputs are not permitted":
            msg = "unknown setting"
        where = _where(loc)
        problems.append(f"{where}: {msg}" if where else msg)
    return problems


def parse_config(data: dict[str, Any], *, source: str = "<dict>") -> EdgeConfig:
    """Validate a configuration given as a dict; raises :class:`ConfigError`."""
    try:
        return EdgeConfig.model_validate(data)
    except ValidationError as err:
        problems = _describe(err)
        raise ConfigError(f"{source}: " + "; ".join(problems), source=source, problems=problems) from err


def load_config(path: str | Path) -> EdgeConfig:
    """Read and validate a TOML configuration file; raises :class:`ConfigError`."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: file not found", source=str(path)) from err
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err}", source=str(path)) from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}", source=str(path)) from err
    return parse_config(data, source=str(path))


__all__ = [
    "ConfigError", "EdgeConfig", "EdgeSection", "MqttSection", "OutboxSection", "OpcUaSource",
    "OpcUaTag", "OpcUaContext", "ModbusSource", "ModbusTag", "ModbusContext", "ContextRegister",
    "load_config", "parse_config", "parse_duration",
]
