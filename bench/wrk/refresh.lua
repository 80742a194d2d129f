-- refreshToken with a pool of fresh refresh tokens, each used once: seeded from
-- env SEEDS (one token a line, at least one per connection), and every answer's
-- new refresh token goes back into the pool. Run with one wrk thread, and seed
-- a few more tokens than connections: wrk calls request() once before the run.
-- errors.lua sits beside this script, wherever wrk is run from.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "errors.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local pool = {}
for line in io.lines(os.getenv("SEEDS")) do
  table.insert(pool, line)
end

function request()
  local token = table.remove(pool) or "pool-exhausted"
  local body = '{"query":"mutation($t: String!) { refreshToken(refreshToken: $t) { refreshToken } }","variables":{"t":"'
    .. token .. '"}}'
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  local token = string.match(body, '"refreshToken":"([^"]+)"')
  if status == 200 and token then
    table.insert(pool, token)
  else
    errors = errors + 1
  end
end
