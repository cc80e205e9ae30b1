-- W3: one row with an embedded one-to-many (3 children each).
-- GET /bench_items?id=eq.N&select=*,bench_children(*), N uniform in 1..10000 (the items that
-- have children).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

function request()
   return wrk.format("GET", "/bench_items?id=eq." .. math.random(1, 10000) .. "&select=*,bench_children(*)")
end
