"""The embedded PostgreSQL a newcomer gets when DATABASE_URL is unset.

pgserver ships PostgreSQL binaries in its wheel; the cluster lives in a
git-ignored folder and is left running (cleanup_mode=None) so later commands
and test runs reuse it instead of paying the start-up again.
"""

import logging
import warnings
from pathlib import Path


def start(data_dir: Path) -> str:
    # pgserver asks platformdirs for a runtime folder at import; without XDG_RUNTIME_DIR (a container, cron,
    # ssh without a login session) platformdirs warns and falls back to a private folder in /tmp, which is fine.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import pgserver

    # Its exit hook logs at INFO after test runners have closed their streams.
    logging.getLogger("pgserver").setLevel(logging.WARNING)

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode=None)
    return server.get_uri()
