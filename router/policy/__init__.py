"""Policy language and decision engine.

    policy = load_policy("policies/balanced.yaml", catalog)      # PolicyError with file:line:column
    compiled = compile_policy(policy, catalog)
    decision = compiled.decide(RequestFeatures(tenant="acme", prompt_tokens=1200), StateSnapshot.empty())
    decision.primary.model, decision.primary.estimated_cost, decision.fallbacks, decision.rejected

See the "Policy reference" section of the README for the language.
"""

from router.policy.compile import CompiledPolicy, compile_policy
from router.policy.decide import Choice, Decision
from router.policy.explain import explain
from router.policy.features import RequestFeatures, StateSnapshot, estimate_prompt_tokens
from router.policy.model import Policy
from router.policy.schema import policy_json_schema
from router.policy.validate import load_policy, validate_file

__all__ = [
    "Choice",
    "CompiledPolicy",
    "Decision",
    "Policy",
    "RequestFeatures",
    "StateSnapshot",
    "compile_policy",
    "estimate_prompt_tokens",
    "explain",
    "load_policy",
    "policy_json_schema",
    "validate_file",
]
