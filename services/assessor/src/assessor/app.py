"""The assessor worker's composition: the faust app, its topics and table, agents and views.

The agents (``assessor.agents``) parse and hand over to the pipeline (``assessor.pipeline``),
which runs the rules in ``assessor.domain``; the pages live in ``assessor.views``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import faust
from faust.web.base import BlueprintManager

from assessor.agents import install_agents
from assessor.cache import DecodedStates
from assessor.pipeline import Pipeline, Topics
from assessor.settings import AssessorSettings
from assessor.store import Store
from assessor.timers import TimerIndex
from assessor.views import install_views
from shared.audit import AuditTrail
from shared.auth import Authenticator
from shared.crypto import EventCodec
from shared.events import SendNotification, SendNotificationPayload
from shared.kafka_security import faust_credentials
from shared.logs import logging_config, set_ref_key
from shared.topics import (
    CLOCK,
    DEADLETTER,
    DECISIONS,
    ERASURE_EVENTS,
    PATIENT_EVENTS,
    PATIENT_PARTITIONS,
    RECOVERY_EVENTS,
)


def command_event(
    patient_id: str, cmd: SendNotificationPayload, now: dt.datetime
) -> SendNotification:
    """The decision's payload (the rules' command, which already names the patient's care
    team) in its envelope; its id derives from the dedupe key, so a replay repeats it
    exactly."""
    return SendNotification(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"decision:{cmd.dedupe_key}"),
        occurred_at=now,
        recorded_at=now,
        patient_id=patient_id,
        source="assessor",
        payload=cmd,
    )


class _App(faust.App):
    """faust's app without its built-in web views: ``/router`` and ``/table`` (which would
    serve table contents, i.e. patient state, to anyone who reaches the port), ``/graph``,
    the statistics and the index page at ``/``. Only the assessor's own pages are served."""

    def _new_web(self) -> Any:
        web = super()._new_web()
        web.blueprints = BlueprintManager([])
        return web


def create_app(settings: AssessorSettings) -> faust.App:
    app = _App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=faust_credentials("assessor"),
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        store="memory://",
        datadir=settings.data_dir,
        web_port=settings.port,
        web_bind=settings.bind_host,
        web_host=settings.bind_host,
        topic_partitions=PATIENT_PARTITIONS,
        topic_replication_factor=1,
        topic_disable_leader=True,
        producer_acks=-1,
        # A batch's changelog and decision records go out in a few requests, not one each.
        producer_linger_ms=5,
        consumer_auto_offset_reset="earliest",
        web_in_thread=False,
        logging_config=logging_config("assessor", settings.log_level),
    )
    set_ref_key(settings.log_ref_key.get_secret_value())
    store = Store(settings.database_url.get_secret_value())
    keyring = settings.keyring()

    def raw_topic(name: str, **options: Any) -> faust.types.TopicT:
        return app.topic(name, key_serializer="raw", value_serializer="raw", **options)

    patient_events = raw_topic(PATIENT_EVENTS, partitions=PATIENT_PARTITIONS)
    clock = raw_topic(CLOCK, partitions=PATIENT_PARTITIONS)
    states = app.Table(
        "patient-state",
        default=None,
        partitions=PATIENT_PARTITIONS,
        key_type=bytes,  # bytes → the "raw" codec, for the changelog's recovery too
        value_type=bytes,
        # The changelog partition comes from the key (murmur2, like ingest's producer), not
        # from "the current event", which a batch of events from several partitions lacks.
        use_partitioner=True,
    )
    pipeline = Pipeline(
        app=app,
        states=states,
        topics=Topics(
            decisions=raw_topic(DECISIONS),
            recovery_events=raw_topic(RECOVERY_EVENTS),
            deadletter=raw_topic(DEADLETTER),
            erasure_events=raw_topic(ERASURE_EVENTS),
        ),
        store=store,
        keyring=keyring,
        codec=EventCodec(keyring),
        decoded=DecodedStates(settings.state_cache),
        timers=TimerIndex(),
        command_event=command_event,
    )
    install_agents(
        app,
        pipeline,
        patient_events=patient_events,
        clock=clock,
        batch_max=settings.batch_max,
        batch_within_ms=settings.batch_within_ms,
    )
    install_views(
        app,
        store=store,
        authenticator=Authenticator(settings.oidc(), settings.api_token),
        trail=AuditTrail(settings.audit_url(), "assessor"),
    )
    return app
