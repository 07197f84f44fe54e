#!/bin/sh
# The container's entry point.
#   web        migrate the database (unless FLOURISH_MIGRATE_ON_START=0), then run gunicorn
#   scheduler  run `flourish scheduler` (it refuses to start until the schema is current)
#   anything else is run as a command, e.g. `flourish doctor` or `flourish user create ...`
set -eu

case "${1:-web}" in
  web)
    if [ "${FLOURISH_MIGRATE_ON_START:-1}" = "1" ]; then
      flourish db upgrade
    fi
    exec gunicorn -c /opt/flourish/app/deploy/gunicorn.conf.py
    ;;
  scheduler)
    exec flourish scheduler
    ;;
  *)
    exec "$@"
    ;;
esac
