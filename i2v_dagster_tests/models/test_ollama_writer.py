"""OllamaScriptWriter and ollama_status against a real local HTTP server, through the real client."""

from __future__ import annotations

import json
import socket

import pytest

pytest.importorskip("ollama")

from i2v_dagster.errors import ScriptWriterError  # noqa: E402
from i2v_dagster.models.base import AdapterSettings  # noqa: E402
from i2v_dagster.models.ollama_writer import (  # noqa: E402
    DEFAULT_HOST,
    OllamaScriptWriter,
    ollama_status,
    resolve_host,
    script_schema,
)
from i2v_dagster.models.registry import build_adapter  # noqa: E402
from i2v_dagster.spec import JobSpec, Script  # noqa: E402
from i2v_dagster_tests.fake_ollama import FakeOllama, script_reply  # noqa: E402

pytestmark = pytest.mark.models

BRIEF = "A lighthouse keeper's last night before the lamp is automated."


def _spec(**fields) -> JobSpec:
    data = {"name": "lighthouse", "brief": BRIEF, "num_scenes": 3, "seed": 1234}
    data.update(fields)
    return JobSpec(**data, models={"script": {"adapter": "ollama"}})


def _writer(server: FakeOllama | None = None, *, model: str | None = None, **options) -> OllamaScriptWriter:
    if server is not None:
        options.setdefault("host", server.url)
    return OllamaScriptWriter(AdapterSettings(model=model, options=options))


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_registry_builds_the_ollama_writer():
    writer = build_adapter("ollama")
    assert isinstance(writer, OllamaScriptWriter)
    assert writer.model_id == "llama3.1:8b"


def test_valid_reply_becomes_the_script():
    expected = json.loads(script_reply(3))
    with FakeOllama(reply=script_reply(3)) as server:
        writer = _writer(server)
        script = writer.write(_spec())
        writer.unload()
    assert isinstance(script, Script)
    assert script.subject == expected["subject"]
    assert [s.visual_prompt for s in script.scenes] == [s["visual_prompt"] for s in expected["scenes"]]
    assert [s.narration for s in script.scenes] == [s["narration"] for s in expected["scenes"]]
    assert [s.motion_prompt for s in script.scenes] == ["slow push in"] * 3


def test_request_carries_the_script_schema_seed_and_brief():
    with FakeOllama(reply=script_reply(3)) as server:
        writer = _writer(server)
        first = writer.write(_spec())
        second = writer.write(_spec())
        writer.unload()
    assert first == second
    sent = [r.body for r in server.chat_requests]
    assert len(sent) == 2 and sent[0] == sent[1], "the same spec must send the same request"
    body = sent[0]
    assert body["model"] == "llama3.1:8b"
    assert body["stream"] is False
    assert body["options"]["seed"] == 1234
    assert body["options"]["temperature"] == 0
    schema = body["format"]
    assert schema == script_schema(3)
    assert set(schema["properties"]) == set(Script.model_json_schema()["properties"]) == {"subject", "scenes"}
    assert schema["properties"]["scenes"]["minItems"] == schema["properties"]["scenes"]["maxItems"] == 3
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    assert BRIEF in user and "exactly 3 scenes" in user


def test_the_server_unloads_the_model_once_the_script_is_written():
    """keep_alive 0 in every request: Ollama would otherwise hold its GPU memory for 5 minutes, beside the
    narration and video models that load next."""
    with FakeOllama(reply=script_reply(3)) as server:
        _writer(server).write(_spec())
        _writer(server, keep_alive="5m").write(_spec())
    first, second = (r.body for r in server.chat_requests)
    assert first["keep_alive"] == 0
    assert second["keep_alive"] == "5m"  # options.keep_alive overrides it


def test_the_spec_subject_is_asked_for_and_kept():
    with FakeOllama(reply=script_reply(2, subject="an old man")) as server:
        script = _writer(server).write(_spec(subject="the keeper", num_scenes=2))
    assert script.subject == "the keeper"
    user = next(m["content"] for m in server.chat_requests[0].body["messages"] if m["role"] == "user")
    assert "Subject: the keeper" in user


def test_reply_that_is_not_json_is_an_error_with_the_reply_start():
    reply = "Sure! Here is your script: " + "x" * 400
    with FakeOllama(reply=reply) as server, pytest.raises(ScriptWriterError) as info:
        _writer(server).write(_spec())
    message = str(info.value)
    assert "not valid JSON" in message and "llama3.1:8b" in message
    assert repr(reply[:200]) in message
    assert reply[:201] not in message


def test_reply_of_the_wrong_shape_names_the_field():
    reply = json.dumps({"title": "Lighthouse", "scenes": "three of them"})
    with FakeOllama(reply=reply) as server, pytest.raises(ScriptWriterError) as info:
        _writer(server).write(_spec())
    message = str(info.value)
    assert "not a valid script" in message
    assert "subject" in message and "scenes" in message
    assert repr(reply[:200]) in message


def test_reply_with_another_scene_count_is_an_error():
    with (
        FakeOllama(reply=script_reply(2)) as server,
        pytest.raises(ScriptWriterError, match="asked for 3 scenes"),
    ):
        _writer(server).write(_spec())


def test_missing_model_names_the_model():
    with FakeOllama(reply=script_reply(3)) as server, pytest.raises(ScriptWriterError) as info:
        _writer(server, model="qwen2.5:0.5b").write(_spec())
    message = str(info.value)
    assert "qwen2.5:0.5b" in message and "not found" in message and "ollama pull qwen2.5:0.5b" in message


def test_unreachable_host_names_the_host():
    url = _closed_port_url()
    with pytest.raises(ScriptWriterError) as info:
        _writer(host=url).write(_spec())
    message = str(info.value)
    assert url in message and "`ollama serve` running?" in message


def test_slow_server_times_out_with_the_limit():
    with FakeOllama(reply=script_reply(3), delay_s=1.5) as server, pytest.raises(ScriptWriterError) as info:
        _writer(server, timeout_s=0.2).write(_spec())
    assert "within 0.2 s" in str(info.value)


def test_host_comes_from_ollama_host_when_not_set(monkeypatch):
    with FakeOllama(reply=script_reply(3)) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        writer = _writer()
        assert writer.host == server.url
        assert len(writer.write(_spec()).scenes) == 3
    assert len(server.chat_requests) == 1


def test_host_resolution(monkeypatch):
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert resolve_host() == DEFAULT_HOST == "http://127.0.0.1:11434"
    assert resolve_host("gpu-box") == "http://gpu-box:11434"
    assert resolve_host("10.0.0.5:8080") == "http://10.0.0.5:8080"
    assert resolve_host("https://ollama.example.com") == "https://ollama.example.com:443"
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0")
    assert resolve_host() == "http://0.0.0.0:11434"
    assert resolve_host("http://127.0.0.1:1234/") == "http://127.0.0.1:1234"


def test_empty_brief_and_subject_is_an_error_before_any_request():
    with (
        FakeOllama(reply=script_reply(3)) as server,
        pytest.raises(ScriptWriterError, match="nothing to write"),
    ):
        _writer(server).write(_spec(brief=""))
    assert server.requests == []


def test_unload_closes_the_client():
    with FakeOllama(reply=script_reply(3)) as server:
        writer = _writer(server)
        writer.load()
        client = writer.client
        assert client is not None
        writer.unload()
        assert writer.client is None and not writer.is_loaded
        assert client._client.is_closed
        writer.unload()  # idempotent


def test_ollama_status_reachable_lists_version_and_models():
    with FakeOllama(models=["llama3.1:8b", "qwen2.5:0.5b"], version="0.12.6") as server:
        ok, message = ollama_status(server.url)
        _, with_model = ollama_status(server.url, model="llama3.1:8b")
        _, missing = ollama_status(server.url, model="mistral")
    assert ok
    assert "0.12.6" in message and server.url in message
    assert "llama3.1:8b" in message and "qwen2.5:0.5b" in message
    assert "llama3.1:8b: pulled" in with_model
    assert "mistral: not pulled" in missing and "ollama pull mistral" in missing
    assert [r.path for r in server.requests][:2] == ["/api/version", "/api/tags"]


def test_ollama_status_unreachable_says_why():
    url = _closed_port_url()
    ok, message = ollama_status(url, timeout=1.0)
    assert not ok
    assert url in message and "ollama serve" in message
