-- Small list helpers the specs share: copies, so a spec never reorders or cuts the list it
-- compares against.
local M = {}

-- list[a..b] as a new list.
function M.slice(list, a, b)
  local out = {}
  for i = a, b do out[#out + 1] = list[i] end
  return out
end

-- A sorted copy of list.
function M.sorted(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = v end
  table.sort(out)
  return out
end

return M
