-- wrk script: POST create (no wait) with a fresh WHMCS service id per request.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  token = args[1]
  base = tonumber(args[2])
  n = 0
end

function request()
  n = n + 1
  local id = base + tid * 1000000 + n
  local body = '{"client": {"id": ' .. id .. ', "email": "c' .. id .. '@example.org"}, "product": "mini", "plan": "basic"}'
  return wrk.format("POST", "/whmcs/v1/services/" .. id .. "/create",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
