-- A send that definitely did not arrive: remove this run's attempt marker
-- (KEYS[1], ARGV[1] the run's token) so the retry starts clean. Another
-- run's marker, or 'sent', is left alone.
if redis.call('GET', KEYS[1]) == 'attempt:' .. ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
