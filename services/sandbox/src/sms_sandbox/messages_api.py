"""Twilio's Messages resource: create, list, fetch and delete, under HTTP Basic."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from sms_sandbox.sandbox import Sandbox
from sms_sandbox.twilio_wire import (
    API_VERSION,
    TwilioApiError,
    filter_date_sent,
    message_json,
    message_page_json,
)

API_PREFIX = f"/{API_VERSION}/Accounts"


def messages_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter()

    @router.post(API_PREFIX + "/{account_sid}/Messages.json", status_code=201)
    async def create_message(account_sid: str, request: Request) -> Response:
        form, faulted = await sandbox.admit(request, account_sid)
        if faulted is not None:
            return faulted
        message = await sandbox.create_message(account_sid, form)
        return JSONResponse(message_json(message), status_code=201)

    @router.get(API_PREFIX + "/{account_sid}/Messages.json")
    async def list_messages(account_sid: str, request: Request) -> Response:
        sandbox.check_auth(request, account_sid)
        query = request.query_params
        try:
            page_size = min(max(int(query.get("PageSize", "50")), 1), 1000)
        except ValueError:
            page_size = 50
        found = await sandbox.store.list(to=query.get("To"), from_=query.get("From"))
        try:
            found = filter_date_sent(found, query)
        except ValueError:
            raise TwilioApiError(20001, "Invalid DateSent filter") from None
        return JSONResponse(message_page_json(account_sid, found, page_size))

    @router.get(API_PREFIX + "/{account_sid}/Messages/{sid}.json")
    async def fetch_message(account_sid: str, sid: str, request: Request) -> Response:
        sandbox.check_auth(request, account_sid)
        message = await sandbox.store.get(sid)
        if message is None or message.account_sid != account_sid:
            raise TwilioApiError(20404, f"The requested resource {request.url.path} was not found")
        return JSONResponse(message_json(message))

    @router.delete(API_PREFIX + "/{account_sid}/Messages/{sid}.json", status_code=204)
    async def delete_message(account_sid: str, sid: str, request: Request) -> Response:
        """Twilio's message DELETE: the message and its body leave the store (204); an
        unknown SID (or another account's) is Twilio's 20404 (404)."""
        sandbox.check_auth(request, account_sid)
        message = await sandbox.store.get(sid)
        if message is None or message.account_sid != account_sid:
            raise TwilioApiError(20404, f"The requested resource {request.url.path} was not found")
        await sandbox.store.delete(sid)
        return Response(status_code=204)

    return router
