"""`import router` and friends must never pay for litellm: the transport imports it lazily."""

import subprocess
import sys


def test_router_modules_do_not_import_litellm():
    code = (
        "import sys\n"
        "import router, router._transport, router._transport.mock, router._transport.litellm_adapter, router.cli, router.testing, router.testing.vertex_stub, router.testing.credentials\n"
        "from router._transport import CallSpec, VertexSettings, build_call_kwargs, MockTransport\n"
        "build_call_kwargs(CallSpec('m', 'gemini', 'gemini-2.5-flash', 'global', [{'role': 'user', 'content': 'x'}]), VertexSettings())\n"
        "loaded = sorted(m for m in sys.modules if m == 'litellm' or m.startswith('litellm.'))\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_only_the_transport_imports_litellm():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "router"
    offenders = []
    for path in root.rglob("*.py"):
        if path == root / "_transport" / "litellm_adapter.py":
            continue
        text = path.read_text(encoding="utf-8")
        if "import litellm" in text or "from litellm" in text:
            offenders.append(str(path.relative_to(root)))
    assert offenders == []
    assert "import litellm" in (root / "_transport" / "litellm_adapter.py").read_text(encoding="utf-8")
