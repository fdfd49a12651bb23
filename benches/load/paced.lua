-- wrk script: each connection waits DELAY_MS between requests, so the offered rate is about
-- connections / (DELAY_MS + latency): the latency at a given share of the maximum rate.
local delay_ms = tonumber(os.getenv("DELAY_MS"))
local auth = os.getenv("AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
delay = function() return delay_ms end
