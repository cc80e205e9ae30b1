-- W4: insert of one row, return=minimal (Strata's default): 201 with no body.
-- POST /bench_inserts, Content-Type: application/json, body {"name":"item N","qty":M} with
-- N uniform in 1..100000 and M in 1..1000 (the keys in this order: Strata's insert names the
-- columns of the body, so the statement is the same for every request).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local headers = { ["Content-Type"] = "application/json" }

function request()
   local body = '{"name":"item ' .. math.random(1, 100000) .. '","qty":' .. math.random(1, 1000) .. '}'
   return wrk.format("POST", "/bench_inserts", headers, body)
end
