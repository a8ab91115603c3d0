"""Issue 11 item 12: models whose task is not chat (OCR) are not chat candidates unless the request asks
for that task, and ``router catalog --json`` shows why a model may be rejected."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from router.catalog import default_catalog
from router.cli import get_app
from router.policy import RequestFeatures, StateSnapshot, compile_policy, load_policy

REPO = Path(__file__).resolve().parents[2]
OCR_MODELS = {"mistral-ocr-2505", "deepseek-ocr"}


def _readme_smallest_policy() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("### 1. The smallest policy", 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


def _decide(task: str | None, day: str = "2026-01-15"):
    import datetime as dt

    catalog = default_catalog()
    compiled = compile_policy(load_policy(_readme_smallest_policy(), catalog), catalog)
    features = RequestFeatures(prompt_tokens=50, max_tokens=100, task=task, at=dt.date.fromisoformat(day))
    return compiled.decide(features, StateSnapshot())


def test_the_readme_smallest_policy_does_not_send_chat_to_an_ocr_model():
    for day in ("2025-10-01", "2026-01-15"):  # deepseek-ocr is free until 2025-12-17: the cheapest of all then
        decision = _decide(None, day)
        assert decision.primary.model not in OCR_MODELS
        assert not OCR_MODELS & {c.model for c in decision.fallbacks}
        reasons = dict(decision.rejected)
        assert reasons["mistral-ocr-2505"] == "an ocr model, not a chat model: only requests with task=ocr use it"
        assert reasons["deepseek-ocr"] == "an ocr model, not a chat model: only requests with task=ocr use it"
    assert _decide("summarise").primary.model not in OCR_MODELS


def test_a_request_asking_for_ocr_can_use_an_ocr_model():
    decision = _decide("ocr")
    assert decision.primary.model == "mistral-ocr-2505"  # $0.0005 per 1M tokens in and out: the cheapest
    assert "mistral-ocr-2505" not in dict(decision.rejected)


def test_catalog_json_shows_task_capabilities_limits_and_grounding():
    result = CliRunner().invoke(get_app(), ["catalog", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in json.loads(result.output)}
    ocr = rows["mistral-ocr-2505"]
    assert (ocr["task"], ocr["capabilities"], ocr["context_window"], ocr["max_output_tokens"], ocr["grounding_kinds"]) == (
        "ocr", ["ocr", "pdf", "vision"], 32768, 8192, []
    )
    assert rows["deepseek-ocr"]["task"] == "ocr"
    flash = rows["gemini-2.5-flash"]
    assert flash["task"] == "chat"
    assert flash["max_output_tokens"] == 65535 and flash["context_window"] == 1048576
    assert flash["grounding_kinds"] == ["enterprise_web_search", "google_maps", "google_search", "your_data"]
    assert "tools" in flash["capabilities"]
    assert rows["claude-sonnet-4-5"]["grounding_kinds"] == ["web_search"]
    assert {r["task"] for r in rows.values()} == {"chat", "ocr"}
