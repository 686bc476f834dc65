-- Records a job's results and acknowledges the job, atomically (a script runs as one
-- transaction), then deletes the job: the stream holds only jobs not done. A device already
-- recorded keeps its first result.
-- KEYS: done set, result stream, outcome counts, job stream, campaign hash.
-- ARGV: group, job id, then token, outcome, line for each device.
local written = 0
for i = 3, #ARGV, 3 do
  if redis.call('SADD', KEYS[1], ARGV[i]) == 1 then
    redis.call('XADD', KEYS[2], '*', 'token', ARGV[i], 'outcome', ARGV[i + 1], 'line', ARGV[i + 2])
    redis.call('HINCRBY', KEYS[3], ARGV[i + 1], 1)
    written = written + 1
  end
end
if redis.call('XACK', KEYS[4], ARGV[1], ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[5], 'jobs_done', 1)
end
redis.call('XDEL', KEYS[4], ARGV[2])
return written
