package main

// The wrk scripts. Each thread numbers its requests; done() prints one JSON line that run parses.
const luaCommon = `
-- tid is a global that setup sets in each thread's own Lua state (a local here would shadow it).
local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
end
function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout
  io.write(string.format('{"requests":%d,"duration_us":%d,"errors":%d,"status_errors":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, errors, summary.errors.status, latency:percentile(50), latency:percentile(99), latency.max))
end
`

// luaUsers posts the seed 000 body; with REPEAT set it cycles over that many users per thread, otherwise
// every request is a new user.
const luaUsers = luaCommon + `
local counter = 0
function init(args)
  prefix = os.getenv("PREFIX")
  ring = tonumber(os.getenv("REPEAT") or "0")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
  wrk.headers["X-API-Key"] = os.getenv("KEY")
end
function request()
  counter = counter + 1
  local n = counter
  if ring > 0 then n = counter % ring end
  local id = prefix .. "-" .. tid .. "-" .. n
  return wrk.format(nil, "/users", nil, '{"detail":{"data":{"user_name":"' .. id .. '@example.com","user_id":"auth0|' .. id .. '"}}}')
end
`

// luaSigned replays pre-signed CloudEvents, one file per thread: lines of id, timestamp, signature, body.
const luaSigned = luaCommon + `
local lines = {}
local i = 0
function init(args)
  local path = os.getenv("SIGNED") .. "." .. tid
  for line in io.lines(path) do table.insert(lines, line) end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/cloudevents+json"
end
function request()
  i = i + 1
  if i > #lines then i = 1 end
  local id, ts, sig, body = string.match(lines[i], "^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
  -- headers given to wrk.format replace wrk.headers, so the content type goes in too
  return wrk.format(nil, "/events", {["Content-Type"] = "application/cloudevents+json",
    ["webhook-id"] = id, ["webhook-timestamp"] = ts, ["webhook-signature"] = sig}, body)
end
`
