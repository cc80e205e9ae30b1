-- W1J: W1 with a valid JWT in Authorization (HS256, role anon, made by bench/run and passed in
-- BENCH_JWT). Every request carries the same token, so after the first one per worker the
-- verification is served from the worker's cache: this measures what the cached check costs.
-- The request is built exactly as W1's (only the header differs), so the client's CPU per
-- request differs only by the bytes of the header.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local auth = "Bearer " .. (os.getenv("BENCH_JWT") or "missing-BENCH_JWT")
local tail
function on_init() tail = get_tail({ ["Authorization"] = auth }) end

function request()
   return "GET /bench_items?id=eq." .. math.random(1, 100000) .. tail
end
