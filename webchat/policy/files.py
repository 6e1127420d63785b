"""The open-files limit: raised at start, and the connection limit derived from it.

Every connection is a file descriptor. A process that runs out of them fails in
the middle of whatever it was doing (accepting, opening the log, importing a
module), so the server raises its soft limit to the hard one when it starts (as
nginx and most servers do; systemd's ``LimitNOFILE`` sets the hard limit), and by
default admits only as many connections as leave a reserve below it.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)

# Descriptors kept for everything that is not a connection: listening sockets,
# the SQLite files and their WAL, the Redis pool (32), pipes, the odd import. A
# quarter of a small limit, at most this many.
RESERVE = 128
# Where the hard limit is "unlimited", the soft one is raised this far.
UNLIMITED_TARGET = 1 << 20


def raise_open_files_limit() -> int:
    """Raise the soft limit to the hard one; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            log.info("open-files limit raised from %d to %d", soft, target)
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("open-files limit stays at %d (raising it failed: %s)", soft, exc)
    else:
        log.info("open-files limit is %d", soft)
    return UNLIMITED_TARGET if soft == resource.RLIM_INFINITY else soft


def connection_limit(configured: int, files: int) -> int:
    """``configured`` if set (warning when the file limit cannot hold it), else the
    file limit minus the reserve."""
    reserve = min(RESERVE, files // 4)
    room = max(files - reserve, 1)
    if configured <= 0:
        return room
    if configured > room:
        log.warning(
            "max-connections is %d but the open-files limit (%d) leaves room for %d; "
            "raise the hard limit (ulimit -Hn, or LimitNOFILE= under systemd)",
            configured,
            files,
            room,
        )
    return configured
