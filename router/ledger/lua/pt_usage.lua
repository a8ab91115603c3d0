-- pt_usage: burndown-adjusted tokens in the window of several (model, region) counters (read only).
-- KEYS: the rolling hashes. ARGV[1]: first second of the window. Returns one count per key.
local first = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local used = rolling_total(KEYS[i], first, false)
  if used < 0 then used = 0 end
  out[i] = fmt(used)
end
return out
