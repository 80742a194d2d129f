-- POSTs one GraphQL body (env BODY), with a bearer token when env AUTH is set
-- (under the scheme env SCHEME names, "Bearer" by default: "Token" for an API key).
-- Counts answers that are not 200 or carry GraphQL "errors"; with env EXPECT
-- set (an error code), the answers that do not carry that code.
-- errors.lua sits beside this script, wherever wrk is run from.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "errors.lua")

wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = (os.getenv("SCHEME") or "Bearer") .. " " .. auth
end

local expect = os.getenv("EXPECT")

function response(status, headers, body)
  if expect and expect ~= "" then
    if not string.find(body, '"' .. expect .. '"', 1, true) then
      errors = errors + 1
    end
  elseif status ~= 200 or string.find(body, '"errors"', 1, true) then
    errors = errors + 1
  end
end
