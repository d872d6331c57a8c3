# Sourced by .ci/run (and by hand: `source .ci/postgres.sh`): starts a throwaway PostgreSQL
# cluster from Debian's `postgresql` package, in a temporary directory, on a free loopback
# port, as the `postgres` user when run as root (the server refuses root), and exports its URL
# as TEST_POSTGRES_URL (not AUTH_ROUTER_…: the router reads every such variable as
# configuration) for the tests that need PostgreSQL. Those tests fail, and
# never skip, without it. `pg_stop` stops the cluster and removes it: the sourcing script
# traps it on exit (`trap pg_stop EXIT`), as .ci/run and bench/pg.sh do.

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  echo "PostgreSQL is not installed: apt-get install postgresql" >&2
  return 1 2>/dev/null || exit 1
fi
pg_dir=$(mktemp -d)
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if [ "$(id -u)" = 0 ]; then
  chown postgres "$pg_dir"
  pg_as() { runuser -u postgres -- "$@"; }
else
  pg_as() { "$@"; }
fi
pg_as "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 >"$pg_dir/initdb.log" 2>&1 \
  || { cat "$pg_dir/initdb.log" >&2; return 1 2>/dev/null || exit 1; }
pg_as "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
  -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null \
  || { cat "$pg_dir/server.log" >&2; return 1 2>/dev/null || exit 1; }
export TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
pg_stop() { pg_as "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$pg_dir"; }
echo "== PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port (throwaway)"
