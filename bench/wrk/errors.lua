-- Shared by the scenario scripts: each thread counts failed answers in the
-- global `errors`; at the end the total is printed as "graphql_errors N",
-- which bench/run.sh reads. Loaded with dofile from beside each script.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

errors = 0

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + t:get("errors")
  end
  io.write(string.format("graphql_errors %d\n", total))
end
