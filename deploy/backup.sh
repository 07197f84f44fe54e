#!/usr/bin/env bash
# Back up the Flourish database named by FLOURISH_DATABASE_URL into a directory.
#
#   deploy/backup.sh [DIRECTORY]        (default: $FLOURISH_BACKUP_DIR or /var/backups/flourish)
#
# PostgreSQL: `pg_dump --format=custom` (compressed, restorable table by table with pg_restore);
#   the archive is read back with `pg_restore --list` before it is given its final name.
# SQLite: `flourish db backup`, which uses SQLite's online backup API, so web servers and
#   schedulers may keep writing while it runs; the copy is integrity-checked.
#
# Prints the path of the new backup on its last line. With FLOURISH_BACKUP_KEEP_DAYS=N, backups
# in the directory older than N days are deleted afterwards. Files are created mode 0600: a
# backup holds everything the study holds (contact details stay encrypted with FLOURISH_PII_KEY,
# which is NOT in the backup; keep a copy of that key somewhere else).
#
# The PostgreSQL password, if it is in the URL, is visible to other users of this host in the
# process list while pg_dump runs; on a shared host keep it in ~/.pgpass instead.
set -euo pipefail

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -le 1 ] || usage
case "${1:-}" in -h|--help) usage ;; esac

dir=${1:-${FLOURISH_BACKUP_DIR:-/var/backups/flourish}}
url=${FLOURISH_DATABASE_URL:?FLOURISH_DATABASE_URL must name the database to back up}
flourish=${FLOURISH_BIN:-flourish}
stamp=$(date -u +%Y%m%dT%H%M%SZ)

umask 077
mkdir -p -- "$dir"

case "$url" in
  postgresql*://* | postgres://*)
    # libpq understands postgresql://; SQLAlchemy's driver suffix (+psycopg) it does not.
    libpq_url="postgresql://${url#*://}"
    target="$dir/flourish-$stamp.dump"
    partial="$dir/.flourish-$stamp.dump.partial"
    trap 'rm -f -- "$partial"' EXIT
    pg_dump --format=custom --compress=6 --no-password --dbname="$libpq_url" --file="$partial"
    pg_restore --list "$partial" >/dev/null
    mv -- "$partial" "$target"
    ;;
  sqlite:///*)
    target="$dir/flourish-$stamp.sqlite3"
    "$flourish" --database-url "$url" db backup "$target" >&2
    ;;
  *)
    echo "backup.sh: cannot back up a database of this kind: ${url%%:*}" >&2
    exit 2
    ;;
esac

if [ -n "${FLOURISH_BACKUP_KEEP_DAYS:-}" ]; then
  find "$dir" -maxdepth 1 -type f -name 'flourish-*' -mtime "+$FLOURISH_BACKUP_KEEP_DAYS" \
    -print -delete >&2
fi
echo "$target"
