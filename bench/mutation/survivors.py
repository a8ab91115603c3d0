"""Issue 12's surviving mutations (each once let the whole suite pass), kept as a regression list: every one
must now be killed by the tests named with it. Run: ``python -m bench.mutation.textual survivors``.

Not listed: ``_client.py`` ``retry_on`` not intersected with the retryable kinds is equivalent from every public
entry point, because policy validation refuses ``bad_request`` / ``auth`` in ``fallbacks.retry_on`` (tested by
tests/router/test_request_path_boundaries.py::test_retry_on_refuses_kinds_that_are_never_retryable).

Anchored on the code as it stood when the tests were written; a refactor that moves the text makes the
mutation "stale" (reported, not run): re-anchor it on the new code rather than dropping it.
"""

from __future__ import annotations

from bench.mutation.textual import Mutation

COST = ("tests/catalog/test_cost_boundaries.py",)
DECIDE = ("tests/policy/test_decide_boundaries.py",)
LEDGER = ("tests/ledger/test_ledger_boundaries.py",)
CALL = ("tests/router/test_request_path_boundaries.py",)

MUTATIONS: list[Mutation] = [
    # ---------------------------------------------------------------- cost engine
    Mutation("cost: cached tokens billed at the short tier", "router/cost.py",
             'b.tiered("cached_input", u.cached_input_tokens, long, per, unit)',
             'b.tiered("cached_input", u.cached_input_tokens, False, per, unit)', COST),
    Mutation("cost: characters to tokens rounded down", "router/cost.py",
             "return (usage.input_chars + 3) // 4", "return usage.input_chars // 4", COST),
    Mutation("units: to_units rounds down", "router/policy/units.py",
             "return as_int if as_int == scaled else as_int + 1", "return as_int", COST),
    # ---------------------------------------------------------------- decision
    Mutation("selection: selector min_quality exclusive", "router/policy/selection.py",
             "model.quality.score < sel.min_quality", "model.quality.score <= sel.min_quality", DECIDE),
    Mutation("selection: constraint min_quality exclusive", "router/policy/selection.py",
             "if model.quality.score < c.min_quality:", "if model.quality.score <= c.min_quality:", DECIDE),
    Mutation("decide: loosest output-price cap wins", "router/policy/decide.py",
             "action.max_output_usd_per_mtok < cap_out", "action.max_output_usd_per_mtok > cap_out", DECIDE),
    Mutation("decide: loosest per-request cost cap wins", "router/policy/decide.py",
             "action.max_cost_usd < cap_cost", "action.max_cost_usd > cap_cost", DECIDE),
    Mutation("decide: inclusive long tier made exclusive", "router/policy/decide.py",
             "(prompt >= thr if row.long_inclusive", "(prompt > thr if row.long_inclusive", DECIDE),
    Mutation("decide: exclusive long tier made inclusive", "router/policy/decide.py",
             "else prompt > thr)", "else prompt >= thr)", DECIDE),
    Mutation("decide: max-cost bound exclusive", "router/policy/decide.py",
             "if bound is not None and exp > bound:", "if bound is not None and exp >= bound:", DECIDE),
    Mutation("decide: last free grounding unit paid", "router/policy/decide.py",
             "if remaining >= units:", "if remaining > units:", DECIDE),
    Mutation("decide: cheapest tie goes to lower quality", "router/policy/decide.py",
             "key=lambda r: (r[0], r[2], -r[1].qf, r[1].index)", "key=lambda r: (r[0], r[2], r[1].qf, r[1].index)", DECIDE),
    Mutation("decide: cheapest tie goes to the last listed", "router/policy/decide.py",
             "key=lambda r: (r[0], r[2], -r[1].qf, r[1].index)", "key=lambda r: (r[0], r[2], -r[1].qf, -r[1].index)", DECIDE),
    Mutation("decide: best_quality tie goes to the dearer", "router/policy/decide.py",
             "key=lambda r: (r[0], -r[1].qf, r[2], r[1].index)", "key=lambda r: (r[0], -r[1].qf, -r[2], r[1].index)", DECIDE),
    Mutation("decide: best_quality tie goes to the last listed", "router/policy/decide.py",
             "key=lambda r: (r[0], -r[1].qf, r[2], r[1].index)", "key=lambda r: (r[0], -r[1].qf, r[2], -r[1].index)", DECIDE),
    Mutation("decide: weighted tie goes to the dearer", "router/policy/decide.py",
             "wc * (r[2] - lo) / span), r[2], r[1].index)", "wc * (r[2] - lo) / span), -r[2], r[1].index)", DECIDE),
    Mutation("decide: weighted tie goes to the last listed", "router/policy/decide.py",
             "wc * (r[2] - lo) / span), r[2], r[1].index)", "wc * (r[2] - lo) / span), r[2], -r[1].index)", DECIDE),
    Mutation("decide: weighted score sign", "router/policy/decide.py",
             "(r[0], -(wq * r[1].qf / 100.0 - wc", "(r[0], (wq * r[1].qf / 100.0 - wc", DECIDE),
    # ---------------------------------------------------------------- ledger
    Mutation("lua: a hold expiring exactly now still counted", "router/ledger/lua/_lib.lua",
             "local expired = redis.call('ZRANGEBYSCORE', hz, '-inf', fmt(now))",
             "local expired = redis.call('ZRANGEBYSCORE', hz, '-inf', '(' .. fmt(now))", LEDGER),
    Mutation("memory: a hold expiring exactly now still counted", "router/ledger/memory.py",
             "if exp <= now]", "if exp < now]", LEDGER),
    Mutation("lua: rolling add drops the oldest in-window bucket", "router/ledger/lua/_lib.lua",
             "  if idx < first then\n    return false", "  if idx <= first then\n    return false", LEDGER),
    Mutation("windows: rolling key TTL one bucket shorter", "router/ledger/windows.py",
             "return self.span_ms + 2 * self.bucket_ms", "return self.span_ms + self.bucket_ms", LEDGER),
    Mutation("windows: rolling key TTL = span", "router/ledger/windows.py",
             "return self.span_ms + 2 * self.bucket_ms", "return self.span_ms", LEDGER),
    Mutation("lua: ramp streak survives a gap minute", "router/ledger/lua/ramp.lua",
             "minute > lm + 1", "minute > lm + 2", LEDGER),
    Mutation("memory: ramp streak survives a gap minute", "router/ledger/memory.py",
             "minute > state.last_minute + 1", "minute > state.last_minute + 2", LEDGER),
    Mutation("redis: journal replay at replay time", "router/ledger/redis_store.py",
             'op, at = event.get("op"), int(event.get("at", now))', 'op, at = event.get("op"), now', LEDGER),
    Mutation("redis: replayed calendar spend in the replay's period", "router/ledger/redis_store.py",
             "p = period(window.span, window.timezone, at)", "p = period(window.span, window.timezone, now)", LEDGER),
    Mutation("redis: replayed rolling spend in the replay's bucket", "router/ledger/redis_store.py",
             "rolling(window.span, at).current", "rolling(window.span, now).current", LEDGER),
    Mutation("redis: replayed settle/release at replay time", "router/ledger/redis_store.py",
             'int(event.get("nano", 0)), now, at,', 'int(event.get("nano", 0)), now, now,', LEDGER),
    Mutation("redis: replayed consumption at replay time", "router/ledger/redis_store.py",
             'check_id(event["rid"], "request id"), now, at)', 'check_id(event["rid"], "request id"), now, now)', LEDGER),
    Mutation("redis: replayed ramp tokens at replay time", "router/ledger/redis_store.py",
             'int(event["tokens"]), now, at,', 'int(event["tokens"]), now, now,', LEDGER),
    # ---------------------------------------------------------------- request path
    Mutation("client: downgraded traffic counted in the priority ramp", "router/_client.py",
             'if choice.priority and usage.traffic_type == "ON_DEMAND_PRIORITY" and model.priority_ramp_family:',
             "if choice.priority and model.priority_ramp_family:", CALL),
    Mutation("client: a cancelled attempt's hold not released", "router/_client.py",
             "            except BaseException:\n                await store.release(attempt_id)\n                raise\n            try:\n                cost",
             "            except BaseException:\n                raise\n            try:\n                cost", CALL),
    Mutation("client: a billing error releases instead of settling the upper bound", "router/_client.py",
             "await store.settle(attempt_id, upper)  # never lose spend on a billing error",
             "await store.release(attempt_id)", CALL),
    Mutation("client: a stream failing before its first chunk not released", "router/_client.py",
             "                if produced == 0:\n                    await store.release(attempt_id)\n                    self._failed_attempt",
             "                if produced == 0:\n                    self._failed_attempt", CALL),
    Mutation("client: a closed stream not closed upstream", "router/_client.py",
             "await _close(stream)  # stop the provider generating output nobody reads", "pass", CALL),
    Mutation("client: stream billing errors bill $0", "router/_client.py",
             'record.warnings.append(f"billed at the reserved upper bound: {exc}")\n            cost = upper',
             'record.warnings.append(f"billed at the reserved upper bound: {exc}")\n            cost = Decimal(0)', CALL),
    Mutation("client: a stream interrupted while billing is released", "router/_client.py",
             "await store.settle(attempt_id, upper)  # never lose spend, even when cancelled while billing",
             "await store.release(attempt_id)", CALL),
    # ---------------------------------------------------------------- transport usage mapping
    Mutation("usage: Anthropic cache_read_input_tokens ignored", "router/_transport/usage.py",
             'cached = _int(_get(ptd, "cached_tokens")) or _int(_get(usage, "cache_read_input_tokens"))',
             'cached = _int(_get(ptd, "cached_tokens"))', ("tests/transport/test_usage_boundaries.py",)),
    Mutation("usage: reasoning not clamped to the completion", "router/_transport/usage.py",
             "reasoning = min(reasoning, completion) if completion else reasoning", "reasoning = reasoning",
             ("tests/transport/test_usage_boundaries.py",)),
    Mutation("usage: cut streams ignore reasoning text", "router/_transport/usage.py",
             'for name in ("content", "reasoning_content"):', 'for name in ("content",):',
             ("tests/transport/test_usage_boundaries.py",)),
    Mutation("usage: cut streams under-count received text", "router/_transport/usage.py",
             'numbers["output_tokens"] = max(numbers["output_tokens"], estimate_tokens(self._chars) - numbers["thinking_tokens"])',
             "pass", ("tests/transport/test_usage_boundaries.py",)),
]
