-- W1J: W1 with a valid JWT in Authorization (HS256, role anon, made by bench/run and passed in
-- BENCH_JWT). Every request carries the same token, so after the first one per worker the
-- verification is served from the worker's cache: this measures what the cached check costs.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local auth = "Bearer " .. (os.getenv("BENCH_JWT") or "missing-BENCH_JWT")

function request()
   return wrk.format("GET", "/bench_items?id=eq." .. math.random(1, 100000), { ["Authorization"] = auth })
end
