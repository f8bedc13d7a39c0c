"""The loops ingest runs besides answering requests: connecting to Kafka and PostgreSQL
(then starting the outbox relay, erasure progress, retention and the clock ticker), and
the retention sweep."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging

import asyncpg

from ingest import erasure, outbox, registry
from ingest.context import IngestContext
from ingest.ticker import run_ticker
from shared.supervisor import beat
from shared.transient import UNAVAILABLE

log = logging.getLogger(__name__)


async def keep_connecting(ctx: IngestContext) -> None:
    """Connect in the background: until then /readyz and every request say 503."""
    settings = ctx.settings
    delay = 0.5
    while True:
        try:
            resources = await ctx.connect(settings)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "Kafka or PostgreSQL unreachable (%s); retrying in %.1f s",
                type(exc).__name__,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        else:
            break
    resources.arm(ctx.master_key)
    ctx.resources = resources
    log.info("connected to Kafka and PostgreSQL")
    ctx.relay = outbox.Relay(resources.pool, resources.producer)
    supervisor = ctx.supervisor
    supervisor.add("outbox-relay", ctx.relay.run_forever)
    progress = erasure.ProgressReader(
        resources.pool, erasure.consumer(settings.kafka_bootstrap), settings.erasure_store_names
    )
    supervisor.add("erasure-progress", progress.run_forever, stale_after=120.0)
    supervisor.add("retention", functools.partial(retention_forever, ctx), stale_after=300.0)
    if not settings.simulated_clock and settings.tick_interval_s > 0:
        supervisor.add(
            "ticker",
            functools.partial(
                run_ticker, resources.producer, ctx.wall_clock, settings.tick_interval_s
            ),
            stale_after=max(120.0, 3 * settings.tick_interval_s),
        )
    supervisor.start()


async def retention_forever(ctx: IngestContext) -> None:
    """Erase patients whose monitoring completed longer ago than the retention period,
    by the service's clock (the simulated one moves only with POST /v1/clock)."""
    settings = ctx.settings
    retention = dt.timedelta(days=settings.retention_days_after_completion)
    while True:
        beat()
        res = ctx.res
        try:
            now = (
                ctx.wall_clock()
                if not settings.simulated_clock
                else (await registry.simulated_now(res.pool))
            )
            due = await erasure.due_for_retention(res.pool, now, retention) if now else []
            for patient_id in due:
                await ctx.start_erasure(patient_id, "retention", "retention")
        except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
            log.warning("retention sweep failed (%s); retried", type(exc).__name__)
        await asyncio.sleep(settings.retention_sweep_s)
