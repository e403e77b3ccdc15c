-- syncgate-headers.lua: hand the session check's verdict to the backend.
--
-- syncgate-session-check runs as a FastCGI authorizer ("mode" => "authorizer").
-- When it allows a request, lighttpd puts its Variable-SYNCGATE_* answers into
-- the request environment, but mod_proxy forwards headers only, never that
-- environment.  This mod_magnet script turns the variables into X-Syncgate-*
-- request headers for the backend.
--
-- Wiring (lighttpd 1.4.69), in the block that holds the authorizer and
-- proxy.server, with "mod_magnet" listed before "mod_fastcgi" and "mod_proxy"
-- in server.modules:
--
--   magnet.attract-raw-url-to = ( "/path/to/syncgate-headers.lua" )
--
-- An allowed authorizer request restarts request handling, so the script runs
-- twice: first before the authorizer is asked (no variables yet: it only
-- removes what the client sent), then after the authorizer said 200 (it
-- removes again and copies the variables).  Both runs come before mod_proxy
-- connects to the backend.
--
-- A header the client sent with one of these names must never reach the
-- backend, or a client could name itself any user.  Every header whose name,
-- lower-cased and with "_" read as "-", starts with "x-syncgate-" is removed,
-- not only the five written below: some backends (CGI, PHP) fold "_" and "-"
-- together, and a name added later is covered without editing this list.

local req_header = lighty.r.req_header
local req_env = lighty.r.req_env

-- Collect first, then remove: the header table is not changed while pairs()
-- walks it.
local drop = {}
for name in pairs(req_header) do
  local folded = string.lower(name):gsub("_", "-")
  if string.sub(folded, 1, 11) == "x-syncgate-" then
    drop[#drop + 1] = name
  end
end
for _, name in ipairs(drop) do
  -- lighttpd keeps a removed header as a blank value; mod_proxy does not
  -- send blank headers.
  req_header[name] = nil
end

-- The authorizer's variables, in the order SPEC §6 lists them.  An unset or
-- empty variable adds no header (lighttpd would drop a blank one anyway).
local vars = {
  { "SYNCGATE_USER", "X-Syncgate-User" },
  { "SYNCGATE_CHANNELS", "X-Syncgate-Channels" },
  { "SYNCGATE_ROLES", "X-Syncgate-Roles" },
  { "SYNCGATE_AUTH", "X-Syncgate-Auth" },
  { "SYNCGATE_DB", "X-Syncgate-Db" },
}
for _, v in ipairs(vars) do
  local value = req_env[v[1]]
  if value ~= nil and value ~= "" then
    req_header[v[2]] = value
  end
end

-- Returning nothing lets lighttpd go on handling the request (mod_proxy).
