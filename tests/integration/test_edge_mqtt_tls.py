"""MQTT over TLS: a Mosquitto of the test's own with a certificate from a CA generated here
(the shared broker is never touched); validation of the TLS settings."""

from __future__ import annotations

import datetime
import shutil
import subprocess
import uuid

import pytest

from edge.agent import EdgeAgent
from edge.config import ConfigError, parse_config
from edge.errors import PublishError
from edge.publisher import MqttLink
from tests.conftest import free_port
from tests.integration.test_edge_fixtures import wait_until


def _write_ca_and_server(d) -> dict[str, str]:
    """A CA, a server certificate it signs for DNS name 'localhost' only, and an unrelated CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def ca(cn):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        return key, cert

    ca_key, ca_cert = ca("batchwire test CA")
    _, other_cert = ca("some other CA")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    files = {"ca": ca_cert.public_bytes(pem), "other_ca": other_cert.public_bytes(pem),
             "cert": cert.public_bytes(pem),
             "key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())}
    out = {}
    for k, data in files.items():
        (d / f"{k}.pem").write_bytes(data)
        out[k] = str(d / f"{k}.pem")
    return out


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return _write_ca_and_server(tmp_path_factory.mktemp("mqtt-pki"))


@pytest.fixture
def tls_broker(pki, tmp_path):
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not shutil.which(exe):
        pytest.skip("mosquitto binary not installed")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    # "user root": keep the privileges of the test (mosquitto otherwise switches to an account
    # that cannot read the test's temporary key files); the listener is loopback only
    conf.write_text(f"user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"cafile {pki['ca']}\ncertfile {pki['cert']}\nkeyfile {pki['key']}\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield port
    proc.terminate()
    proc.wait(10)


async def _listening(port: int) -> None:
    import socket

    def up():
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            return False

    await wait_until(up, what="TLS broker listening")


def _link(host: str, port: int, **tls) -> MqttLink:
    return MqttLink(host=host, port=port, client_id=f"bwtest-{uuid.uuid4().hex[:8]}", tls=True, timeout=5, **tls)


async def test_tls_verifies_the_broker(pki, tls_broker):
    await _listening(tls_broker)
    async with _link("localhost", tls_broker, ca_file=pki["ca"]) as link:
        await link.publish_wait("bwtest/tls", b"over TLS")
    # the certificate names 'localhost', not '127.0.0.1': refused unless told to skip that check
    with pytest.raises(PublishError):
        async with _link("127.0.0.1", tls_broker, ca_file=pki["ca"]):
            pass
    async with _link("127.0.0.1", tls_broker, ca_file=pki["ca"], tls_insecure=True) as link:
        await link.publish_wait("bwtest/tls", b"name not checked")
    # a certificate from a CA we do not trust: refused, tls_insecure or not
    for insecure in (False, True):
        with pytest.raises(PublishError):
            async with _link("localhost", tls_broker, ca_file=pki["other_ca"], tls_insecure=insecure):
                pass


async def test_agent_connects_over_tls(pki, tls_broker, tmp_path):
    await _listening(tls_broker)
    cfg = parse_config({"edge": {"id": "gw-tls", "site": "s", "data_dir": str(tmp_path / "o")},
                        "mqtt": {"url": f"mqtts://localhost:{tls_broker}", "ca_file": pki["ca"]}})
    async with EdgeAgent(cfg, sources=[]) as agent:
        await wait_until(lambda: agent.stats()["connected"] and agent.stats()["births"] == 1,
                         what="connected over TLS")


@pytest.mark.parametrize("mqtt, message", [
    ({"url": "mqtt://127.0.0.1:1883", "ca_file": "CA"}, r"mqtt: ca_file: needs a TLS url"),
    ({"url": "mqtt://127.0.0.1:1883", "tls_insecure": True}, r"mqtt: tls_insecure: needs a TLS url"),
    ({"url": "mqtts://localhost", "cert_file": "CERT"}, r"mqtt: key_file: required with cert_file"),
    ({"url": "mqtts://localhost", "ca_file": "/nonexistent/ca.pem"}, r"mqtt: ca_file: cannot load"),
    ({"url": "mqtts://localhost", "ca_file": "KEY"}, r"mqtt: ca_file: cannot load"),
    ({"url": "mqtts://localhost", "cert_file": "CERT", "key_file": "CA"}, r"mqtt: cert_file, key_file: cannot load"),
])
def test_tls_settings_are_validated(pki, mqtt, message):
    files = {"CA": pki["ca"], "CERT": pki["cert"], "KEY": pki["key"]}
    mqtt = {k: files.get(v, v) if isinstance(v, str) else v for k, v in mqtt.items()}
    with pytest.raises(ConfigError, match=message):
        parse_config({"edge": {"id": "e", "site": "s"}, "mqtt": mqtt})


def test_client_certificate_settings_load(pki):
    cfg = parse_config({"edge": {"id": "e", "site": "s"},
                        "mqtt": {"url": "mqtts://broker.example", "ca_file": pki["ca"],
                                 "cert_file": pki["cert"], "key_file": pki["key"]}})
    assert cfg.mqtt.tls and cfg.mqtt.port == 8883 and not cfg.mqtt.tls_insecure
