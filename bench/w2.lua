-- W2: a 100-row page with a range filter, an order and a limit.
-- GET /bench_items?id=gte.N&order=id&limit=100, N uniform in 1..99000.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

function request()
   return wrk.format("GET", "/bench_items?id=gte." .. math.random(1, 99000) .. "&order=id&limit=100")
end
