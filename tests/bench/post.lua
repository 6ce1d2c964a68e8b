-- wrk script of `make bench` (tests/bench/load.py runs it): POSTs a distinct help request per
-- call to /v1/requests, the same shapes as tests/bench/bodies.py (a distinct phone and text per
-- request, so intake's per-phone limit and verify's flood and duplicate rules never apply, and a
-- distinct client address in X-Forwarded-For, which intake believes from the loopback proxy
-- the bench configures, so the per-client limit does not either).
--
-- Environment: BENCH_BASE  first request number (distinct phone numbers per run)
--              BENCH_RATE  requests per second per wrk thread; 0 or unset: as fast as possible
-- With a rate, delay() paces the thread's connections by a schedule (request k of a thread is
-- due at start + k / rate, as wrk2 does): a connection that comes free asks for the next slot and
-- waits for it; when every connection is busy the schedule falls behind and the next requests go
-- out at once, and the achieved rate says so.
-- done() prints one line `BENCH_JSON {...}` with the status counts of all threads.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local needs = {
  { "food_supply", "小区封控，家里断粮了，需要送米面油和蔬菜", "zh" },
  { "medical", "Need blood pressure medicine for my father, two days left", "en" },
  { "transport", "Нужен пропуск для поездки на работу через блокпост", "ru" },
  { "health_code", "健康码变黄了，核酸结果都是阴性，需要核实", "zh" },
  { "education", "孩子网课没有设备，学校要求明天开始上课", "zh" },
}
local districts = { "jinshui", "erqi", "zhongyuan", "guancheng", "huiji", "zhengdong" }

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local base = tonumber(os.getenv("BENCH_BASE") or "0")
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local counter = 0
n202, n429, n4xx, n5xx, nother = 0, 0, 0, 0, 0

function request()
  counter = counter + 1
  -- tid is set by setup() before the thread's first request
  local n = base + tid * 10000000 + counter
  local need = needs[n % #needs + 1]
  local body = string.format(
    '{"category":"%s","description":"%s（%d）","contact":{"name":"居民","phone":"139%08d"},'
      .. '"location":{"district":"%s","address":"%d号院"},"language":"%s"}',
    need[1], need[2], n, n % 100000000, districts[n % #districts + 1], n % 300 + 1, need[3])
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-Client-Id"] = string.format("bench-%d-%d", tid, counter),
    -- a citizen's own address, forwarded by the (trusted) loopback proxy
    ["X-Forwarded-For"] = string.format("10.%d.%d.%d", tid % 256, math.floor(counter / 256) % 256, counter % 256),
  }
  return wrk.format("POST", "/v1/requests", headers, body)
end

if rate > 0 then
  local interval = 1000 / rate
  local started = nil
  local slots = 0
  function delay()
    local now = now_ms()
    if started == nil then started = now end
    local due = started + slots * interval
    slots = slots + 1
    if due <= now then return 0 end
    return math.floor(due - now)
  end
end

function response(status, headers, body)
  if status == 202 then
    n202 = n202 + 1
  elseif status == 429 then
    n429 = n429 + 1
  elseif status >= 500 then
    n5xx = n5xx + 1
  elseif status >= 400 then
    n4xx = n4xx + 1
  else
    nother = nother + 1
  end
end

function done(summary, latency, requests)
  local t = { n202 = 0, n429 = 0, n4xx = 0, n5xx = 0, nother = 0 }
  for _, thread in ipairs(threads) do
    for key, _ in pairs(t) do
      t[key] = t[key] + (thread:get(key) or 0)
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"accepted":%d,"rate_limited":%d,"client_errors":%d,"server_errors":%d,'
      .. '"other":%d,"responses":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,'
      .. '"write_errors":%d,"timeouts":%d,"latency_p50_us":%d,"latency_p99_us":%d,'
      .. '"latency_max_us":%d}\n',
    t.n202, t.n429, t.n4xx, t.n5xx, t.nother, summary.requests, summary.duration,
    e.connect, e.read, e.write, e.timeout, latency:percentile(50), latency:percentile(99),
    latency.max))
end
