-- Shared by the wrk scripts of bench/run (loaded with dofile from the script's directory).
-- Each wrk thread gets its own random seed; done() prints one machine-readable line that
-- bench/run parses (wrk's human-readable --latency report is printed too).
local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("thread_id", counter)
   table.insert(threads, thread)
end

function init(args)
   math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
   -- LuaJIT's first values after seeding are poorly mixed: discard a few
   for _ = 1, 10 do math.random() end
   if type(on_init) == "function" then on_init() end
end

-- The part of a GET request after its path: " HTTP/1.1", Host and the given headers, made once
-- per thread (in on_init, once wrk has set wrk.headers.Host). request() then only joins the
-- varying path to it; wrk.format would build a table and format every header per request,
-- client CPU that both W1 and W1J would pay, W1J more of it.
function get_tail(headers)
   local s = " HTTP/1.1\r\nHost: " .. wrk.headers["Host"] .. "\r\n"
   for name, value in pairs(headers or {}) do
      s = s .. name .. ": " .. value .. "\r\n"
   end
   return s .. "\r\n"
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
      "non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
      summary.requests, summary.duration,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      e.status, e.connect, e.read, e.write, e.timeout))
end
