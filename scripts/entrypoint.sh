#!/bin/sh
# The container image's entry point: `entrypoint.sh COMMAND [ARGS]` runs one of the hub's
# processes from the compiled tree next to this script. It execs node, so the process receives
# the container's signals (SIGTERM: graceful shutdown), and it writes nothing to disk.
set -eu

here="$(cd "$(dirname "$0")" && pwd)"

usage() {
  cat >&2 <<USAGE
usage: $0 COMMAND [ARGS]
commands:
  api       the HTTP API (and sockets)
  worker    the queue workers; ARGS e.g. --queues inbound,webhooks
  start     migrations, the API and every queue's workers in one process
  migrate   applies pending database migrations, then exits
  athena    the AI connector; ARGS e.g. --role=api or --role=worker
USAGE
  exit 2
}

[ $# -ge 1 ] || usage
command="$1"
shift
case "$command" in
  api) exec node "$here/dist/bin/api.js" "$@" ;;
  worker) exec node "$here/dist/bin/worker.js" "$@" ;;
  start) exec node "$here/dist/bin/start.js" "$@" ;;
  migrate) exec node "$here/dist/db/migrate-cli.js" "$@" ;;
  athena) exec node "$here/dist/bin/athena.js" "$@" ;;
  *)
    echo "unknown command: $command" >&2
    usage
    ;;
esac
