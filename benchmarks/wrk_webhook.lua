-- wrk script: POST one new alert per request to /webhook/alertmanager.
-- Each request carries a fingerprint no other request used (thread id, a random run tag and a
-- counter), so the analyzer stores a new row and queues a new job every time: its worst case.
-- The bearer token comes from the environment (AIOPS_BENCH_TOKEN).

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + id * 7919)
  tag = string.format("w%d-%d-", id, math.random(1, 1000000000))
  counter = 0
  headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. (os.getenv("AIOPS_BENCH_TOKEN") or ""),
  }
end

local template = [[{"version":"4","status":"firing","receiver":"analyzer",]] ..
  [["groupKey":"{}:{alertname=\"ContainerHighMemoryUsage\"}","truncatedAlerts":0,]] ..
  [["groupLabels":{"alertname":"ContainerHighMemoryUsage"},"commonLabels":{},]] ..
  [["commonAnnotations":{},"externalURL":"http://alertmanager:9093","alerts":[{]] ..
  [["status":"firing","labels":{"alertname":"ContainerHighMemoryUsage","name":"bench-%s",]] ..
  [["instance":"cadvisor:8080","job":"cadvisor","severity":"warning"},]] ..
  [["annotations":{"summary":"Container bench-%s uses 95%% of its memory limit"},]] ..
  [["startsAt":"2026-11-28T10:00:00Z","endsAt":"0001-01-01T00:00:00Z",]] ..
  [["generatorURL":"http://prometheus:9090/graph","fingerprint":"%s"}]}]]

function request()
  counter = counter + 1
  local key = tag .. counter
  return wrk.format("POST", "/webhook/alertmanager", headers, string.format(template, key, key, key))
end

function done(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format("BENCH requests=%d duration_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, non2xx, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
