#!/usr/bin/env bash
# Container entrypoint: wait for PostgreSQL, write the configuration from the environment, run the command.
#   loomworks [options]   the server (the default)
#   doctor | version      those loomworks commands
#   shell                 a psql session on the management database
#   anything else         run as given
set -euo pipefail

: "${LOOMWORKS_RC:=/etc/loomworks/loomworks.conf}"
export LOOMWORKS_RC

wait_for_postgres() {
  # No DB_HOST means the embedded cluster under data_dir: nothing to wait for.
  [ -n "${DB_HOST:-}" ] || return 0
  local port="${DB_PORT:-5432}" attempts="${WAIT_FOR_POSTGRES_ATTEMPTS:-30}" attempt=1
  echo "Waiting for PostgreSQL at ${DB_HOST}:${port}…"
  while [ "$attempt" -le "$attempts" ]; do
    if pg_isready -h "$DB_HOST" -p "$port" -q; then
      echo "PostgreSQL is ready."
      return 0
    fi
    echo "Attempt ${attempt}/${attempts}: PostgreSQL is not ready yet."
    sleep 2
    attempt=$((attempt + 1))
  done
  echo "PostgreSQL at ${DB_HOST}:${port} did not answer after ${attempts} attempts." >&2
  exit 1
}

generate_config() {
  # loomworks reads DB_HOST, DB_PASSWORD, ADMIN_PASSWD, … itself; the file records them for `loomworks doctor`
  # and for anyone who opens a shell in the container. Mode 0600: it holds passwords.
  if [ ! -f "$LOOMWORKS_RC" ] || [ "${REGENERATE_CONFIG:-false}" = "true" ]; then
    # LOOMWORKS_RC names the file being written; loomworks would otherwise insist on reading it first.
    env -u LOOMWORKS_RC loomworks config generate -o "$LOOMWORKS_RC"
  fi
}

case "${1:-loomworks}" in
  loomworks|server)
    wait_for_postgres
    generate_config
    shift || true
    exec loomworks server "$@"
    ;;
  doctor|version)
    exec loomworks "$@"
    ;;
  shell)
    wait_for_postgres
    shift
    export PGPASSWORD="${DB_PASSWORD:-}"
    exec psql -h "${DB_HOST:-localhost}" -p "${DB_PORT:-5432}" -U "${DB_USER:-loomworks}" \
      "${LOOMWORKS_MGMT_DB:-loomworks_mgmt}" "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
