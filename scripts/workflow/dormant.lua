-- Dormant workflows: the compact form of a workflow that only waits.
--
-- A workflow in Wait for Restore sleeps until doc.NextPollAt (seconds to a minute, for
-- hours at scale). Its document is durable in the journal at that point (wait.lua
-- journals the poll before the sleep). Held as a task, it costs a coroutine, a timer and
-- the document in memory (several KB), and a hot reload would copy the document into
-- the new Lua state and re-arm the task. Dormant, it is an entry of this set instead:
--   id -> wake time (wall clock), start of the wait, rule (the rule table, or its label
--   once handed over to a new state)
-- in three tables keyed by id and a binary min-heap of (wake time, id) in two parallel
-- arrays, with ONE loop timer for the earliest wake. About 200-300 bytes an entry.
-- When an entry is due, on_due(id, at, since, rule) is called (driver.lua loads its
-- document from the journal and resumes it, as a restart does).
--   M.new(on_due) -> set
--   set:put(id, at, since, rule)   add or move an entry (re-arms the timer if it is earlier)
--   set:take(id) -> at, since, rule | nil   remove an entry (it wakes or is resumed early)
--   set:has(id) / set.count / set:each(fn(id, at, since, rule))
--   set:pause() / set:resume()     no wake while a reload quiesces
--   set:export(label) -> {ids, times, rules, rule_index}   the reload handover
--   set:import(h)                  take a handover in (one heapify, no per-entry work
--                                   beyond three table stores)
--   set:close()                    cancel the timer (the set is dropped)
-- Heap entries are removed lazily: one is live only while at[id] still equals its key.
local timer = require "timer"
local clock = require "clock"

local M = {}

-- Due entries woken per loop turn; the rest wait for the next turn, so a burst of due
-- workflows (e.g. all resumed from the journal with the same wake time) is spread out.
M.BATCH = 64

local Set = {}
Set.__index = Set

function M.new(on_due)
  return setmetatable({ at = {}, since = {}, rule = {}, hk = {}, hv = {}, hn = 0, count = 0,
    on_due = on_due, timer = nil, timer_at = nil, paused = false }, Set)
end

local function up(hk, hv, i)
  local k, v = hk[i], hv[i]
  while i > 1 do
    local p = i // 2
    if hk[p] <= k then break end
    hk[i], hv[i] = hk[p], hv[p]
    i = p
  end
  hk[i], hv[i] = k, v
end

local function down(hk, hv, n, i)
  local k, v = hk[i], hv[i]
  while true do
    local c = 2 * i
    if c > n then break end
    if c < n and hk[c + 1] < hk[c] then c = c + 1 end
    if hk[c] >= k then break end
    hk[i], hv[i] = hk[c], hv[c]
    i = c
  end
  hk[i], hv[i] = k, v
end

local function pop(self)
  local hk, hv, n = self.hk, self.hv, self.hn
  hk[1], hv[1] = hk[n], hv[n]
  hk[n], hv[n] = nil, nil
  n = n - 1
  self.hn = n
  if n > 1 then down(hk, hv, n, 1) end
end

-- Drop stale heap entries from the top; the earliest live wake time or nil.
local function top(self)
  local hk, hv, at = self.hk, self.hv, self.at
  while self.hn > 0 do
    if at[hv[1]] == hk[1] then return hk[1] end
    pop(self)
  end
  return nil
end

local fire

local function arm(self)
  if self.paused then return end
  local t = top(self)
  if t == self.timer_at and (t == nil or self.timer) then return end
  if self.timer then self.timer:cancel() self.timer = nil end
  self.timer_at = t
  if t then
    self.timer = timer.after(math.max(0, t - clock.now()), function() fire(self) end)
  end
end

function fire(self)
  self.timer, self.timer_at = nil, nil
  if self.paused then return end
  local now, woken = clock.now(), 0
  while woken < M.BATCH do
    local t = top(self)
    if not t or t > now then break end
    local id = self.hv[1]
    pop(self)
    local at, since, rule = self:take(id)
    woken = woken + 1
    self.on_due(id, at, since, rule)
  end
  if woken == M.BATCH and top(self) and top(self) <= now then
    self.timer_at = now
    self.timer = timer.after(0, function() fire(self) end)
    return
  end
  arm(self)
end

function Set:put(id, at, since, rule)
  if self.at[id] == nil then self.count = self.count + 1 end
  self.at[id], self.since[id], self.rule[id] = at, since, rule
  local n = self.hn + 1
  self.hn = n
  self.hk[n], self.hv[n] = at, id
  up(self.hk, self.hv, n)
  if self.timer_at == nil or at < self.timer_at then arm(self) end
end

function Set:take(id)
  local at = self.at[id]
  if at == nil then return nil end
  local since, rule = self.since[id], self.rule[id]
  self.at[id], self.since[id], self.rule[id] = nil, nil, nil
  self.count = self.count - 1
  return at, since, rule
end

function Set:has(id)
  return self.at[id] ~= nil
end

function Set:each(fn)
  local since, rule = self.since, self.rule
  for id, at in pairs(self.at) do fn(id, at, since[id], rule[id]) end
end

function Set:pause()
  self.paused = true
  if self.timer then self.timer:cancel() end
  self.timer, self.timer_at = nil, nil
end

function Set:resume()
  self.paused = false
  arm(self)
end

Set.close = Set.pause

-- label(rule) -> string: what crosses into the new state instead of the rule table.
-- The handover is what the host copies cheaply: the ids (one array of strings), the wake
-- times and wait starts packed in one string ("<d" pairs), the rules as a list of labels
-- and one packed index per entry ("<I4").
function Set:export(label)
  local ids, times, labels, index, of = {}, {}, {}, {}, {}
  local n = 0
  for id, t in pairs(self.at) do
    n = n + 1
    local r = self.rule[id]
    if type(r) == "table" then r = label(r) end
    r = r or ""
    local k = of[r]
    if not k then
      k = #labels + 1
      labels[k], of[r] = r, k
    end
    ids[n], times[2 * n - 1], times[2 * n], index[n] = id, t, self.since[id], k
  end
  return { ids = ids, times = string.pack("<" .. ("d"):rep(2 * n), table.unpack(times, 1, 2 * n)),
    rules = labels, rule_index = string.pack("<" .. ("I4"):rep(n), table.unpack(index, 1, n)) }
end

function Set:import(h)
  local ids = h.ids or {}
  local n = #ids
  if n == 0 then return 0 end
  local times = { string.unpack("<" .. ("d"):rep(2 * n), h.times) }
  local index = { string.unpack("<" .. ("I4"):rep(n), h.rule_index) }
  local labels = h.rules
  local A, S, R, hk, hv = self.at, self.since, self.rule, self.hk, self.hv
  local m = self.hn
  for i = 1, n do
    local id, at = ids[i], times[2 * i - 1]
    if A[id] == nil then self.count = self.count + 1 end
    A[id], S[id], R[id] = at, times[2 * i], labels[index[i]]
    m = m + 1
    hk[m], hv[m] = at, id
  end
  self.hn = m
  for i = m // 2, 1, -1 do down(hk, hv, m, i) end
  self.timer_at = nil
  arm(self)
  return n
end

return M
