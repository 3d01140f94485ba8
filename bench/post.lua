-- wrk script: POST a small chat completion request, print a JSON summary at the end.
--
--   BENCH_API_KEY=sk-... wrk -t1 -c32 -d10s -s bench/post.lua http://127.0.0.1:4000/v1/chat/completions
--
-- BENCH_API_KEY  sent as "Authorization: Bearer ..." (left out when unset)
-- BENCH_BODY     the JSON body (run.py passes the same one bench/load.py sends)
--
-- No response() callback on purpose: defining one makes wrk parse every
-- response in Lua and slows the generator down.

local body = os.getenv("BENCH_BODY")
if body == nil or body == "" then
  body = '{"model":"bench-model","messages":[{"role":"user","content":"Say something short."}],"max_tokens":16}'
end

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

local key = os.getenv("BENCH_API_KEY")
if key ~= nil and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

-- One line that run.py looks for; latency is in microseconds.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
