-- W1: one row by primary key. GET /bench_items?id=eq.N, N uniform in 1..100000.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local tail
function on_init() tail = get_tail() end

function request()
   return "GET /bench_items?id=eq." .. math.random(1, 100000) .. tail
end
