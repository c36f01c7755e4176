"""Script writer backed by a local Ollama server, through the official ``ollama`` client.

The reply is structured output: the JSON schema of :class:`i2v_dagster.spec.Script` goes in ``format``
(with the scene count fixed and every scene field required, so the model fills them all), seed and
temperature 0 make it repeatable, and the reply is validated by the same pydantic model as a hand-written
script. Every failure is a :class:`~i2v_dagster.errors.ScriptWriterError` that names the host or model.

Settings: ``model`` is the Ollama model (default ``llama3.1:8b``). Options (``models.script.options``,
validated by :class:`OllamaOptions`):
``host`` (else ``OLLAMA_HOST``, else ``http://127.0.0.1:11434``), ``timeout_s`` (request timeout, 120),
``temperature`` (0.0), ``keep_alive`` (how long the server keeps the model loaded after the reply: 0 by
default, so the GPU memory it holds is free before the narration and video models load; Ollama's own
default would keep it for 5 minutes beside them).
"""

from __future__ import annotations

import copy
import os
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from i2v_dagster.errors import AdapterError, ScriptWriterError
from i2v_dagster.models.base import AdapterOptions, AdapterSettings, ScriptWriter

if TYPE_CHECKING:
    from i2v_dagster.spec import JobSpec, Script

DEFAULT_MODEL = "llama3.1:8b"
DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_KEEP_ALIVE = 0
"""Unload the model as soon as the script is written (seconds, or an Ollama duration such as "5m")."""
REPLY_PREVIEW_CHARS = 200

_DURATION = re.compile(r"-?(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+")


class OllamaOptions(AdapterOptions):
    """``models.script.options`` of ``ollama``."""

    host: str | None = Field(
        None,
        min_length=1,
        max_length=1_000,
        description="The Ollama server (host[:port] or a URL); null: OLLAMA_HOST, else 127.0.0.1:11434.",
    )
    timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0, le=3_600, description="Request timeout, seconds.")
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature (0: repeatable).")
    keep_alive: int | float | str = Field(
        DEFAULT_KEEP_ALIVE,
        description="How long the server keeps the model loaded after the reply: seconds (0 frees its GPU "
        "memory at once, -1 keeps it) or an Ollama duration such as 5m.",
    )

    @field_validator("keep_alive", mode="before")
    @classmethod
    def _seconds_or_duration(cls, value: Any) -> Any:
        ok = (isinstance(value, int | float) and not isinstance(value, bool) and -1 <= value <= 86_400) or (
            isinstance(value, str) and len(value) <= 32 and _DURATION.fullmatch(value) is not None
        )
        if not ok:
            raise PydanticCustomError(
                "keep_alive", "takes seconds (-1..86400) or an Ollama duration such as 5m or 1h30m"
            )
        return value


SYSTEM_PROMPT = (
    "You write scripts for short narrated videos. Reply with one JSON object that matches the given "
    "schema and nothing else."
)


def resolve_host(host: str | None = None) -> str:
    """``host``, else ``OLLAMA_HOST``, else the local default, as a full URL (``http://host:11434``)."""
    raw = (host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST).strip().rstrip("/")
    if "://" not in raw:
        raw = f"http://{raw}"
    parts = urlsplit(raw)
    if not parts.hostname:
        raise AdapterError(f"ollama: host {raw!r} has no host name")
    if parts.port is None:
        port = 443 if parts.scheme == "https" else DEFAULT_PORT
        raw = f"{parts.scheme}://{parts.netloc}:{port}{parts.path}"
    return raw


def script_schema(num_scenes: int) -> dict[str, Any]:
    """The JSON schema sent as ``format``: ``Script``'s, with exactly ``num_scenes`` complete scenes."""
    from i2v_dagster.spec import Script

    schema = copy.deepcopy(Script.model_json_schema())
    scenes = schema["properties"]["scenes"]
    scenes["minItems"] = scenes["maxItems"] = num_scenes
    scene = schema["$defs"]["Scene"]
    scene["required"] = ["narration", "visual_prompt", "motion_prompt"]
    return schema


def script_prompt(spec: JobSpec) -> str:
    """The user message: the brief, the subject and what each scene holds."""
    lines = [f"Write a script of exactly {spec.num_scenes} scenes for a short narrated video."]
    if spec.brief:
        lines.append(f"Brief: {spec.brief}")
    if spec.subject:
        lines.append(f'Subject: {spec.subject} (set "subject" to exactly this).')
    else:
        lines.append('Set "subject" to who or what the video is about, in a few words.')
    lines += [
        "For each scene give:",
        '- "narration": one or two sentences spoken over the scene;',
        '- "visual_prompt": one concrete still image (who or what, where, light), no camera moves;',
        '- "motion_prompt": how the camera or the subject moves during the scene, a short phrase.',
    ]
    return "\n".join(lines)


def _model_pulled(wanted: str, names: list[str]) -> bool:
    return wanted in names or (":" not in wanted and f"{wanted}:latest" in names)


def ollama_status(
    host: str | None = None, timeout: float = 2.0, *, model: str | None = None
) -> tuple[bool, str]:
    """(reachable, what was found) for ``i2v doctor``: the server's version and models, or why not.

    With ``model``, the message also says whether that model is pulled.
    """
    try:
        url = resolve_host(host)
    except AdapterError as exc:
        return False, str(exc)
    try:
        import httpx
        import ollama
    except ImportError as exc:
        return False, f"the ollama client is not installed ({exc}); install the [models] extra"
    try:
        with httpx.Client(base_url=url, timeout=timeout) as http:
            reply = http.get("/api/version")
            reply.raise_for_status()
            version = str(reply.json().get("version", "unknown"))
        with ollama.Client(host=url, timeout=timeout) as client:
            names = sorted(m.model or "" for m in client.list().models)
    except (httpx.HTTPError, ConnectionError, ollama.ResponseError, ValueError) as exc:
        return False, f"Ollama not reachable at {url}: is `ollama serve` running? ({exc})"
    message = f"Ollama {version} at {url}; models: {', '.join(names) if names else 'none pulled'}"
    if model:
        pulled = _model_pulled(model, names)
        message += f"; {model}: " + ("pulled" if pulled else f"not pulled (run `ollama pull {model}`)")
    return True, message


class OllamaScriptWriter(ScriptWriter):
    """Asks a local Ollama model for ``spec.num_scenes`` scenes about ``spec.brief``."""

    name = "ollama"
    large = False
    Options = OllamaOptions

    def __init__(self, settings: AdapterSettings | None = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.client: Any = None

    @property
    def model_id(self) -> str:
        return self.settings.model or DEFAULT_MODEL

    @property
    def host(self) -> str:
        return resolve_host(self.options.host)

    @property
    def timeout_s(self) -> float:
        return float(self.options.timeout_s)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["host"] = self.host
        return info

    def _load(self) -> None:
        import ollama

        self.client = ollama.Client(host=self.host, timeout=self.timeout_s)

    def _unload(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None

    def write(self, spec: JobSpec) -> Script:
        from pydantic import ValidationError

        from i2v_dagster.spec import Script

        if not spec.brief and not spec.subject:
            raise ScriptWriterError(
                "ollama: spec.brief and spec.subject are both empty: nothing to write about"
            )
        self.load()
        model, host = self.model_id, self.host
        options = {"seed": spec.seed, "temperature": float(self.options.temperature)}
        self.log.info("ollama %s at %s: writing %d scenes (seed %s)", model, host, spec.num_scenes, spec.seed)
        started = time.monotonic()
        content = self._chat(
            model=model,
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": script_prompt(spec)},
            ],
            format=script_schema(spec.num_scenes),
            options=options,
        )
        self.log.info(
            "ollama %s replied in %.1f s (%d chars)", model, time.monotonic() - started, len(content)
        )
        preview = content[:REPLY_PREVIEW_CHARS]
        try:
            script = Script.model_validate_json(content)
        except ValidationError as exc:
            what = (
                "is not valid JSON" if exc.errors()[0]["type"] == "json_invalid" else "is not a valid script"
            )
            raise ScriptWriterError(
                f"ollama model {model!r} at {host}: the reply {what}: {exc}\nreply starts: {preview!r}"
            ) from exc
        if len(script.scenes) != spec.num_scenes:
            raise ScriptWriterError(
                f"ollama model {model!r} at {host}: asked for {spec.num_scenes} scenes (num_scenes), "
                f"the reply has {len(script.scenes)}\nreply starts: {preview!r}"
            )
        if spec.subject:
            script = Script(subject=spec.subject, scenes=script.scenes)
        return script

    def _chat(self, **request: Any) -> str:
        import httpx
        import ollama
        from pydantic import ValidationError

        host, model = self.host, request["model"]
        keep_alive = self.options.keep_alive
        try:
            response = self.client.chat(stream=False, keep_alive=keep_alive, **request)
        except ollama.ResponseError as exc:
            if exc.status_code == 404:
                raise ScriptWriterError(
                    f"ollama: model {model!r} not found at {host} ({exc.error}); run `ollama pull {model}`"
                ) from exc
            raise ScriptWriterError(
                f"ollama at {host} refused the request for model {model!r}: {exc.error} "
                f"(HTTP {exc.status_code})"
            ) from exc
        except httpx.TimeoutException as exc:
            raise ScriptWriterError(
                f"ollama at {host}: no reply from model {model!r} within {self.timeout_s:g} s "
                "(options.timeout_s)"
            ) from exc
        except (ConnectionError, httpx.HTTPError) as exc:
            raise ScriptWriterError(
                f"ollama: cannot reach {host}: is `ollama serve` running? ({exc})"
            ) from exc
        except ValidationError as exc:  # the client could not parse the server's answer
            raise ScriptWriterError(f"ollama at {host}: unexpected answer to /api/chat: {exc}") from exc
        return response.message.content or ""
