"""``python -m shared.audit verify`` (exit 1 if the chain is broken) and
``python -m shared.audit purge`` (drop rows older than AUDIT_RETENTION_DAYS), with the
database owner's DATABASE_URL."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import asyncpg

from shared.audit import purge, verify
from shared.settings import CommonSettings


async def main(command: str) -> int:
    settings = CommonSettings()
    conn = await asyncpg.connect(settings.database_url.get_secret_value(), timeout=10)
    try:
        if command == "purge":
            n = await purge(conn, settings.audit_retention_days)
            sys.stdout.write(
                json.dumps({"purged": n, "retention_days": settings.audit_retention_days}) + "\n"
            )
            return 0
        result = await verify(conn)
    finally:
        await conn.close()
    report = {
        "ok": result.ok,
        "rows": result.rows,
        "first_seq": result.first_seq,
        "last_seq": result.last_seq,
        "problems": result.problems[:20],
    }
    sys.stdout.write(json.dumps(report) + "\n")
    return 0 if result.ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["verify", "purge"])
    sys.exit(asyncio.run(main(parser.parse_args().command)))
