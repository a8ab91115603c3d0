"""The policy both proxy test modules route with (LIMIT is the tenant monthly budget)."""

POLICY = """\
version: 1
profiles:
  cheap:
    candidates:
      - model: gemini-2.5-flash-lite
    objective: cheapest
  main:
    candidates:
      - model: gemini-2.5-flash
    objective: cheapest
rules:
  - name: acme
    when: {tenant: acme}
    profile: cheap
default_profile: main
budgets:
  - name: tenant-monthly
    scope: tenant
    window: calendar:month@UTC
    limit_usd: "LIMIT"
"""
