-- SPDX-License-Identifier: MIT
-- For bench/run-clients.sh: `prosodyctl mod_bench_accounts HOST FIRST END PASSWORD_FILE` makes
-- the accounts userFIRST .. user<END-1> the way `prosodyctl register` makes one (through
-- prosodyctl's adduser, so Prosody's usermanager and auth provider store them), in one
-- process: a `prosodyctl register` per account starts Prosody every time (about 40 ms of CPU).
-- Only prosodyctl loads this module; the server never enables it.
local prosodyctl = require "util.prosodyctl";

function module.command(arg)
	local host, first, last, file = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4];
	local f = file and io.open(file);
	local password = f and f:read("*l");
	if f then f:close(); end
	if not (host and first and last and password) then
		io.stderr:write("usage: prosodyctl mod_bench_accounts HOST FIRST END PASSWORD_FILE\n");
		return 1;
	end
	for i = first, last - 1 do
		local ok, err = prosodyctl.adduser({ user = "user" .. i, host = host, password = password });
		if not ok then
			io.stderr:write("user" .. i .. ": " .. tostring(err) .. "\n");
			return 1;
		end
	end
	return 0;
end
