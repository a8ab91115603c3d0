"""Provisioned Throughput planning: GSUs needed for a steady load, and the price of each commitment term."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from router.catalog.loader import Catalog
from router.errors import CatalogError, PriceNotAvailableError, UsageError


@dataclass(frozen=True)
class GsuPlan:
    """GSUs (rounded up to the purchase increment), the exact need, and USD per term (1w per week, others per month)."""

    model: str
    gsu: int
    exact_gsu: Decimal
    burndown_tokens_per_second: Decimal
    price_usd: dict[str, Decimal]
    provenance: str


def plan_gsu(
    catalog: Catalog,
    model: str,
    rps: Decimal,
    input_tokens: int,
    output_tokens: int,
    audio_input_tokens: int = 0,
) -> GsuPlan:
    """Plan Provisioned Throughput: ``input_tokens`` is the whole prompt, of which ``audio_input_tokens`` are audio."""
    model_id = catalog.resolve(model)
    for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens), ("audio_input_tokens", audio_input_tokens)):
        if value < 0:
            raise UsageError(name, "must not be negative")
    if rps <= 0:
        raise UsageError("rps", "must be positive")
    if audio_input_tokens > input_tokens:
        raise UsageError("audio_input_tokens", f"exceeds input_tokens ({input_tokens})")
    pt = catalog.provisioned
    if pt is None:
        raise CatalogError("the catalog has no Provisioned Throughput data")
    rates = next((b for b in pt.burndown if b.model == model_id), None)
    if rates is None:
        known = ", ".join(b.model for b in pt.burndown)
        raise PriceNotAvailableError(model_id, "provisioned_throughput.burndown", f"the seeds give burndown rates only for: {known}")
    text = input_tokens - audio_input_tokens
    per_request = text * rates.input_text + audio_input_tokens * rates.input_audio + output_tokens * rates.output_text
    per_second = Decimal(per_request) * rps
    exact = per_second / rates.tokens_per_second_per_gsu
    increments = (exact / rates.min_gsu_increment).to_integral_value(rounding=ROUND_CEILING)
    gsu = max(int(increments) * rates.min_gsu_increment, rates.min_gsu_increment)
    prices = {term: t.price_usd * gsu for term, t in pt.terms.items()}
    prov = f"{rates.provenance.seed}: {rates.provenance.section}; {pt.terms_provenance.section}"
    return GsuPlan(model_id, gsu, exact, per_second, prices, prov)


# --------------------------------------------------------------------------- sizing from a request log
#: Length of one priced period, for extrapolating a log's PayGo spend: a week, and a month of 30 days.
PERIOD_SECONDS = {"week": 7 * 86_400, "month": 30 * 86_400}
CENT = Decimal("0.01")


@dataclass(frozen=True)
class TermVerdict:
    """One commitment term against the PayGo spend the log would have avoided, per priced period."""

    term: str
    per: str
    price_usd: Decimal
    paygo_avoided_usd: Decimal
    saving_usd: Decimal

    @property
    def pays_off(self) -> bool:
        return self.saving_usd > 0


@dataclass(frozen=True)
class LogPlan:
    """A subscription sized from a request log for one model (see :func:`plan_gsu_from_log`)."""

    model: str
    requests: int
    span_seconds: int
    percentile: Decimal
    burndown_tokens: int
    tokens_per_second_at_percentile: int
    peak_tokens_per_second: int
    exact_gsu: Decimal
    gsu: int
    covered_requests: int
    paygo_usd: Decimal
    paygo_avoided_usd: Decimal
    terms: tuple[TermVerdict, ...]
    recommendation: str
    provenance: str


def _nearest_rank(values: list[int], percentile: Decimal) -> int:
    ordered = sorted(values)
    rank = int((percentile * len(ordered) / 100).to_integral_value(rounding=ROUND_CEILING))
    return ordered[max(rank, 1) - 1]


def plan_gsu_from_log(catalog: Catalog, entries: list[dict], model: str | None = None, percentile: Decimal = Decimal(99)) -> list[LogPlan]:
    """Size Provisioned Throughput from a request log (entries as :func:`router.replay.read_log` yields).

    Per model with burndown rates (or only ``model``): each request's burndown-adjusted tokens (text input,
    audio input, output + thinking at the catalog's rates) are summed per whole second of its ``at``
    time; every second from the log's first to its last counts (idle seconds are 0). The load to provision
    is the ``percentile`` (nearest rank) of those per-second sums; GSUs = that / tokens per second per GSU,
    rounded up to the purchase increment. The PayGo cost avoided: in each second, requests in log order
    are covered while the second's running sum stays within the GSUs' tokens per second; a covered
    request's PayGo cost (the cost engine's standard on-demand bill of its tokens, grounding excluded) is
    avoided. Per term, that is extrapolated from the log's span to one priced period (a week, or a month
    of 30 days, rounded to the cent) and set against the term's price for the GSUs.
    """
    from router.cost import Usage, compute_cost

    if not (Decimal(0) < percentile <= Decimal(100)):
        raise UsageError("percentile", "must be in (0, 100]")
    pt = catalog.provisioned
    if pt is None:
        raise CatalogError("the catalog has no Provisioned Throughput data")
    rates_of = {b.model: b for b in pt.burndown}
    wanted = catalog.resolve(model) if model is not None else None
    if wanted is not None and wanted not in rates_of:
        raise PriceNotAvailableError(wanted, "provisioned_throughput.burndown", f"the catalog has burndown rates for: {', '.join(rates_of)}")
    rows: dict[str, list[tuple[int, int, Decimal]]] = {}
    first_s: int | None = None
    last_s: int | None = None
    for number, entry in entries:
        at = dt.datetime.fromisoformat(entry["at"])
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.timezone.utc)
        second = int(at.timestamp() // 1)
        first_s = second if first_s is None else min(first_s, second)
        last_s = second if last_s is None else max(last_s, second)
        mid = entry.get("model")
        if not isinstance(mid, str) or mid not in catalog:
            continue
        mid = catalog.resolve(mid)
        if mid not in rates_of or (wanted is not None and mid != wanted):
            continue
        u = entry.get("usage") or {}
        try:
            inp, out, think, audio = (int(u.get(k, 0) or 0) for k in ("input_tokens", "output_tokens", "thinking_tokens", "audio_input_tokens"))
            usage = Usage.build(input_tokens=inp, output_tokens=out, thinking_tokens=think, audio_input_tokens=audio, at=at.date())
        except (TypeError, ValueError) as exc:
            raise UsageError(f"line {number}", f"bad usage in the request log ({exc})") from None
        r = rates_of[mid]
        tokens = (inp - audio) * r.input_text + audio * r.input_audio + (out + think) * r.output_text
        rows.setdefault(mid, []).append((second, tokens, compute_cost(catalog.get(mid), usage).total))
    if not rows:
        scope = wanted or "any model with burndown rates (" + ", ".join(rates_of) + ")"
        raise UsageError("log", f"no request of {scope} in the log")
    assert first_s is not None and last_s is not None
    span = last_s - first_s + 1
    plans = []
    for mid in sorted(rows):
        r = rates_of[mid]
        per_second: dict[int, int] = {}
        for second, tokens, _ in rows[mid]:
            per_second[second] = per_second.get(second, 0) + tokens
        series = [per_second.get(s, 0) for s in range(first_s, last_s + 1)]
        at_pct = _nearest_rank(series, percentile)
        exact = Decimal(at_pct) / r.tokens_per_second_per_gsu
        steps = int((exact / r.min_gsu_increment).to_integral_value(rounding=ROUND_CEILING))
        gsu = max(steps, 1) * r.min_gsu_increment
        capacity = gsu * r.tokens_per_second_per_gsu
        running: dict[int, int] = {}
        covered = 0
        avoided = Decimal(0)
        for second, tokens, cost in rows[mid]:
            if running.get(second, 0) + tokens <= capacity:
                running[second] = running.get(second, 0) + tokens
                covered += 1
                avoided += cost
        verdicts = []
        for term, t in pt.terms.items():
            period_avoided = (avoided * PERIOD_SECONDS[t.per] / span).quantize(CENT)
            price = t.price_usd * gsu
            verdicts.append(TermVerdict(term, t.per, price, period_avoided, period_avoided - price))
        paying = [v for v in verdicts if v.pays_off]
        if paying:
            best = max(paying, key=lambda v: v.saving_usd * PERIOD_SECONDS["month"] / PERIOD_SECONDS[v.per])
            advice = f"buy {gsu} GSU on the {best.term} term: it saves ${best.saving_usd} per {best.per} at this traffic"
        else:
            advice = f"stay on PayGo: no term pays off ({gsu} GSU would avoid at most ${max(v.paygo_avoided_usd for v in verdicts)} per period)"
        plans.append(
            LogPlan(
                mid, len(rows[mid]), span, percentile, sum(t for _, t, _ in rows[mid]), at_pct, max(series), exact, gsu, covered,
                sum((c for _, _, c in rows[mid]), Decimal(0)), avoided, tuple(verdicts), advice,
                f"{r.provenance.seed or r.provenance.source}: {r.provenance.section}; {pt.terms_provenance.section}",
            )
        )
    return plans
