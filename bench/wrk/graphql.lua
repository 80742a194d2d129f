-- POSTs one GraphQL body (env BODY), with a bearer token when env AUTH is set.
-- Counts answers that are not 200 or carry GraphQL "errors".
dofile("bench/wrk/errors.lua")

wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end

function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then
    errors = errors + 1
  end
end
