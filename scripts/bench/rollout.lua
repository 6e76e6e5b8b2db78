-- wrk script: Flagger's rollout hook for N canaries in turn (N from the CANARIES env var).
-- DELAY_MS (optional) paces each connection: a closed loop at a moderate rate instead of
-- saturation, closer to Flagger's one call per canary per interval.
local n = tonumber(os.getenv("CANARIES") or "1000")
local pause = tonumber(os.getenv("DELAY_MS") or "0")
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format(
    '{"name":"c%d","namespace":"bench","phase":"Progressing","checksum":"r1","metadata":{"template":"istio"}}',
    counter % n)
  return wrk.format("POST", "/flagger/rollout", {["Content-Type"] = "application/json"}, body)
end
if pause > 0 then
  delay = function() return pause end
end
