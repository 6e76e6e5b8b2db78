-- wrk script: Flagger's rollout hook for N canaries in turn (N from the CANARIES env var).
local n = tonumber(os.getenv("CANARIES") or "1000")
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format(
    '{"name":"c%d","namespace":"bench","phase":"Progressing","checksum":"r1","metadata":{"template":"istio"}}',
    counter % n)
  return wrk.format("POST", "/flagger/rollout", {["Content-Type"] = "application/json"}, body)
end
