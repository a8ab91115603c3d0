"""``rediss://``: the ledger over TLS against a real redis-server with a TLS port (self-signed CA)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import redis

from router.ledger import BudgetScope, Window, store_from_url
from router.testing.redis_server import find_redis_server, free_port
from tests.fixtures_redis import need_redis_server

pytestmark = pytest.mark.redis_server


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_redis(tmp_path):
    need_redis_server()
    binary = find_redis_server()
    cert, key = _self_signed(tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
         "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    try:
        for _ in range(100):
            try:
                if redis.Redis.from_url(url).ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_reserve_settle_and_snapshot_over_tls(tls_redis):
    store = store_from_url(tls_redis, prefix=f"t{uuid.uuid4().hex[:8]}")
    budget = BudgetScope("tenant:acme", Window.parse("calendar:month@UTC"), Decimal("1"))
    try:
        assert (await store.reserve("r1", [budget], Decimal("0.6"), 60)).granted
        denied = await store.reserve("r2", [budget], Decimal("0.6"), 60)
        assert not denied.granted and denied.denied_scope == budget.id
        assert await store.settle("r1", Decimal("0.123456789"))
        assert await store.spend(budget) == Decimal("0.123456789")
        assert (await store.snapshot([budget], [], [])).spend[budget.id] == Decimal("0.123456789")
    finally:
        await store.close()


async def test_tls_without_the_ca_is_refused_clearly(tls_redis):
    from router.errors import StoreUnavailableError

    store = store_from_url(tls_redis.split("?")[0], prefix="t")
    budget = BudgetScope("global", Window.parse("rolling:1h"), Decimal("1"))
    try:
        with pytest.raises(StoreUnavailableError) as info:
            await store.reserve("r1", [budget], Decimal("0.1"), 60)
        assert "rediss://" in str(info.value)
    finally:
        await store.close()
