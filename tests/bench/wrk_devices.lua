-- wrk script: "healthz" hits the trivial endpoint; "next" polls /jobs/next as a random device
-- (uuid and token read from the file given after the mode); "progress" sends an IN_PROGRESS
-- report of the job given after the file as a random device. Prints one RESULT line of JSON.

local mode = "healthz"
local devices = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("id", thread_count)
end

function init(args)
  mode = args[1] or "healthz"
  math.randomseed(os.time() * 1000 + (id or 0) * 7919)
  if mode == "next" or mode == "progress" then
    for line in io.lines(args[2]) do
      local uuid, token = line:match("^(%S+) (%S+)$")
      local path = "/api/v1/devices/" .. uuid .. "/jobs/next"
      if mode == "progress" then
        path = "/api/v1/devices/" .. uuid .. "/jobs/" .. args[3] .. "/status"
      end
      devices[#devices + 1] = { path, "Bearer " .. token }
    end
  end
end

function request()
  if mode == "next" then
    local device = devices[math.random(#devices)]
    return wrk.format("GET", device[1], { ["Authorization"] = device[2] })
  elseif mode == "progress" then
    local device = devices[math.random(#devices)]
    return wrk.format("PATCH", device[1], { ["Authorization"] = device[2],
      ["Content-Type"] = "application/json" }, '{"status": "IN_PROGRESS"}')
  end
  return wrk.format("GET", "/healthz")
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
