"""Generated Google service-account credentials for offline tests.

The key is a fresh RSA key made with ``cryptography``; ``token_uri`` points at a token endpoint you
control (the loopback :class:`~router.testing.vertex_stub.VertexStub` serves one at ``/token``), so
google-auth's JWT-bearer grant, as litellm's Vertex code runs it, never leaves the machine.
"""

from __future__ import annotations

import json
import os
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

DEFAULT_PROJECT = "router-stub-project"


@lru_cache(maxsize=1)
def _private_key_pem() -> str:
    # One key per process: RSA generation costs ~50 ms and any key will do for a stub.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    ).decode("ascii")


def make_service_account(token_uri: str, project_id: str = DEFAULT_PROJECT) -> dict[str, Any]:
    """A service-account JSON document (as a dict) whose token endpoint is ``token_uri``."""
    email = f"router-stub@{project_id}.iam.gserviceaccount.com"
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": uuid.uuid4().hex,
        "private_key": _private_key_pem(),
        "client_email": email,
        "client_id": str(uuid.uuid4().int)[:21],
        "auth_uri": token_uri.rsplit("/", 1)[0] + "/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": token_uri.rsplit("/", 1)[0] + "/certs",
        "client_x509_cert_url": token_uri.rsplit("/", 1)[0] + "/certs/" + email,
        "universe_domain": "googleapis.com",
    }


def write_service_account(path: str | os.PathLike[str], token_uri: str, project_id: str = DEFAULT_PROJECT) -> Path:
    """Write :func:`make_service_account` to ``path`` (mode 0600) and return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(make_service_account(token_uri, project_id), indent=2), encoding="utf-8")
    try:
        target.chmod(0o600)
    except OSError:  # pragma: no cover - e.g. a filesystem without modes
        pass
    return target
