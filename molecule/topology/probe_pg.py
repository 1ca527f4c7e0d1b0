# Run with an etckit release's Python (`python -c`) by verify_security.yml: logs in to
# PostgreSQL with the libpq connection string argv[1] (password from PGPASSWORD) and runs
# argv[2] (default: who am I, over TLS?). Prints "ok <result>" or "refused <first line>".
import sys

import psycopg

sql = sys.argv[2] if len(sys.argv) > 2 else (
    "select current_user || ' ' || ssl from pg_stat_ssl where pid = pg_backend_pid()")
try:
    with psycopg.connect(sys.argv[1], connect_timeout=5) as conn:
        print("ok", conn.execute(sql).fetchone()[0])
except psycopg.Error as exc:
    print("refused", " ".join(str(exc).split()))
