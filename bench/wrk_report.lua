-- wrk script for scripts/bench: no request()/response() hooks (they would put
-- Lua on wrk's per-request path and make wrk the bottleneck), only done(),
-- which prints two machine-readable lines after wrk's own summary:
--
--   BENCH requests=N duration_us=N status=N connect=N read=N write=N timeout=N
--         p50=US p99=US p999=US
--   DIST  P:US P:US ...   (latency percentiles for the chart, microseconds)
--
-- "status" is wrk's count of responses with a status >= 400; the socket error
-- counts are wrk's own. Latency is wrk's: from the request's first byte
-- written to the response's last byte read (connect time excluded).

local points = { 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99 }

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d status=%d connect=%d read=%d write=%d timeout=%d p50=%.1f p99=%.1f p999=%.1f\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
  io.write("DIST")
  for _, p in ipairs(points) do
    io.write(string.format(" %g:%.1f", p, latency:percentile(p)))
  end
  io.write(string.format(" 100:%.1f\n", latency.max))
end
