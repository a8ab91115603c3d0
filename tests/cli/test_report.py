"""`router replay --report`: the what-if report's figures against a hand-computed log, the HTML rendered in a
real headless browser (Debian's chromium), `router demo --report`, and a clear message without the extra."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from router.cli import get_app

REPO = Path(__file__).resolve().parents[2]

# gemini-2.5-flash (seed 000, Gemini 2.5 table): $0.30 / 1M input, $2.50 / 1M output; quality 63.2.
# gemini-2.5-flash-lite: $0.10 / 1M input, $0.40 / 1M output; quality 50.
# Each logged request: 1,000 input + 1,000 output tokens.
#   flash:      1000 x 0.30/1e6 + 1000 x 2.50/1e6 = 0.0003 + 0.0025 = $0.0028
#   flash-lite: 1000 x 0.10/1e6 + 1000 x 0.40/1e6 = 0.0001 + 0.0004 = $0.0005
QUALITY_POLICY = """
version: 1
candidates:
  - model: gemini-2.5-flash
  - model: gemini-2.5-flash-lite
profiles:
  quality:
    objective: best_quality
  cheap:
    objective: cheapest
default_profile: quality
budgets:
  - name: monthly
    scope: tenant
    window: calendar:month@UTC
    limit_usd: "0.005"
    actions:
      - at_percent: 50
        switch_profile: cheap
"""
CHEAP_POLICY = """
version: 1
candidates:
  - model: gemini-2.5-flash-lite
profiles:
  cheap:
    objective: cheapest
default_profile: cheap
"""


def _log(path: Path) -> Path:
    lines = []
    for i, minute in enumerate(("00", "10", "20", "30"), start=1):
        lines.append(
            {
                "at": f"2026-11-02T10:{minute}:00+00:00", "request_id": f"r{i}", "tenant": "t1", "app": None, "tags": {},
                "task": None, "prompt_tokens": 1000, "max_tokens": 1000, "grounding": None, "latency_sensitive": False,
                "capabilities": [], "model": "gemini-2.5-flash", "decided_model": "gemini-2.5-flash",
                "usage": {"input_tokens": 1000, "output_tokens": 1000, "thinking_tokens": 0}, "cost_usd": "0.0028",
            }
        )
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Path, Path]:
    quality = tmp_path / "quality.yaml"
    quality.write_text(QUALITY_POLICY)
    cheap = tmp_path / "cheap.yaml"
    cheap.write_text(CHEAP_POLICY)
    return _log(tmp_path / "requests.jsonl"), quality, cheap


def test_figures_of_two_policies_match_the_hand_computed_log(small):
    log, quality, cheap = small
    result = CliRunner().invoke(get_app(), ["replay", "--policy", str(quality), "--policy", str(cheap), "--log", str(log), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    first, second = data["policies"]
    assert (first["name"], second["name"]) == ("quality", "cheap")
    # quality: flash first ($0.0028 = 56 % of $0.005 >= 50 %), then downgraded to flash-lite ($0.0005 each).
    cumulative = first["figures"]["cumulative_spend"]
    assert [p["replayed_usd"] for p in cumulative] == ["0.0028", "0.0033", "0.0038", "0.0043"]
    assert [p["logged_usd"] for p in cumulative] == ["0.0028", "0.0056", "0.0084", "0.0112"]
    assert first["figures"]["budget_limits"] == {"tenant:t1|calendar:month@UTC": "0.005"}
    (fired,) = first["figures"]["actions_fired"]
    assert (fired["line"], fired["kind"], fired["budget"], fired["action"]) == (2, "downgrade", "tenant:t1|calendar:month@UTC", "profile cheap")
    assert fired["at"] == "2026-11-02T10:10:00+00:00"
    # Mean quality: (63.2 + 3 x 50) / 4 = 53.3 replayed; 63.2 logged.
    assert first["figures"]["mean_quality"] == {"logged": "63.2", "replayed": "53.3"}
    assert first["by_model"] == {"gemini-2.5-flash": {"logged": 4, "replayed": 1}, "gemini-2.5-flash-lite": {"logged": 0, "replayed": 3}}
    # cheap: flash-lite throughout, $0.0005 x 4 = $0.002; no budget, nothing fired.
    assert [p["replayed_usd"] for p in second["figures"]["cumulative_spend"]] == ["0.0005", "0.001", "0.0015", "0.002"]
    assert second["figures"]["actions_fired"] == [] and second["figures"]["mean_quality"]["replayed"] == "50"
    assert second["by_tenant"]["t1"] == {"logged_usd": "0.0112", "replayed_usd": "0.002"}


def test_one_policy_keeps_the_single_report_shape(small):
    log, quality, _ = small
    result = CliRunner().invoke(get_app(), ["replay", "--policy", str(quality), "--log", str(log), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["replayed_usd"] == "0.0043" and data["logged_usd"] == "0.0112" and "figures" in data


def test_html_report_is_self_contained_with_every_chart_and_table(small, tmp_path):
    log, quality, cheap = small
    out = tmp_path / "report.html"
    result = CliRunner().invoke(get_app(), ["replay", "-p", str(quality), "-p", str(cheap), "--log", str(log), "--report", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    for title in ("Cumulative spend over time", "Model mix", "Spend per tenant", "Budget actions fired", "Grounding pools", "Quality bought per dollar"):
        assert title in text, title
    assert text.count("<svg") >= 5
    # No CDN, no network: nothing the browser would fetch (SVG namespace URIs are names, never fetched).
    for fetch in ('src="http', "src='http", 'href="http', "href='http", "url(http", "@import", "<link", "<script"):
        assert fetch not in text, fetch
    assert "$0.0043" in text and "$0.002" in text and "profile cheap" in text


def test_report_without_the_plotting_extra_names_the_extra(small, tmp_path, monkeypatch):
    log, quality, _ = small
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    result = CliRunner().invoke(get_app(), ["replay", "-p", str(quality), "--log", str(log), "--report", str(tmp_path / "r.html")])
    assert result.exit_code == 2
    assert "vertex-policy-router[report]" in result.output
    assert not (tmp_path / "r.html").exists()


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Debian's chromium is needed for the browser test (.ci/run installs it: apt-get install chromium)")
    return found


@pytest.mark.litellm
@pytest.mark.slow
def test_demo_report_renders_in_a_headless_browser(tmp_path):
    out = tmp_path / "demo-report.html"
    result = CliRunner().invoke(get_app(), ["demo", "--json", "--report", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    chromium = _chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}"]
    url = out.as_uri()
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") >= 5 and "Model mix" in dom.stdout
    shot = tmp_path / "shot.png"
    run = subprocess.run([chromium, *flags, "--window-size=1100,1600", f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))[:, :, :3]
    non_white = (pixels < 0.9).any(axis=2).mean()
    assert pixels.std() > 0.05, "screenshot is blank"
    assert 0.02 < non_white < 0.9, f"{non_white:.1%} of the page is drawn"
    # Colour (the charts' series) is present, not only black text on white.
    colourful = ((pixels.max(axis=2) - pixels.min(axis=2)) > 0.3).mean()
    assert colourful > 0.002, f"no chart colours on screen ({colourful:.3%})"
