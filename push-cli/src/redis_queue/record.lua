-- Records a job's results and acknowledges the job, atomically (a script runs as one
-- transaction), then deletes the job: the stream holds only jobs not done. A device already
-- recorded keeps its first result.
-- Redis' work per device is one argument, one SMISMEMBER member and one SADD member: the
-- results come packed (one line per device in each of tokens, outcomes, lines) and go into
-- one entry of the result stream as they are, and the outcomes come counted. Only when some
-- device already has its result (a job taken over from a worker that was only slow) are
-- the packed fields split and filtered here.
-- KEYS: done set, result stream, outcome counts, job stream, campaign hash.
-- ARGV: group, job id, tokens, outcomes, lines (packed), K, then K pairs outcome, count,
-- then each token (distinct: the worker sends a token once per job).
local CHUNK = 1000 -- arguments per call, under Lua's limit on unpack()
local first = 7 + 2 * tonumber(ARGV[6])

-- Whether each token is recorded already (1) or not (0), in order.
local done, any_done = {}, false
for at = first, #ARGV, CHUNK do
  local flags = redis.call('SMISMEMBER', KEYS[1], unpack(ARGV, at, math.min(at + CHUNK - 1, #ARGV)))
  for _, flag in ipairs(flags) do
    done[#done + 1] = flag
    any_done = any_done or flag == 1
  end
end

local function split(text)
  local parts, from = {}, 1
  while true do
    local at = string.find(text, '\n', from, true)
    if not at then
      parts[#parts + 1] = string.sub(text, from)
      return parts
    end
    parts[#parts + 1] = string.sub(text, from, at - 1)
    from = at + 1
  end
end

local new, tokens, outcomes, lines, counts
if not any_done then
  new = #done
  tokens, outcomes, lines = ARGV[3], ARGV[4], ARGV[5]
  counts = {}
  for i = 7, first - 1, 2 do
    counts[ARGV[i]] = ARGV[i + 1]
  end
  for at = first, #ARGV, CHUNK do
    redis.call('SADD', KEYS[1], unpack(ARGV, at, math.min(at + CHUNK - 1, #ARGV)))
  end
else
  local all_outcomes, all_lines = split(ARGV[4]), split(ARGV[5])
  local kept_tokens, kept_outcomes, kept_lines = {}, {}, {}
  counts = {}
  for j, flag in ipairs(done) do
    if flag == 0 then
      local token = ARGV[first + j - 1]
      kept_tokens[#kept_tokens + 1] = token
      kept_outcomes[#kept_outcomes + 1] = all_outcomes[j]
      kept_lines[#kept_lines + 1] = all_lines[j]
      counts[all_outcomes[j]] = (counts[all_outcomes[j]] or 0) + 1
      redis.call('SADD', KEYS[1], token)
    end
  end
  new = #kept_tokens
  tokens = table.concat(kept_tokens, '\n')
  outcomes = table.concat(kept_outcomes, '\n')
  lines = table.concat(kept_lines, '\n')
end

if new > 0 then
  redis.call('XADD', KEYS[2], '*', 'tokens', tokens, 'outcomes', outcomes, 'lines', lines)
  for outcome, n in pairs(counts) do
    redis.call('HINCRBY', KEYS[3], outcome, n)
  end
end
if redis.call('XACK', KEYS[4], ARGV[1], ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[5], 'jobs_done', 1)
end
redis.call('XDEL', KEYS[4], ARGV[2])
return new
