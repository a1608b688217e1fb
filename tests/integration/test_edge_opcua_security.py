"""OPC UA security: a secured server (self-signed certificate, user name and password, no
unsecured endpoint), a client with the server's certificate pinned; a wrong pinned
certificate or a wrong password is refused."""

from __future__ import annotations

import pytest
from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole

from edge.agent import EdgeAgent
from edge.config import ConfigError, parse_config
from edge.contract.messages import now_micros
from tests.conftest import free_port
from tests.integration.test_edge_fixtures import (NAMESPACE, OpcUaPlant, make_app_certificate, utc,
                                                  wait_until)

SITE, EDGE = "site-a", "gw-sec"
USER, PASSWORD = "edge", "s3cret-pw"


class _Users:
    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username == USER and password == PASSWORD:
            return User(role=UserRole.User)
        return None  # refused


class SecuredPlant(OpcUaPlant):
    def __init__(self, port: int, cert: str, key: str):
        super().__init__(port)
        self.server = Server(user_manager=_Users())
        self.cert, self.key = cert, key

    async def configure(self, server: Server) -> None:
        await server.load_certificate(self.cert)
        await server.load_private_key(self.key)
        server.set_server_name("batchwire secured test plant")
        # only the secured endpoint: the unsecured one is on by default
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        server.set_identity_tokens([ua.UserNameIdentityToken])


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    return {
        "server": make_app_certificate(d, "server", "urn:batchwire:test:server", server=True),
        "impostor": make_app_certificate(d, "impostor", "urn:batchwire:test:server", server=True),
        "client": make_app_certificate(d, "client", "urn:batchwire:test:edge", server=False),
    }


@pytest.fixture
async def plant(certs):
    p = SecuredPlant(free_port(), *certs["server"])
    await p.start()
    yield p
    await p.stop()


def opcua(endpoint: str, certs, *, pinned: str = "server", **extra) -> dict:
    cert, key = certs["client"]
    return {"name": "br01", "endpoint": endpoint, "namespace_uri": NAMESPACE, "publishing_interval": 0.05,
            "metadata_timeout": 1, "timeout": 2,
            "security_policy": "Basic256Sha256", "security_mode": "SignAndEncrypt",
            "certificate": cert, "private_key": key, "server_certificate": certs[pinned][0],
            "username": USER, **extra,
            "tags": [{"name": "BR01.TEMP", "node": "s=BR01.TEMP"}]}


def config(source: dict, mqtt_url: str, prefix: str, tmp_path):
    return parse_config({"edge": {"id": EDGE, "site": SITE, "data_dir": str(tmp_path / "o")},
                         "mqtt": {"url": mqtt_url, "topic_prefix": prefix, "max_batch_delay": 0.05},
                         "opcua": [source]})


async def test_secured_server_with_pinned_certificate_and_password_from_env(
        plant, certs, collector, mqtt_url, topic_prefix, tmp_path, monkeypatch):
    monkeypatch.setenv("BW_TEST_OPCUA_PASSWORD", PASSWORD)
    cfg = config(opcua(plant.endpoint, certs, password_env="BW_TEST_OPCUA_PASSWORD"), mqtt_url, topic_prefix,
                 tmp_path)
    async with EdgeAgent(cfg) as agent:
        await wait_until(lambda: agent.stats()["sources"]["br01"], what="secured OPC UA subscription")
        await plant.write("BR01.TEMP", 21.5, utc(now_micros()))
        await wait_until(lambda: any(s.value == 21.5 for s, _ in collector.samples("BR01.TEMP")),
                         what="data over the secured channel")
    assert {t.name: t.unit for t in collector.of("birth")[0].tags} == {"BR01.TEMP": "degC"}


@pytest.mark.parametrize("case, error", [
    ("wrong pinned certificate", "not the pinned server_certificate"),
    # without the endpoint check, the secure channel itself fails: nothing is trusted
    ("wrong pinned certificate, channel only", ""),
    ("wrong password", "BadUserAccessDenied"),
    ("no security", "No matching endpoints"),
])
async def test_refused(case, error, plant, certs, collector, mqtt_url, topic_prefix, tmp_path, monkeypatch):
    if case.startswith("wrong pinned certificate"):
        source = opcua(plant.endpoint, certs, pinned="impostor", password=PASSWORD)
        if case.endswith("channel only"):
            from edge.sources.opcua import OpcUaSource

            async def no_check(self, policy_uri, mode):
                return None

            monkeypatch.setattr(OpcUaSource, "_check_pinned", no_check)
    elif case == "wrong password":
        source = opcua(plant.endpoint, certs, password="not-it")
    else:  # the server offers no unsecured endpoint
        source = {"name": "br01", "endpoint": plant.endpoint, "namespace_uri": NAMESPACE, "timeout": 2,
                  "metadata_timeout": 1, "tags": [{"name": "BR01.TEMP", "node": "s=BR01.TEMP"}]}
    async with EdgeAgent(config(source, mqtt_url, topic_prefix, tmp_path)) as agent:
        src = agent.sources[0]
        await wait_until(lambda: src.attempts >= 2 and src.last_error is not None, timeout=30,
                         what="two refused connection attempts")
        assert src.connections == 0 and not src.connected
        assert error in src.last_error
        assert not any(s.value is not None for s, _ in collector.samples("BR01.TEMP"))


def test_policy_without_pinned_server_certificate_is_refused_at_start(certs, tmp_path):
    source = opcua("opc.tcp://127.0.0.1:4840/", certs)
    del source["server_certificate"]
    with pytest.raises(ConfigError, match=r"opcua\[0\]: server_certificate: required when security_policy"):
        config(source, "mqtt://127.0.0.1:1883", "p", tmp_path)


@pytest.mark.parametrize("change, message", [
    ({"certificate": "/nonexistent/client.pem"}, r"certificate: cannot read"),
    ({"private_key": "CERT"}, r"private_key: .* is not an unencrypted private key"),
    ({"password": "x", "password_env": "Y"}, r"password, password_env: give one or the other"),
    ({"password_env": "BW_TEST_SURELY_UNSET_VARIABLE"}, r"password_env: environment variable"),
    ({"username": None, "password": "x"}, r"username: required"),
])
def test_security_settings_are_validated(certs, tmp_path, change, message):
    source = opcua("opc.tcp://127.0.0.1:4840/", certs)
    source.update({k: (certs["client"][0] if v == "CERT" else v) for k, v in change.items()})
    with pytest.raises(ConfigError, match=message):
        config(source, "mqtt://127.0.0.1:1883", "p", tmp_path)


def test_certificate_settings_without_a_policy_are_refused(certs, tmp_path):
    source = {"name": "a", "endpoint": "opc.tcp://127.0.0.1:4840/", "namespace_uri": NAMESPACE,
              "server_certificate": certs["server"][0], "tags": [{"name": "T", "node": "s=T"}]}
    with pytest.raises(ConfigError, match=r"server_certificate: has no effect without security_policy"):
        config(source, "mqtt://127.0.0.1:1883", "p", tmp_path)
