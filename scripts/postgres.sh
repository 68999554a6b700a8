#!/usr/bin/env bash
# A throwaway PostgreSQL server for the ledger tests: `source scripts/postgres.sh` starts one on a
# free local port (data in a temporary folder, trust login for the postgres role) and exports
# MODELKIT_POSTGRES_URL, which tests/test_ledger.py uses; it is stopped when the shell exits.
# Needs PostgreSQL's server binaries (Debian: apt-get install postgresql); without them it says so
# and returns 1, and the PostgreSQL tests skip.
pg_bin=""
for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  if [ -x "$dir/initdb" ]; then pg_bin="$dir"; break; fi
done
if [ -z "$pg_bin" ] && command -v initdb >/dev/null 2>&1; then pg_bin="$(dirname "$(command -v initdb)")"; fi
if [ -z "$pg_bin" ]; then
  echo "scripts/postgres.sh: no PostgreSQL server binaries (initdb) found" >&2
  return 1 2>/dev/null || exit 1
fi
pg_dir="$(mktemp -d /tmp/modelkit-pg.XXXXXX)"
pg_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# initdb refuses to run as root: the server then runs as the postgres user (which Debian's package makes).
as_server=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$pg_dir"
  as_server=(runuser -u postgres --)
fi
if ! { "${as_server[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust --no-sync >"$pg_dir/initdb.log" 2>&1 \
       && "${as_server[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
            -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null; }; then
  echo "scripts/postgres.sh: could not start PostgreSQL (see $pg_dir/*.log)" >&2
  return 1 2>/dev/null || exit 1
fi
export MODELKIT_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$pg_port/postgres"
trap '"${as_server[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1; rm -rf "$pg_dir"' EXIT
echo "PostgreSQL $("$pg_bin/pg_ctl" --version | awk '{print $3}') on port $pg_port ($MODELKIT_POSTGRES_URL)"
