"""The policy JSON Schema (for editor completion), generated from the pydantic models.

The shipped copy is ``router/policy_schema.json``; regenerate it with ``python -m router.policy.schema``
(a test checks it is up to date). Reference it from a policy with
``# yaml-language-server: $schema=../router/policy_schema.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "policy_schema.json"
SCHEMA_ID = "https://github.com/vertex-policy-router/vertex-policy-router/router/policy_schema.json"


def policy_json_schema() -> dict[str, Any]:
    from router.policy.model import Policy

    schema = Policy.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    return json.dumps(policy_json_schema(), indent=2, sort_keys=True) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    path.write_text(schema_text(), encoding="utf-8")
    return path


if __name__ == "__main__":  # pragma: no cover
    print(write_schema())
