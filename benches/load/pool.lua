-- wrk script: each request carries the next credential of the file POOL names (one per line,
-- "Bearer ..." or "SAML ..."), so none is seen twice while the pool lasts; a run that needed
-- more requests than the pool holds says so (its later requests were not new).
local lines, i = {}, 0
for line in io.lines(os.getenv("POOL")) do lines[#lines + 1] = line end
request = function()
  i = i % #lines + 1
  return wrk.format(nil, nil, { ["Authorization"] = lines[i] })
end
done = function(summary)
  if summary.requests > #lines then
    io.write(string.format("POOL EXHAUSTED: %d requests, %d credentials\n", summary.requests, #lines))
  end
end
