-- wrk script for bench/tracking.py: each request takes the next path from a file.
-- Arguments after `--`: the paths file, where to start in it, the User-Agent to send.
local paths, count, position, agent = {}, 0, 0, nil

function init(args)
  for line in io.lines(args[1]) do
    count = count + 1
    paths[count] = line
  end
  position = tonumber(args[2]) or 0
  agent = args[3]
end

function request()
  position = position + 1
  return wrk.format("GET", paths[(position - 1) % count + 1], {["User-Agent"] = agent})
end

-- One machine-readable line for the benchmark to parse.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "status_errors": %d, "connect_errors": %d, '
    .. '"read_errors": %d, "write_errors": %d, "timeouts": %d, "mean_us": %.1f, '
    .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
