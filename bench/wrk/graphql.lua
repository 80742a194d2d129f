-- POSTs one GraphQL body (env BODY), with a bearer token when env AUTH is set
-- (under the scheme env SCHEME names, "Bearer" by default: "Token" for an API key).
-- Counts answers that are not 200 or carry GraphQL "errors".
-- errors.lua sits beside this script, wherever wrk is run from.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "errors.lua")

wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = (os.getenv("SCHEME") or "Bearer") .. " " .. auth
end

function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then
    errors = errors + 1
  end
end
