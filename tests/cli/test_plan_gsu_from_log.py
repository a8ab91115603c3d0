"""`router plan-gsu --from-log`: a subscription sized from a small fixed request log, checked by hand."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from router.cli import get_app

runner = CliRunner()

# gemini-2.0-flash (seed 000): $0.15 / 1M input, $1.00 / 1M audio input, $0.60 / 1M output; burndown
# text input 1, audio input 7, output 4; 3,360 tokens/s per GSU.
#   A  s0  1000 in, 500 out          -> 1000 + 2000        = 3000 tokens, $0.00045
#   B  s0  2000 in, 250 out          -> 2000 + 1000        = 3000 tokens, $0.00045
#   C  s1  1360 in, 500 out          -> 1360 + 2000        = 3360 tokens, $0.000504
#   D  s3  3000 in, 1000 out         -> 3000 + 4000        = 7000 tokens, $0.00105
#   E  s5  400 in (100 audio), 50 out -> 300 + 700 + 200   = 1200 tokens, $0.000045 + $0.0001 + $0.00003 = $0.000175
#   F  s9  gemini-2.5-flash (no burndown rates): not sized, but the log spans s0..s9 = 10 seconds
LOG = [
    ("00.100", "gemini-2.0-flash", 1000, 500, 0),
    ("00.900", "gemini-2.0-flash", 2000, 250, 0),
    ("01.000", "gemini-2.0-flash", 1360, 500, 0),
    ("03.500", "gemini-2.0-flash", 3000, 1000, 0),
    ("05.000", "gemini-2.0-flash", 400, 50, 100),
    ("09.999", "gemini-2.5-flash", 100, 10, 0),
]


def write_log(path):
    lines = []
    for i, (sec, model, inp, out, audio) in enumerate(LOG):
        usage = {"input_tokens": inp, "output_tokens": out, "thinking_tokens": 0, "audio_input_tokens": audio}
        lines.append(json.dumps({"at": f"2026-11-02T10:00:{sec}+00:00", "request_id": f"r{i}", "model": model, "prompt_tokens": inp, "max_tokens": 1024, "usage": usage, "cost_usd": "0"}))
    path.write_text("\n".join(lines) + "\n")
    return path


def run(*args):
    return runner.invoke(get_app(), list(args))


def test_sized_at_the_90th_percentile_with_the_paygo_it_avoids(tmp_path):
    log = write_log(tmp_path / "requests.jsonl")
    result = run("plan-gsu", "--from-log", str(log), "--percentile", "90", "--json")
    assert result.exit_code == 0, result.output
    [plan] = json.loads(result.stdout)
    # per-second load over s0..s9: 6000, 3360, 0, 7000, 0, 1200, 0, 0, 0, 0; nearest rank ceil(0.9 x 10) = 9th
    # smallest = 6000 tokens/s -> 6000 / 3360 = 1.7857 GSU -> 2 GSU (6,720 tokens/s)
    assert plan["model"] == "gemini-2.0-flash"
    assert (plan["requests"], plan["span_seconds"], plan["burndown_tokens"]) == (5, 10, 17_560)
    assert (plan["tokens_per_second_at_percentile"], plan["peak_tokens_per_second"]) == (6000, 7000)
    assert (plan["exact_gsu"], plan["gsu"]) == ("1.7857", 2)
    # D (7,000 in one second) does not fit in 6,720/s: A, B, C, E are covered
    assert plan["covered_requests"] == 4
    assert plan["paygo_usd"] == "0.002629"
    assert plan["paygo_avoided_usd"] == "0.001579"
    # per week: 0.001579 x 604800 / 10 = 95.49792 -> $95.50 against 2 x $1,200; per 30-day month: x 259200 = 409.2768
    terms = plan["terms"]
    assert terms["1w"] == {"per": "week", "price_usd": "2400", "paygo_avoided_usd": "95.5", "saving_usd": "-2304.5", "pays_off": False}
    assert terms["1m"] == {"per": "month", "price_usd": "5400", "paygo_avoided_usd": "409.28", "saving_usd": "-4990.72", "pays_off": False}
    assert terms["3m"]["price_usd"] == "4800" and terms["3m"]["saving_usd"] == "-4390.72"
    assert terms["1y"]["price_usd"] == "4000" and terms["1y"]["saving_usd"] == "-3590.72"
    assert plan["recommendation"].startswith("stay on PayGo")


def test_at_the_100th_percentile_everything_fits(tmp_path):
    log = write_log(tmp_path / "requests.jsonl")
    result = run("plan-gsu", "--from-log", str(log), "--model", "gemini-2.0-flash", "--percentile", "100", "--json")
    assert result.exit_code == 0, result.output
    [plan] = json.loads(result.stdout)
    # 7000 / 3360 = 2.0833 -> 3 GSU; all five fit: $0.002629 over 10 s -> x 259200 = $681.4368 a month
    assert (plan["gsu"], plan["covered_requests"], plan["paygo_avoided_usd"]) == (3, 5, "0.002629")
    assert plan["terms"]["1y"] == {"per": "month", "price_usd": "6000", "paygo_avoided_usd": "681.44", "saving_usd": "-5318.56", "pays_off": False}


def test_even_a_fully_used_subscription_of_gemini_2_0_flash_does_not_pay_off_at_list_prices(tmp_path):
    # 33,600 burndown tokens every second for 10 s (13,600 in + 5,000 out x 4): exactly 10 GSU, 100 % used.
    # Each request costs 13600 x $0.15/1M + 5000 x $0.60/1M = $0.00504 on PayGo; over 10 s $0.0504, so a
    # 30-day month avoids 0.0504 x 259200 = $13,063.68 against 10 x $2,000 on the 1-year term.
    lines = []
    for sec in range(10):
        usage = {"input_tokens": 13_600, "output_tokens": 5_000, "thinking_tokens": 0, "audio_input_tokens": 0}
        lines.append(json.dumps({"at": f"2026-11-02T10:00:0{sec}+00:00", "model": "gemini-2.0-flash", "prompt_tokens": 13_600, "usage": usage, "cost_usd": "0"}))
    (tmp_path / "r.jsonl").write_text("\n".join(lines) + "\n")
    result = run("plan-gsu", "--from-log", str(tmp_path / "r.jsonl"), "--json")
    [plan] = json.loads(result.stdout)
    assert (plan["gsu"], plan["covered_requests"], plan["paygo_avoided_usd"]) == (10, 10, "0.0504")
    assert plan["terms"]["1y"] == {"per": "month", "price_usd": "20000", "paygo_avoided_usd": "13063.68", "saving_usd": "-6936.32", "pays_off": False}
    assert plan["recommendation"].startswith("stay on PayGo")
    text = run("plan-gsu", "--from-log", str(tmp_path / "r.jsonl"))
    assert text.exit_code == 0 and "10 GSU" in text.stdout and "recommendation: stay on PayGo" in text.stdout


def test_errors_are_one_line_and_exit_2(tmp_path):
    log = write_log(tmp_path / "requests.jsonl")
    result = run("plan-gsu", "--from-log", str(log), "--model", "gemini-2.5-flash")
    assert result.exit_code == 2 and "burndown" in result.output
    result = run("plan-gsu", "--from-log", str(tmp_path / "missing.jsonl"))
    assert result.exit_code == 2 and "no such request log" in result.output
    result = run("plan-gsu", "--from-log", str(log), "--percentile", "0")
    assert result.exit_code == 2
    (tmp_path / "bad.jsonl").write_text("{not json}\n")
    result = run("plan-gsu", "--from-log", str(tmp_path / "bad.jsonl"))
    assert result.exit_code == 2 and "bad.jsonl:1" in result.output


def test_a_term_that_pays_off_is_recommended(tmp_path):
    """With an overlay's burndown rates (test values, not Google's: 650 adjusted tokens/s per GSU, output x 8)
    for gemini-2.5-pro ($10 per 1M output, seed 000): 80 output tokens every second = 640 adjusted tokens/s
    -> 1 GSU; $0.0008 a second, $0.008 over the 10 s log; a 30-day month avoids 0.008 x 259200 = $2,073.60."""
    from decimal import Decimal

    from router.catalog import load_catalog
    from router.gsu import plan_gsu_from_log

    (tmp_path / "pt.yaml").write_text(
        "provisioned_burndown:\n"
        "  - {model: gemini-2.5-pro, tokens_per_second_per_gsu: 650, min_gsu_increment: 1, input_text: 1, input_audio: 1, output_text: 8,\n"
        "     provenance: {source: 'https://example.com/test-sheet', section: test values}}\n"
    )
    catalog = load_catalog(overlays=[tmp_path / "pt.yaml"])
    entries = [
        (i + 1, {"at": f"2026-11-02T10:00:0{i}+00:00", "model": "gemini-2.5-pro", "usage": {"input_tokens": 0, "output_tokens": 80}})
        for i in range(10)
    ]
    [plan] = plan_gsu_from_log(catalog, entries)
    assert (plan.gsu, plan.tokens_per_second_at_percentile, plan.paygo_avoided_usd) == (1, 640, Decimal("0.008"))
    verdicts = {v.term: (v.price_usd, v.paygo_avoided_usd, v.saving_usd, v.pays_off) for v in plan.terms}
    assert verdicts == {
        "1w": (Decimal(1200), Decimal("483.84"), Decimal("-716.16"), False),  # 0.008 x 60480
        "1m": (Decimal(2700), Decimal("2073.60"), Decimal("-626.40"), False),
        "3m": (Decimal(2400), Decimal("2073.60"), Decimal("-326.40"), False),
        "1y": (Decimal(2000), Decimal("2073.60"), Decimal("73.60"), True),
    }
    assert plan.recommendation == "buy 1 GSU on the 1y term: it saves $73.60 per month at this traffic"
