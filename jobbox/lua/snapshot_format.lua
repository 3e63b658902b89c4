-- Included by the scripts that read a stored snapshot (jobbox.scripts puts it in place of
-- their `-- include: snapshot_format` line). jobbox.model writes the positional format
-- [2, kind, id, tenant, owner, version, status, terminal, fields]; the previous format, an
-- object with those names and "f": 1, is still read (a rolling deploy, an older snapshot).
-- Returns {version, owner, terminal, fields} of a snapshot of either format, nil for
-- garbage (not JSON, another shape, an unknown format, a version that is not a number).
local function stored_snapshot(raw)
  local ok, doc = pcall(cjson.decode, raw)
  if not ok or type(doc) ~= 'table' then return nil end
  local found = nil
  if doc[1] == 2 then
    found = {version = doc[6], owner = doc[5], terminal = doc[8], fields = doc[9]}
  elseif doc['f'] == 1 then
    found = {version = doc['version'], owner = doc['owner'], terminal = doc['terminal'],
             fields = doc['fields']}
  end
  if not found or not tonumber(found.version) then return nil end
  return found
end
