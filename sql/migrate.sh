#!/bin/sh
# Applies the numbered migrations of sql/ in order, each inside one
# transaction together with its row in schema_migrations, so applying
# twice is a no-op and a failed migration leaves nothing behind.
#
#   sql/migrate.sh [psql connection options...]
#
# Connection settings come from the arguments or the usual PG* variables.

set -eu

dir=$(cd "$(dirname "$0")" && pwd)
psql="psql -X -q -v ON_ERROR_STOP=1 $*"

$psql -c "SET client_min_messages = warning;
          CREATE TABLE IF NOT EXISTS schema_migrations (
              version     text PRIMARY KEY,
              applied_at  timestamptz NOT NULL DEFAULT now())"

for file in "$dir"/[0-9][0-9][0-9]_*.sql; do
    version=$(basename "$file" .sql)

    done=$($psql -At -c "SELECT 1 FROM schema_migrations
                         WHERE version = '$version'")
    [ -n "$done" ] && continue

    {
        cat "$file"
        echo "INSERT INTO schema_migrations (version) VALUES ('$version');"
    } | $psql --single-transaction -f -

    echo "applied $version"
done
