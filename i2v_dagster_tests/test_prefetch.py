"""Weight prefetch (plain functions and the Dagster job) against a local fake hub: no internet, no weights."""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from i2v_dagster import prefetch as pf
from i2v_dagster.errors import AdapterError, PrefetchError
from i2v_dagster.extras import MissingExtraError
from i2v_dagster.models import registry
from i2v_dagster.models.base import Adapter
from i2v_dagster_tests.fake_hub import FakeHub, FakeRepo

if (
    importlib.util.find_spec("huggingface_hub") is None
):  # found, not imported: it reads its settings on import
    pytest.skip("needs huggingface_hub (the [models] extra)", allow_module_level=True)

SECRET = "hf_test_SECRET_4f9c2a7e1b"
MISSING_HUB = (
    "prefetch needs huggingface_hub, which comes with the [models] extra: "
    "pip install -c constraints.txt -e '.[models]'"
)


# ------------------------------------------------------------------------------------------ fake repos
def pipe_repo() -> FakeRepo:
    """A diffusers-like repo: the adapter's patterns select model_index, unet/ and tokenizer/."""
    return FakeRepo.build(
        "test-org/tiny-pipe",
        {
            "model_index.json": b'{"_class_name": "TinyPipeline"}',
            "scheduler/scheduler_config.json": b'{"num_train_timesteps": 10}',
            "unet/config.json": b'{"layers": 2}',
            "unet/diffusion_pytorch_model.safetensors": bytes(range(256)) * 16,
            "tokenizer/tokenizer_config.json": b'{"model_max_length": 8}',
            "tokenizer/special_tokens_map.json": b'{"eos_token": "</s>"}',
            "tokenizer/vocab.txt": b"a\nb\nc\n",
            "tokenizer/spiece.model": b"\x0a\x04unit" * 20,
            "README.md": b"# tiny pipe",
            "full_checkpoint.safetensors": bytes(8192),
        },
    )


PIPE_ALLOWED = {
    "model_index.json",
    "scheduler/scheduler_config.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "tokenizer/tokenizer_config.json",
    "tokenizer/special_tokens_map.json",
    "tokenizer/vocab.txt",
    "tokenizer/spiece.model",
}
PIPE_METADATA = PIPE_ALLOWED - {"unet/diffusion_pytorch_model.safetensors"}


def pinned_repo() -> FakeRepo:
    """Two commits: the adapter pins the first, ``main`` has moved on to the second."""
    repo = FakeRepo("test-org/tiny-pinned")
    repo.add_commit({"config.json": b'{"version": 1}', "model.safetensors": b"one" * 100})
    repo.add_commit({"config.json": b'{"version": 2}', "model.safetensors": b"two" * 100})
    return repo


PINNED_V1 = next(iter(pinned_repo().commits))


def gated_repo() -> FakeRepo:
    return FakeRepo.build(
        "gated-org/tiny-gated",
        {"config.json": b'{"gated": true}', "model.safetensors": b"\x01" * 1000, "notes.md": b"x"},
        gated=True,
    )


class TinyPipe(Adapter):
    default_repo = "test-org/tiny-pipe"
    allow_patterns = ("model_index.json", "scheduler/*.json", "unet/*", "tokenizer/*")


class TinyPinned(Adapter):
    default_repo = "test-org/tiny-pinned"
    default_revision = PINNED_V1
    allow_patterns = ("*.json", "*.safetensors")


class TinyGated(Adapter):
    default_repo = "gated-org/tiny-gated"
    allow_patterns = ("*.json", "*.safetensors")


TEST_ADAPTERS = {"tiny_pipe": "TinyPipe", "tiny_pinned": "TinyPinned", "tiny_gated": "TinyGated"}
TEST_FAMILIES = {
    "tinypipe": ("tiny_pipe",),
    "tinypinned": ("tiny_pinned",),
    "tinygated": ("tiny_gated",),
    "mocks": ("mock_video",),  # a registry adapter with no Hugging Face repo
}


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture
def online(monkeypatch, tmp_path):
    """Undo the conftest's offline mode for huggingface_hub (its constants are read at import)."""
    from huggingface_hub import constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no-saved-token" / "token"))
    monkeypatch.setattr(hf_constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-saved-token" / "stored"))


@pytest.fixture
def families(monkeypatch):
    for name, cls_name in TEST_ADAPTERS.items():
        monkeypatch.setitem(registry._ADAPTERS, name, ("video", f"{__name__}:{cls_name}"))
    monkeypatch.setattr(pf, "FAMILIES", dict(TEST_FAMILIES))
    registry.get_adapter_info.cache_clear()
    yield
    registry.get_adapter_info.cache_clear()


@pytest.fixture
def hub(online, families):
    with FakeHub([pipe_repo(), pinned_repo(), gated_repo()], token=SECRET) as fake:
        yield fake


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "hf-cache"


def cached_files(cache: Path) -> list[str]:
    if not cache.exists():
        return []
    return sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file())


def snapshot_files(cache: Path, repo_id: str, commit: str) -> dict[str, bytes]:
    snap = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / commit
    return {p.relative_to(snap).as_posix(): p.read_bytes() for p in snap.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------------------ plain functions
def test_real_families_name_registered_adapters():
    for family, adapters in pf.FAMILIES.items():
        for adapter in adapters:
            assert registry.adapter_role(adapter), f"family {family} names unknown adapter {adapter}"
    everything = pf.families_for(["all"])
    assert [a for _, a in everything] == [a for adapters in pf.FAMILIES.values() for a in adapters]
    assert pf.families_for(["flux", "flux_schnell", "all"])[0] == ("flux", "flux_schnell")
    assert len(pf.families_for(["flux", "flux_schnell"])) == 1
    with pytest.raises(AdapterError, match="'fluxx'"):
        pf.families_for(["fluxx"])


def test_every_real_adapter_names_its_repos_and_patterns():
    targets = pf.targets_for(["all"])
    assert {t.adapter for t in targets} == {a for adapters in pf.FAMILIES.values() for a in adapters}
    for target in targets:
        assert target.repo_id and "/" in target.repo_id, target
        assert target.allow_patterns, f"{target.adapter} would fetch every file of {target.repo_id}"


def test_metadata_files_never_include_weights():
    assert pf.is_metadata_file("tokenizer/tokenizer_config.json")
    assert pf.is_metadata_file("text_encoder_2/spiece.model")
    assert not pf.is_metadata_file("unet/diffusion_pytorch_model.safetensors")
    assert not pf.is_metadata_file("model.safetensors.index.bin")
    assert not pf.is_metadata_file("README.md")


def test_dry_run_lists_files_and_sizes_and_downloads_nothing(hub, cache):
    repo = pipe_repo()
    sizes = {name: len(data) for name, data in repo.commits[repo.head].items()}

    plans = pf.plan_prefetch(["tinypipe"], cache_dir=cache, endpoint=hub.url)
    assert [p.target.repo_id for p in plans] == ["test-org/tiny-pipe"]
    assert {f.filename: f.file_size for f in plans[0].files} == {n: sizes[n] for n in PIPE_ALLOWED}
    assert plans[0].commit == repo.head

    report = pf.prefetch(["tinypipe"], dry_run=True, cache_dir=cache, endpoint=hub.url)
    (result,) = report.results
    assert result.mode == "dry_run" and result.commit == repo.head
    assert set(result.files) == PIPE_ALLOWED
    assert result.bytes == report.bytes == sum(sizes[n] for n in PIPE_ALLOWED)
    assert result.cached_files == 0
    assert "would fetch 8 files" in report.summary()
    assert cached_files(cache) == [], "a dry run writes nothing, not even a ref"
    assert hub.downloads() == []
    assert {r.filename for r in hub.resolve_requests()} == PIPE_ALLOWED  # the hub was asked about each file

    smoke = pf.prefetch(["tinypipe"], dry_run=True, smoke=True, cache_dir=cache, endpoint=hub.url)
    assert smoke.mode == "dry_run" and set(smoke.results[0].files) == PIPE_METADATA
    assert hub.downloads() == []


def test_smoke_fetches_metadata_files_only(hub, cache):
    report = pf.prefetch(["tinypipe"], smoke=True, smoke_seconds=20, cache_dir=cache, endpoint=hub.url)
    (result,) = report.results
    assert report.stopped is None and report.complete
    assert set(result.files) == PIPE_METADATA and result.files_left == ()
    assert not [f for f in cached_files(cache) if f.endswith(".safetensors")]
    fetched = snapshot_files(cache, "test-org/tiny-pipe", pipe_repo().head)
    assert set(fetched) == PIPE_METADATA
    assert fetched["tokenizer/vocab.txt"] == b"a\nb\nc\n"
    assert {r.filename for r in hub.downloads()} == PIPE_METADATA
    assert {r.filename for r in hub.resolve_requests()} == PIPE_ALLOWED  # the plan's HEADs, weights included


def test_smoke_stops_cleanly_at_its_time_bound(hub, cache):
    hub.delay_s = 0.25  # every answer takes a quarter second: 7 files (HEAD + GET each) need about 4 s
    started = time.monotonic()
    report = pf.prefetch(["tinypipe"], smoke=True, smoke_seconds=1.5, cache_dir=cache, endpoint=hub.url)
    elapsed = time.monotonic() - started

    assert elapsed < 1.5 + 2.0
    assert report.stopped == pf.TIME_BOUND_REACHED
    assert "time bound reached" in report.summary()
    (result,) = report.results
    assert result.commit == pipe_repo().head  # the repo was planned before the bound
    assert result.files_left, "a bound this small cannot fetch every metadata file"
    assert set(result.files) | set(result.files_left) == PIPE_METADATA
    assert not set(result.files) & set(result.files_left)
    assert not [f for f in cached_files(cache) if f.endswith(".safetensors")]


def test_smoke_bound_holds_when_the_hub_hangs(hub, cache):
    hub.delay_s = 5.0  # the listing itself never answers within the bound
    started = time.monotonic()
    report = pf.prefetch(["tinypipe"], smoke=True, smoke_seconds=0.5, cache_dir=cache, endpoint=hub.url)
    assert time.monotonic() - started < 0.5 + 2.0
    assert report.stopped == pf.TIME_BOUND_REACHED
    (result,) = report.results
    assert result.skipped == "time bound reached before the repo was listed"


def test_full_fetch_honours_allow_patterns(hub, cache):
    repo = pipe_repo()
    report = pf.prefetch(["tinypipe"], cache_dir=cache, endpoint=hub.url)
    (result,) = report.results
    assert result.mode == "full" and result.commit == repo.head
    assert set(result.files) == PIPE_ALLOWED
    assert snapshot_files(cache, repo.repo_id, repo.head) == {
        n: repo.commits[repo.head][n] for n in PIPE_ALLOWED
    }
    assert result.bytes == sum(len(repo.commits[repo.head][n]) for n in PIPE_ALLOWED)
    assert not [f for f in cached_files(cache) if f.endswith(("README.md", "full_checkpoint.safetensors"))]
    assert not {r.filename for r in hub.resolve_requests()} & {"README.md", "full_checkpoint.safetensors"}
    ref = cache / "models--test-org--tiny-pipe" / "refs" / "main"
    assert ref.read_text() == repo.head  # what a loader reading revision "main" offline needs

    downloads = len(hub.downloads())
    again = pf.prefetch(["tinypipe"], dry_run=True, cache_dir=cache, endpoint=hub.url).results[0]
    assert again.cached_files == len(PIPE_ALLOWED) and len(hub.downloads()) == downloads


def test_full_fetch_pins_the_adapters_revision(hub, cache):
    repo = pinned_repo()
    assert repo.head != PINNED_V1
    (result,) = pf.prefetch(["tinypinned"], cache_dir=cache, endpoint=hub.url).results
    assert result.revision == PINNED_V1 and result.commit == PINNED_V1
    assert snapshot_files(cache, repo.repo_id, PINNED_V1) == repo.commits[PINNED_V1]
    assert not (cache / "models--test-org--tiny-pinned" / "snapshots" / repo.head).exists()

    override = pf.prefetch(
        ["tinypinned"], cache_dir=cache, endpoint=hub.url, revisions={"tiny_pinned": "main"}
    )
    assert override.results[0].commit == repo.head
    assert snapshot_files(cache, repo.repo_id, repo.head)["config.json"] == b'{"version": 2}'


def test_gated_repo_without_token_fails_before_downloading(hub, cache):
    with pytest.raises(PrefetchError) as info:
        pf.prefetch(["tinypipe", "tinygated"], cache_dir=cache, endpoint=hub.url)
    message = str(info.value)
    assert "gated-org/tiny-gated is a gated repo" in message
    assert "HF_TOKEN" in message and "accepted the model's terms" in message
    assert hub.downloads() == [], "nothing is downloaded once a gated repo lacks a token"
    assert cached_files(cache) == []


def test_gated_repo_with_refused_token_names_the_fix_and_hides_the_token(hub, cache):
    wrong = "hf_test_WRONG_0000"
    with pytest.raises(PrefetchError) as info:
        pf.prefetch(["tinygated"], cache_dir=cache, endpoint=hub.url, token=wrong)
    assert "refused the token that was sent (HTTP 403)" in str(info.value)
    assert "accepted the model's terms on http://127.0.0.1" in str(info.value)
    assert [r.authorization for r in hub.resolve_requests()][:1] == [f"Bearer {wrong}"]
    chain = "".join(traceback.format_exception(info.value))
    assert wrong not in chain


def test_adapter_without_repo_is_skipped_with_a_reason(hub, cache):
    report = pf.prefetch(["mocks"], dry_run=True, cache_dir=cache, endpoint=hub.url)
    (result,) = report.results
    assert result.skipped == "adapter 'mock_video' names no Hugging Face repo"
    assert not report.complete


@pytest.mark.parametrize(
    ("models", "options", "field"),
    [
        ([], {}, "`models` is empty"),
        (["tinypipe", "fluxx"], {}, "`models` has 'fluxx'"),
        (["tinypipe"], {"smoke": True, "smoke_seconds": 0}, "`smoke_seconds` has to be a number greater"),
        (["tinypipe"], {"smoke": True, "smoke_seconds": float("inf")}, "`smoke_seconds`"),
        (["tinypipe"], {"smoke": True, "smoke_seconds": float("nan")}, "`smoke_seconds`"),
    ],
)
def test_bad_input_names_the_field(hub, cache, models, options, field):
    with pytest.raises(ValueError) as info:
        pf.prefetch(models, cache_dir=cache, endpoint=hub.url, **options)
    assert field in str(info.value) and "\n" not in str(info.value)
    assert hub.requests == []


def test_without_huggingface_hub_prefetch_fails_with_one_line(families, monkeypatch, cache):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # `import huggingface_hub` now fails
    with pytest.raises(MissingExtraError) as info:
        pf.prefetch(["tinypipe"], dry_run=True, cache_dir=cache)
    assert str(info.value) == MISSING_HUB
    with pytest.raises(MissingExtraError, match=r"\[models\] extra"):
        pf.plan_prefetch(["tinypipe"], cache_dir=cache)


def test_offline_mode_is_refused_with_the_setting_named(online, families, monkeypatch, cache):
    from huggingface_hub import constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PrefetchError, match="HF_HUB_OFFLINE"):
        pf.prefetch(["tinypipe"], dry_run=True, cache_dir=cache, endpoint="http://127.0.0.1:9")


# ------------------------------------------------------------------------------------------------- Dagster
def test_job_config_defaults_and_daily_smoke_schedule():
    from i2v_dagster.defs.prefetch import hf_resource, prefetch_job, smoke_prefetch_schedule

    defaults = dg.validate_run_config(prefetch_job, {})["ops"]["prefetch_weights"]["config"]
    assert defaults == {
        "models": ["all"],
        "smoke": False,
        "smoke_seconds": 20.0,
        "dry_run": True,  # one click never fetches every family's weights
        "cache_dir": None,
    }
    assert "dry run" in prefetch_job.description and "dry_run: false" in prefetch_job.description

    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 23, 5, 30, tzinfo=UTC))
    (request,) = smoke_prefetch_schedule.evaluate_tick(context).run_requests
    config = dg.validate_run_config(prefetch_job, request.run_config)["ops"]["prefetch_weights"]["config"]
    assert config["smoke"] is True and config["models"] == ["all"] and config["smoke_seconds"] == 20.0
    assert config["dry_run"] is False  # the daily run really fetches the metadata files
    assert smoke_prefetch_schedule.cron_schedule == "30 5 * * *"
    assert smoke_prefetch_schedule.job_name == "prefetch_models" == prefetch_job.name

    defs = dg.Definitions(
        jobs=[prefetch_job], schedules=[smoke_prefetch_schedule], resources={"hf": hf_resource()}
    )
    assert defs.resolve_job_def("prefetch_models").name == "prefetch_models"


@pytest.fixture
def instance(tmp_path):
    folder = tmp_path / "dagster"
    folder.mkdir()
    with dg.instance_for_test(temp_dir=str(folder)) as instance:
        yield instance


def _run_job(run_config: dict, resource, instance):
    from i2v_dagster.defs.prefetch import prefetch_job

    return prefetch_job.execute_in_process(
        run_config={"ops": {"prefetch_weights": {"config": run_config}}},
        resources={"hf": resource},
        instance=instance,
        raise_on_error=False,
    )


def test_job_fetches_gated_repo_with_env_token_and_never_records_it(
    hub, cache, instance, tmp_path, monkeypatch, caplog, capfd
):
    from i2v_dagster.defs.prefetch import hf_resource

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    resource = hf_resource(cache_dir=str(cache), endpoint=hub.url)
    assert SECRET not in repr(resource)
    gated = gated_repo()

    result = _run_job({"models": ["tinygated", "tinypipe"], "dry_run": False}, resource, instance)
    assert result.success
    records = instance.all_logs(result.run_id)
    stored_run = instance.get_run_by_id(result.run_id)

    # the gated repo was fetched with the token, and the run recorded what it fetched
    assert snapshot_files(cache, gated.repo_id, gated.head) == {
        n: gated.commits[gated.head][n] for n in ("config.json", "model.safetensors")
    }
    assert {r.authorization for r in hub.resolve_requests(gated.repo_id)} == {f"Bearer {SECRET}"}
    materialized = {
        m.asset_key.to_user_string(): m.metadata
        for m in result.asset_materializations_for_node("prefetch_weights")
    }
    assert set(materialized) == {"model_weights/tiny_gated/tiny_gated", "model_weights/tiny_pipe/tiny_pipe"}
    gated_meta = materialized["model_weights/tiny_gated/tiny_gated"]
    assert gated_meta["commit"].value == gated.head and gated_meta["repo"].value == gated.repo_id
    assert gated_meta["bytes"].value == 1000 + len(b'{"gated": true}')
    output_meta = next(
        e.event_specific_data.metadata for e in result.all_events if e.event_type_value == "STEP_OUTPUT"
    )
    assert output_meta["authenticated"].value is True
    assert output_meta["repos"].value == {gated.repo_id: gated.head, "test-org/tiny-pipe": pipe_repo().head}

    # the token is nowhere: events, stored event log, run record, files on disk, logs
    for event in result.all_events:
        assert SECRET not in dg.serialize_value(event)
    for record in records:
        assert SECRET not in dg.serialize_value(record)
    assert SECRET not in dg.serialize_value(stored_run)
    for root in (cache, tmp_path / "dagster"):
        for path in root.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), f"token written to {path}"
    captured = capfd.readouterr()
    assert SECRET not in captured.out + captured.err
    assert SECRET not in caplog.text
    assert "gated-org/tiny-gated" in caplog.text  # the capture did see the run's log lines


def test_job_runs_public_repos_without_hf_token(hub, cache, instance):
    from i2v_dagster.defs.prefetch import HuggingFaceResource, hf_resource

    # Dagster refuses to launch a run whose EnvVar is unset, even for an optional field ...
    bare = HuggingFaceResource(token=dg.EnvVar("HF_TOKEN"), cache_dir=str(cache), endpoint=hub.url)
    with pytest.raises(dg.DagsterInvalidConfigError, match="HF_TOKEN"):
        _run_job({"models": ["tinypipe"], "dry_run": True}, bare, instance)
    # ... so hf_resource() wires the EnvVar in only when HF_TOKEN is set
    resource = hf_resource(cache_dir=str(cache), endpoint=hub.url)
    assert resource.token is None
    result = _run_job({"models": ["tinypipe"], "smoke": True, "dry_run": False}, resource, instance)
    assert result.success
    assert result.asset_materializations_for_node("prefetch_weights") == []  # smoke fetches no weights
    observations = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert [o.event_specific_data.asset_observation.asset_key.to_user_string() for o in observations] == [
        "model_weights/tiny_pipe/tiny_pipe"
    ]
    assert {r.authorization for r in hub.resolve_requests()} == {None}
    assert {r.filename for r in hub.downloads()} == PIPE_METADATA
    assert not [f for f in cached_files(cache) if f.endswith(".safetensors")]


def test_job_default_is_a_dry_run(hub, cache, instance):
    from i2v_dagster.defs.prefetch import hf_resource

    result = _run_job({"models": ["tinypipe"]}, hf_resource(cache_dir=str(cache), endpoint=hub.url), instance)
    assert result.success
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    assert output.event_specific_data.metadata["mode"].value == "dry_run"
    assert output.event_specific_data.metadata["files"].value == len(PIPE_ALLOWED)
    assert hub.downloads() == [] and cached_files(cache) == []
    assert result.asset_materializations_for_node("prefetch_weights") == []


def test_job_without_huggingface_hub_fails_with_one_line(families, monkeypatch, instance):
    from i2v_dagster.defs.prefetch import HuggingFaceResource

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    result = _run_job({"models": ["tinypipe"]}, HuggingFaceResource(), instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message.strip()
    assert message.endswith(f": {MISSING_HUB}") and "\n" not in message, message
    assert "No module named" not in str(failure.event_specific_data.error.to_string())


def test_job_fails_with_the_gated_message_when_no_token(hub, instance):
    from i2v_dagster.defs.prefetch import hf_resource

    result = _run_job({"models": ["tinygated"], "dry_run": True}, hf_resource(endpoint=hub.url), instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "gated-org/tiny-gated is a gated repo" in failure.event_specific_data.error.message
    assert "HF_TOKEN" in failure.event_specific_data.error.message
