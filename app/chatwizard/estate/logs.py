"""Log aggregation for the local estate: syslog-ng ships the app's log into a PostgreSQL log store.

Grafana Loki and its shippers are not packaged for Debian, so the local estate uses the well-kept parts
Debian has: syslog-ng tails the app's log (gunicorn's master and every worker write JSON lines to it),
scrubs secret shapes again, parses each line and inserts it into its own PostgreSQL server, which
Grafana reads with its built-in PostgreSQL data source. Production runs Loki and Grafana Alloy
(infra/components/logging.py); both stores answer "every line of one request, from every worker"
with one query.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chatwizard.core.logs import REDACTED, SECRET_PATTERNS, secret_regex
from chatwizard.estate.monitoring import Stop, spawn
from chatwizard.estate.postgres import BIN, PostgresNode

DATABASE = "logs"
TABLE = "app_logs"
RETENTION_DAYS = 7  # a week locally; production's Loki keeps 30 days (infra/components/logging.py)
# One row per line: the fields a query filters on as columns, the whole scrubbed line beside them.
COLUMNS = {
    "ts": ("timestamptz", "$(or ${.json.timestamp} ${ISODATE})"),
    "level": ("text", "${.json.level}"),
    "event": ("text", "${.json.event}"),
    "request_id": ("text", "${.json.request_id}"),
    "pid": ("integer", "${.json.pid}"),
    "line": ("text", "${MESSAGE}"),
}
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} ({", ".join(f"{name} {kind}" for name, (kind, _) in COLUMNS.items())});
CREATE INDEX IF NOT EXISTS {TABLE}_request_id ON {TABLE} (request_id);
CREATE INDEX IF NOT EXISTS {TABLE}_ts ON {TABLE} (ts);
"""
# The runbook's query (runbooks/operations-manual.md): one request's lines from every process, in order.
REQUEST_QUERY = f"SELECT ts, pid, line FROM {TABLE} WHERE request_id = $1 ORDER BY ts"


@dataclass(frozen=True)
class LogStore:
    node: PostgresNode

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.node.port}/{DATABASE}"

    @property
    def psql(self) -> str:
        """The command that opens the store (PostgreSQL's client from the same wheel as the servers)."""
        return f"{BIN / 'psql'} {self.dsn}"

    def prepare(self) -> None:
        """Create the database and table on first use; drop lines past the retention."""
        if not self.node.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'", "postgres"):
            self.node.psql(f"CREATE DATABASE {DATABASE}", "postgres")
        self.node.psql(SCHEMA, DATABASE)
        self.node.psql(f"DELETE FROM {TABLE} WHERE ts < now() - interval '{RETENTION_DAYS} days'", DATABASE)


def _escape(text: str) -> str:
    """A syslog-ng string literal's body."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def shipper_config(app_log: Path, store: LogStore) -> str:
    scrub = "\n".join(
        f'  subst("{_escape(secret_regex(shape))}", "{REDACTED}", value("MESSAGE") type("pcre") '
        'flags("global"));' for shape in SECRET_PATTERNS.values())
    columns = ", ".join(f'"{name} {kind}"' for name, (kind, _) in COLUMNS.items())
    values = ", ".join(f'"{_escape(template)}"' for _, template in COLUMNS.values())
    return f"""@version: 3.38
options {{ stats_freq(0); log-msg-size(1048576); }};
source s_app {{ file("{app_log}" follow-freq(0.2) flags(no-parse)); }};
rewrite r_scrub {{
{scrub}
}};
destination d_store {{
  sql(type(pgsql) host("127.0.0.1") port("{store.node.port}") username("postgres") password("")
      database("{DATABASE}") table("{TABLE}") columns({columns}) values({values}) null("")
      batch-lines(200) batch-timeout(200) time-reopen(5));
}};
log {{
  source(s_app);
  rewrite(r_scrub);
  # A line that is not JSON (a crash before logging is set up) is kept as it is, fields empty.
  junction {{
    channel {{ parser {{ json-parser(prefix(".json.")); }}; flags(final); }};
    channel {{ flags(final); }};
  }};
  destination(d_store);
}};
"""


def start_log_shipping(state: Path, app_log: Path, port: int) -> tuple[LogStore, list[tuple[str, Stop]]]:
    """Start the log store and the shipper; returns the store and (name, stop) pairs, last started first."""
    state.mkdir(parents=True, exist_ok=True)
    node = PostgresNode(state / "store", port)
    if not node.initialised:
        node.init_primary()
    node.start()
    store = LogStore(node)
    store.prepare()
    config = state / "syslog-ng.conf"
    config.write_text(shipper_config(app_log, store))
    shipper = spawn("log shipper", [
        "syslog-ng", "--foreground", "--stderr", "--no-caps", f"--cfgfile={config}",
        f"--persist-file={state / 'syslog-ng.persist'}", f"--pidfile={state / 'syslog-ng.pid'}",
        f"--control={state / 'syslog-ng.ctl'}"], state / "shipper.log")
    return store, [shipper, ("log store", node.stop)]
