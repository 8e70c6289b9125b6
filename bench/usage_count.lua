-- wrk script for the usage-accuracy check: each thread sends exactly
-- `budget` keyed requests (keys round-robin from a file, X-API-Key), then
-- only unkeyed GET /healthz (which no key's usage counts) and stops as soon
-- as all its keyed responses are in. So every keyed request wrk sent was
-- answered and counted by wrk, and the usage endpoint must show exactly the
-- number printed at the end ("keyed responses: N").
--
--   wrk -t1 -c64 -d60s -s bench/usage_count.lua http://127.0.0.1:18080 -- <keys file> <path> <budget per thread>

local requests = {}
local n = 0
local i = 0
local budget = 0
local calls = 0
local sent = 0
local keyed = 0
local healthz
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file, path = args[1], args[2]
  budget = tonumber(args[3])
  if not file or not path or not budget then
    error("usage: wrk -s usage_count.lua <url> -- <keys file> <path> <budget per thread>")
  end
  for line in io.lines(file) do
    if #line > 0 then
      n = n + 1
      requests[n] = wrk.format("GET", path, { ["X-API-Key"] = line })
    end
  end
  healthz = wrk.format("GET", "/healthz")
end

function request()
  calls = calls + 1
  -- wrk calls request() once on the first thread before any connection, to
  -- check the request; that first call gets the filler, so every keyed
  -- request counted in `sent` really goes out.
  if calls > 1 and sent < budget then
    sent = sent + 1
    i = i % n + 1
    return requests[i]
  end
  return healthz
end

function response(status, headers, body)
  -- Only keyed answers carry the rate-limit headers.
  if headers["x-ratelimit-limit"] or headers["X-RateLimit-Limit"] then
    keyed = keyed + 1
    wrk.thread:set("keyed", keyed)
    if keyed == budget then
      -- Tell bench/lib.sh's wrk_until_done this thread is done.
      local marker = os.getenv("WRK_DONE_FILE")
      if marker then
        local f = io.open(marker .. "." .. tostring(wrk.thread:get("id")), "w")
        if f then f:close() end
      end
      wrk.thread:stop()
    end
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + (tonumber(t:get("keyed")) or 0)
  end
  io.write(string.format("keyed responses: %d\n", total))
end
