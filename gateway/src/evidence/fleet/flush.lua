-- One flush of an instance's report counts, applied at most once (atomic on the server).
-- KEYS: 1 this boot's last applied batch, 2 users (zset), 3 their UPNs (hash), 4 the newest
-- App+User requests (stream), 5 newest record per instance (hash), 6 records per instance
-- (hash), then for each day of the batch: its counts (hash) and its applications (hash).
-- ARGV: 1 the batch (JSON, numbers as strings), 2 time to keep (ms), 3 the instance's name,
-- 4 users last seen before this (ms) are forgotten.
local b = cjson.decode(ARGV[1])
local keep = ARGV[2]
-- Another program's key here would fail a write half way, and a script is not rolled back: the
-- batch number stored, the resent batch would be skipped as counted. Refuse before any write.
local types = {'string', 'zset', 'hash', 'stream', 'hash', 'hash'}
for i, k in ipairs(KEYS) do
  local t = redis.call('TYPE', k).ok
  if t ~= 'none' and t ~= (types[i] or 'hash') then return redis.error_reply('WRONGTYPE report key') end
end
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
-- A batch sent again after a lost reply: already counted.
if tonumber(b.seq) <= last then return 0 end
redis.call('SET', KEYS[1], b.seq, 'PX', keep)
local fields = {'portal_operations', 'portal_mfa', 'api_app_user', 'api_mfa', 'api_app_only', 'report_only_passes'}
for i, d in ipairs(b.days) do
  local day, apps = KEYS[5 + 2 * i], KEYS[6 + 2 * i]
  for j, f in ipairs(fields) do
    if d.counts[j] ~= '0' then redis.call('HINCRBY', day, f, d.counts[j]) end
  end
  redis.call('PEXPIRE', day, keep)
  for _, a in ipairs(d.apps) do
    redis.call('HINCRBY', apps, 'm:' .. a[1], a[2])
    redis.call('HINCRBY', apps, 't:' .. a[1], a[3])
  end
  redis.call('PEXPIRE', apps, keep)
end
for _, u in ipairs(b.users) do
  local seen = redis.call('ZSCORE', KEYS[2], u[1])
  if (not seen) or tonumber(seen) <= tonumber(u[2]) then
    redis.call('ZADD', KEYS[2], u[2], u[1])
    redis.call('HSET', KEYS[3], u[1], u[3])
  end
end
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4])
for _, m in ipairs(old) do redis.call('HDEL', KEYS[3], m) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4])
redis.call('PEXPIRE', KEYS[2], keep)
redis.call('PEXPIRE', KEYS[3], keep)
-- A row holds a UPN, an object id and an address: none is kept past the window plus a day
-- (the stream's own expiry is renewed by every flush). Rows start with their time (ms).
local cutoff = tonumber(ARGV[4])
local function ts(r) return tonumber(string.match(r or '', '^%[(%d+)') or '') end
for _, r in ipairs(b.rows) do
  if (ts(r) or cutoff) >= cutoff then redis.call('XADD', KEYS[4], 'MAXLEN', '10000', '*', 'r', r) end
end
for _ = 1, 1000 do
  local head = redis.call('XRANGE', KEYS[4], '-', '+', 'COUNT', 1)[1]
  local t = head and ts(head[2][2])
  if not t or t >= cutoff then break end
  redis.call('XDEL', KEYS[4], head[1])
end
redis.call('PEXPIRE', KEYS[4], keep)
local newest = redis.call('HGET', KEYS[5], ARGV[3])
if b.newest ~= '0' and ((not newest) or tonumber(newest) < tonumber(b.newest)) then
  redis.call('HSET', KEYS[5], ARGV[3], b.newest)
end
redis.call('HINCRBY', KEYS[6], ARGV[3], b.records)
redis.call('PEXPIRE', KEYS[5], keep)
redis.call('PEXPIRE', KEYS[6], keep)
return 1
