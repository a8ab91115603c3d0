"""Vertex AI's Count Tokens API: one small direct HTTP call with the transport's credentials.

Why not ``litellm.acount_tokens`` (1.110.2, read and run): it takes no ``vertex_*`` arguments (project,
location and credentials come from ``VERTEXAI_*`` environment variables), ignores ``VERTEXAI_API_BASE``,
needs the ``google-genai`` package for Gemini (without it, it counts locally and sends nothing) and, on
any 400 / 429 / 500 from the endpoint, returns a local estimate with ``error=False``, told apart only by
``tokenizer_type``. A router that must never report an estimate as a count cannot use that, so this
module makes the call itself: the same :class:`~router._transport.VertexSettings` (project, location,
service-account JSON / path or Application Default Credentials, ``api_base``), google-auth for the
OAuth token (as litellm's Vertex code does), httpx for the request. litellm is not imported here, so
``router explain --count-tokens`` stays litellm-free.

What is sent (the request's messages, converted as litellm would send them; tool declarations and
generation settings are not part of the count):

- Gemini: ``POST {base}/v1/projects/P/locations/L/publishers/google/models/M:countTokens`` with
  ``{"contents": [...], "systemInstruction": {...}}``; the answer's ``totalTokens`` (and
  ``totalBillableCharacters``, what the character-billed Gemini 1.x models are billed on).
- Claude: ``POST {base}/v1/projects/P/locations/L/publishers/anthropic/models/count-tokens:rawPredict``
  with an Anthropic Messages body (``model`` without its ``@version``, system text in ``system``);
  the answer's ``input_tokens``.
- Partner models (DeepSeek, Qwen, Llama, Mistral, ...): Vertex offers no Count Tokens API for them:
  :class:`CountFailed` ``unsupported`` (the router then uses the estimate).

Every failure raises :class:`CountFailed` (``timeout``, ``rate_limited``, ``server_error``,
``bad_request``, ``auth``, ``unsupported``); a count is only ever what Vertex answered.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CountFailed", "CountOnlyTransport", "TokenCount", "VertexCounter", "anthropic_count_body", "gemini_count_body"]

#: The default deadline of one count (connect + answer), seconds. A count that takes longer is
#: abandoned and the request goes on with the estimate plus the policy's margin.
COUNT_TIMEOUT_S = 2.0
_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
COUNT_FAILURES = frozenset({"timeout", "rate_limited", "server_error", "bad_request", "auth", "unsupported"})


@dataclass(frozen=True)
class TokenCount:
    """An exact count from Vertex: ``tokens`` of the prompt for ``model``'s tokenizer, and for Gemini the
    billable characters (None for Claude)."""

    tokens: int
    model: str
    billable_characters: int | None = None


class CountFailed(Exception):
    """No count: ``kind`` is one of ``timeout``, ``rate_limited``, ``server_error``, ``bad_request``,
    ``auth``, ``unsupported`` (the model has no Count Tokens API)."""

    def __init__(self, kind: str, message: str = "", status: int | None = None) -> None:
        if kind not in COUNT_FAILURES:
            raise ValueError(f"unknown count failure {kind!r}")
        self.kind, self.status = kind, status
        super().__init__(message or kind)


# ---------------------------------------------------------------------- request bodies
def _data_url(url: str) -> tuple[str, str] | None:
    """(mime type, base64 data) of a ``data:`` URL."""
    if not url.startswith("data:") or "," not in url:
        return None
    head, data = url[5:].split(",", 1)
    return (head.split(";")[0] or "application/octet-stream"), data


_EXT_MIME = {".pdf": "application/pdf", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp", ".gif": "image/gif", ".mp3": "audio/mpeg", ".wav": "audio/wav", ".mp4": "video/mp4"}


def _mime_of(uri: str, given: Any = None) -> str:
    if isinstance(given, str) and given:
        return given
    lowered = uri.lower().split("?")[0]
    for ext, mime in _EXT_MIME.items():
        if lowered.endswith(ext):
            return mime
    return "application/octet-stream"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)


def _parts(content: Any) -> list[Mapping[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, Mapping):
        return [content]
    return [p if isinstance(p, Mapping) else {"type": "text", "text": _text(p)} for p in content]


def _gemini_part(part: Mapping[str, Any]) -> dict[str, Any]:
    kind = part.get("type")
    if kind in (None, "text") and isinstance(part.get("text"), str):
        return {"text": part["text"]}
    if kind in ("image_url", "input_image"):
        ref = part.get("image_url")
        url = ref.get("url") if isinstance(ref, Mapping) else ref
        if isinstance(url, str):
            inline = _data_url(url)
            if inline:
                return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
            return {"fileData": {"mimeType": _mime_of(url, ref.get("format") if isinstance(ref, Mapping) else None), "fileUri": url}}
    if kind in ("file", "document"):
        ref = part.get("file") if isinstance(part.get("file"), Mapping) else part
        data, file_id = ref.get("file_data"), ref.get("file_id")
        if isinstance(data, str):
            inline = _data_url(data)
            if inline:
                return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
            return {"inlineData": {"mimeType": _mime_of(str(ref.get("filename") or ""), ref.get("format")), "data": data}}
        if isinstance(file_id, str):
            return {"fileData": {"mimeType": _mime_of(file_id, ref.get("format")), "fileUri": file_id}}
    if kind in ("input_audio", "audio"):
        ref = part.get("input_audio") if isinstance(part.get("input_audio"), Mapping) else part
        if isinstance(ref.get("data"), str):
            return {"inlineData": {"mimeType": f"audio/{ref.get('format') or 'wav'}", "data": ref["data"]}}
    return {"text": _text(part)}


def _extra_text(message: Mapping[str, Any]) -> list[str]:
    out = []
    for key in ("tool_calls", "function_call"):
        if message.get(key):
            out.append(_text(message[key]))
    return out


def gemini_count_body(messages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A ``:countTokens`` body for OpenAI-style ``messages``: system text in ``systemInstruction``,
    user / tool turns as ``user``, assistant turns as ``model``, images / files / audio as
    ``inlineData`` (data URLs) or ``fileData`` (gs:// or https URIs); tool calls as their JSON text."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        parts = [_gemini_part(p) for p in _parts(message.get("content"))] + [{"text": t} for t in _extra_text(message)]
        if role in ("system", "developer"):
            system.extend(parts)
            continue
        gemini_role = "model" if role == "assistant" else "user"
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"].extend(parts)
        elif parts:
            contents.append({"role": gemini_role, "parts": parts})
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    return body


def _anthropic_part(part: Mapping[str, Any]) -> dict[str, Any]:
    g = _gemini_part(part)
    if "inlineData" in g:
        mime, data = g["inlineData"]["mimeType"], g["inlineData"]["data"]
        kind = "document" if mime == "application/pdf" else "image"
        return {"type": kind, "source": {"type": "base64", "media_type": mime, "data": data}}
    if "fileData" in g:
        uri = g["fileData"]["fileUri"]
        kind = "document" if g["fileData"]["mimeType"] == "application/pdf" else "image"
        return {"type": kind, "source": {"type": "url", "url": uri}}
    return {"type": "text", "text": g["text"]}


def anthropic_count_body(vertex_model: str, messages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A Claude ``count-tokens:rawPredict`` body: ``model`` without ``@version``, the system text in
    ``system``, consecutive turns of one role merged (the Messages API alternates roles)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        parts = [_anthropic_part(p) for p in _parts(message.get("content"))] + [{"type": "text", "text": t} for t in _extra_text(message)]
        if role in ("system", "developer"):
            system.extend(p.get("text", "") for p in parts if p.get("type") == "text")
            continue
        claude_role = "assistant" if role == "assistant" else "user"
        if turns and turns[-1]["role"] == claude_role:
            turns[-1]["content"].extend(parts)
        elif parts:
            turns.append({"role": claude_role, "content": parts})
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"type": "text", "text": "."}]})
    body: dict[str, Any] = {"model": vertex_model.split("@")[0], "messages": turns}
    if system:
        body["system"] = "\n".join(system)
    return body


# ---------------------------------------------------------------------- credentials
class _Credentials:
    """google-auth credentials for one ``vertex_credentials`` value, refreshed (in a thread) when stale."""

    def __init__(self, source: str | None, project: str | None) -> None:
        import google.auth
        from google.oauth2 import service_account

        info: Any = None
        if source:
            text = source
            if not source.lstrip().startswith("{") and os.path.exists(source):
                with open(source, encoding="utf-8") as handle:
                    text = handle.read()
            try:
                info = json.loads(text)
            except ValueError:
                raise CountFailed("auth", "vertex_credentials is neither service-account JSON nor a path to one") from None
        if info is not None and info.get("type") == "service_account":
            self.creds: Any = service_account.Credentials.from_service_account_info(info, scopes=_SCOPES)
            self.project = project or info.get("project_id")
        elif info is not None:
            self.creds, found = google.auth.load_credentials_from_dict(info, scopes=_SCOPES)
            self.project = project or found or info.get("quota_project_id")
        else:
            self.creds, found = google.auth.default(scopes=_SCOPES)
            self.project = project or found
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if not self.creds.valid:
                import google.auth.transport.requests

                self.creds.refresh(google.auth.transport.requests.Request())
            return str(self.creds.token)


# ---------------------------------------------------------------------- the counter
class VertexCounter:
    """Counts prompts with Vertex's Count Tokens API. One per transport; safe across event loops."""

    def __init__(self, timeout_s: float = COUNT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._creds: dict[tuple[str | None, str | None], _Credentials] = {}
        self._clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]" = weakref.WeakKeyDictionary()

    def _client(self) -> Any:
        import httpx

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=16))
        return client

    def _credentials(self, settings: Any) -> _Credentials:
        key = (settings.vertex_credentials, settings.vertex_project)
        found = self._creds.get(key)
        if found is None:
            try:
                found = _Credentials(settings.vertex_credentials, settings.vertex_project)
            except CountFailed:
                raise
            except Exception as exc:  # noqa: BLE001 - no usable credentials: say so, the caller falls back
                raise CountFailed("auth", f"no Vertex credentials for Count Tokens: {exc}") from exc
            self._creds[key] = found
        return found

    async def count(self, api: str, vertex_model: str, location: str | None, messages: Sequence[Mapping[str, Any]], settings: Any, timeout_s: float | None = None) -> TokenCount:
        """Count ``messages`` for ``vertex_model`` (api ``gemini`` or ``anthropic``) at ``location``."""
        if api == "gemini":
            model, body, method = vertex_model, gemini_count_body(messages), "countTokens"
            publisher = "google"
        elif api == "anthropic":
            body = anthropic_count_body(vertex_model, messages)
            model, method, publisher = "count-tokens", "rawPredict", "anthropic"
        else:
            raise CountFailed("unsupported", f"Vertex has no Count Tokens API for {api} models ({vertex_model})")
        deadline = self.timeout_s if timeout_s is None else timeout_s
        started = time.monotonic()
        creds = self._credentials(settings)
        location = location or settings.vertex_location or "us-central1"
        if not creds.project:
            raise CountFailed("auth", "no Vertex project: set vertex_project or VERTEXAI_PROJECT")
        try:
            token = await asyncio.wait_for(asyncio.to_thread(creds.token), deadline)
        except asyncio.TimeoutError:
            raise CountFailed("timeout", f"no OAuth token within {deadline}s") from None
        except Exception as exc:  # noqa: BLE001
            raise CountFailed("auth", f"OAuth token refresh failed: {exc}") from exc
        host = settings.api_base or ("https://aiplatform.googleapis.com" if location == "global" else f"https://{location}-aiplatform.googleapis.com")
        url = f"{host.rstrip('/')}/v1/projects/{creds.project}/locations/{location}/publishers/{publisher}/models/{model}:{method}"
        remaining = max(0.05, deadline - (time.monotonic() - started))
        import httpx

        try:
            response = await asyncio.wait_for(self._client().post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=remaining), remaining)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise CountFailed("timeout", f"Count Tokens gave no answer within {deadline}s") from None
        except httpx.HTTPError as exc:
            raise CountFailed("server_error", f"Count Tokens request failed: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status != 200:
            kind = "rate_limited" if status == 429 else "auth" if status in (401, 403) else "server_error" if status >= 500 or status == 408 else "bad_request"
            raise CountFailed(kind, f"Count Tokens answered HTTP {status}: {response.text[:300]}", status)
        try:
            answer = response.json()
            if api == "gemini":
                tokens = answer["totalTokens"]
                chars = answer.get("totalBillableCharacters")
                return TokenCount(_whole(tokens), vertex_model, _whole(chars) if chars is not None else None)
            return TokenCount(_whole(answer["input_tokens"]), vertex_model, None)
        except (ValueError, KeyError, TypeError) as exc:
            raise CountFailed("server_error", f"Count Tokens answer has no token total: {response.text[:300]}") from exc

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()


class CountOnlyTransport:
    """A transport that only counts (``router explain --count-tokens``): no litellm, no model calls."""

    def __init__(self, timeout_s: float = COUNT_TIMEOUT_S) -> None:
        self._counter = VertexCounter(timeout_s)

    async def count_tokens(self, spec: Any, settings: Any) -> TokenCount:
        return await self._counter.count(spec.api, spec.vertex_model, spec.location, spec.messages, settings)

    async def aclose(self) -> None:
        await self._counter.aclose()


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        raise ValueError(f"not a token count: {value!r}")
    return int(value)
