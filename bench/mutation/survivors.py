"""Issue 12's surviving mutations (each once let the whole suite pass), kept as a regression list: every one
must now be killed by the tests named with it. Run: ``python -m bench.mutation.textual survivors``.

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
    Mutation("compile: to_units rounds down", "router/policy/compile.py",
             "return as_int if as_int == scaled else as_int + 1", "return as_int", COST),
    # ---------------------------------------------------------------- decision
    Mutation("compile: selector min_quality exclusive", "router/policy/compile.py",
             "model.quality.score < sel.min_quality", "model.quality.score <= sel.min_quality", DECIDE),
    Mutation("compile: constraint min_quality exclusive", "router/policy/compile.py",
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
]
