-- wrk script: every request carries the next key of a file (one per line),
-- in the X-API-Key header, round-robin; so per-key rate limits never bind and
-- a key cache is exercised over the whole set.
--
--   wrk -s bench/keys.lua http://127.0.0.1:18080 -- <keys file> <path> [once]
--
-- Requests are formatted once, in init(); each thread starts at its own offset.
-- With `once`, each thread stops after as many answers as there are keys (one
-- pass over the file, e.g. to load every key into the server's cache) and
-- creates "$WRK_DONE_FILE.<thread>" (see wrk_until_done in bench/lib.sh).

local requests = {}
local n = 0
local i = 0
local offset = 0

local id = 0

function setup(thread)
  thread:set("offset", offset)
  thread:set("id", id)
  offset = offset + 7919
  id = id + 1
end

function init(args)
  local file, path = args[1], args[2]
  if not file or not path then
    error("usage: wrk -s keys.lua <url> -- <keys file> <path>")
  end
  for line in io.lines(file) do
    if #line > 0 then
      n = n + 1
      requests[n] = wrk.format("GET", path, { ["X-API-Key"] = line })
    end
  end
  if n == 0 then
    error("no keys in " .. file)
  end
  i = (tonumber(wrk.thread:get("offset")) or 0) % n
  if args[3] == "once" then
    local answers = 0
    response = function()
      answers = answers + 1
      if answers == n then
        local marker = os.getenv("WRK_DONE_FILE")
        if marker then
          local f = io.open(marker .. "." .. tostring(wrk.thread:get("id")), "w")
          if f then f:close() end
        end
        wrk.thread:stop()
      end
    end
  end
end

function request()
  i = i % n + 1
  return requests[i]
end
