-- wrk script: every request is POST /api/send of one message of $SIZE bytes
-- (default 100) into room $ROOM (default "bench"), as the user whose login
-- token is in $TOKEN. Keep-alive, as wrk always is.
-- Usage: TOKEN=... wrk -t2 -c256 -d10s -s bench/lib/send.lua http://127.0.0.1:PORT
local token = os.getenv("TOKEN")
if token == nil or token == "" then
  error("send.lua: TOKEN is not set")
end
local room = os.getenv("ROOM") or "bench"
local size = tonumber(os.getenv("SIZE") or "100")

wrk.method = "POST"
wrk.path = "/api/send"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.body = '{"room":"' .. room .. '","content":"' .. string.rep("x", size) .. '"}'
