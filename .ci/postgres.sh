#!/usr/bin/env bash
# Starts (or reuses) a throwaway PostgreSQL server for tests and prints its
# URL on stdout; all chatter goes to stderr. Idempotent: a second run finds
# the server already up and prints the same URL.
#   export UPDRAFT_TEST_POSTGRES_URL=$(.ci/postgres.sh)
set -euo pipefail

PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
PGPORT=${PGPORT:-55432}
PGDATA=${PGDATA:-/tmp/updraft-pg-$PGPORT}
PGUSER_OS=${PGUSER_OS:-pgtest}
URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"

if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
  echo "postgres.sh: no PostgreSQL binaries under /usr/lib/postgresql/*/bin (set PGBIN)" >&2
  exit 1
fi

# initdb and postgres refuse to run as root: run them as an unprivileged user.
run() {
  if [ "$(id -u)" = 0 ]; then
    id "$PGUSER_OS" >/dev/null 2>&1 || useradd -m "$PGUSER_OS" >&2
    su "$PGUSER_OS" -s /bin/sh -c "$*"
  else
    sh -c "$*"
  fi
}

if run "'$PGBIN/pg_isready' -q -h 127.0.0.1 -p $PGPORT"; then
  echo "$URL"
  exit 0
fi

if [ ! -f "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  [ "$(id -u)" = 0 ] && { id "$PGUSER_OS" >/dev/null 2>&1 || useradd -m "$PGUSER_OS" >&2; chown "$PGUSER_OS" "$PGDATA"; }
  chmod 700 "$PGDATA"
  run "'$PGBIN/initdb' -D '$PGDATA' -U postgres --auth=trust" >&2
fi

# fsync off: the data is thrown away, and tests create many databases.
run "'$PGBIN/pg_ctl' -D '$PGDATA' -o '-p $PGPORT -k /tmp -c fsync=off -c max_connections=200' -l '$PGDATA.log' -w start" >&2

for _ in $(seq 1 50); do
  if run "'$PGBIN/pg_isready' -q -h 127.0.0.1 -p $PGPORT"; then
    echo "$URL"
    exit 0
  fi
  sleep 0.2
done
echo "postgres.sh: server did not become ready; see $PGDATA.log" >&2
exit 1
