-- W5: RPC call of a stable SQL function returning a scalar: 200 with a bare number.
-- POST /rpc/bench_price, Content-Type: application/json, body {"item_id":N}, N uniform in
-- 1..100000.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local headers = { ["Content-Type"] = "application/json" }

function request()
   return wrk.format("POST", "/rpc/bench_price", headers, '{"item_id":' .. math.random(1, 100000) .. '}')
end
