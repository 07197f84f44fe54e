#!/usr/bin/env bash
# Restore a backup made by deploy/backup.sh into the database named by FLOURISH_DATABASE_URL.
#
#   deploy/restore.sh [--clean] BACKUP_FILE
#
# Stop every web server and scheduler that uses the database first.
# PostgreSQL (.dump): `pg_restore` in one transaction, stopping at the first error, without the
#   original owner and grants (the objects belong to the role in the URL). Restore into a new,
#   empty database (createdb), or pass --clean to drop and replace Flourish's objects in an
#   existing one.
# SQLite (.sqlite3): `flourish db restore`, which checks the backup's integrity first.
# Afterwards the schema revision is shown (`flourish db current`) and the audit log's hash chain
# is verified (`flourish audit verify`); a broken chain makes the script fail.
set -euo pipefail

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
clean=()
case "${1:-}" in
  --clean) clean=(--clean --if-exists); shift ;;
  -h|--help|"") usage ;;
esac
[ $# -eq 1 ] || usage
file=$1
[ -f "$file" ] || { echo "restore.sh: $file is not a file" >&2; exit 2; }
url=${FLOURISH_DATABASE_URL:?FLOURISH_DATABASE_URL must name the database to restore into}
flourish=${FLOURISH_BIN:-flourish}

case "$url" in
  postgresql*://* | postgres://*)
    libpq_url="postgresql://${url#*://}"
    pg_restore --exit-on-error --single-transaction --no-owner --no-privileges --no-password \
      "${clean[@]}" --dbname="$libpq_url" "$file"
    "$flourish" --database-url "$url" db current
    ;;
  sqlite:///*)
    # Checks the backup's integrity first, and prints the revision it restored.
    "$flourish" --database-url "$url" db restore --yes "$file"
    ;;
  *)
    echo "restore.sh: cannot restore a database of this kind: ${url%%:*}" >&2
    exit 2
    ;;
esac

"$flourish" --database-url "$url" audit verify
