"""The ``prefetch_models`` job, its Hugging Face resource and the daily ``smoke_prefetch`` schedule.

Put them in the code location's Definitions::

    dg.Definitions(jobs=[prefetch_job], schedules=[smoke_prefetch_schedule], resources={"hf": hf_resource()})

An op job, not an asset: the Hugging Face cache belongs to one machine (the next run may land on another),
a dry run or smoke run makes no weights at all, and one run covers several families at once. Each repo's
outcome is still recorded against the asset key ``model_weights/<adapter>/<repo name>`` (one adapter may
load from several repos; characters outside ``[A-Za-z0-9_]`` become ``_``): an ``AssetMaterialization``
when the weights were fetched, an ``AssetObservation`` (commit sha, sizes) for a dry run or smoke run. The
op's output metadata holds the totals. No event, log line or metadata holds the token.

The job's config defaults to a dry run (``dry_run: true``): a full fetch (tens of GB per family) has to be
asked for with ``dry_run: false``. Without huggingface_hub (the ``[models]`` extra) a run fails with one
line that names the extra and the install command.

(No ``from __future__ import annotations`` here: Dagster resolves config and resource parameters from real
annotations.)
"""

import os
import re

import dagster as dg
from pydantic import Field

from i2v_dagster.errors import PrefetchError
from i2v_dagster.extras import MissingExtraError
from i2v_dagster.prefetch import (
    ALL,
    FAMILIES,
    TIME_BOUND_REACHED,
    PrefetchReport,
    RepoResult,
    prefetch,
    resolve_cache_dir,
)

SMOKE_MAX_RUNTIME_S = 600


class HuggingFaceResource(dg.ConfigurableResource):
    """Access to the Hugging Face Hub: token, cache folder and endpoint."""

    token: str | None = Field(
        default=None,
        repr=False,
        description=(
            "Hugging Face read token, given as dg.EnvVar('HF_TOKEN') (never a literal). Unset: "
            "huggingface_hub looks for HF_TOKEN, then a saved login, when the run fetches; public repos "
            "need none."
        ),
    )
    cache_dir: str | None = Field(
        default=None, description="Hub cache folder; unset means HF_HUB_CACHE (by default under HF_HOME)."
    )
    endpoint: str | None = Field(
        default=None, description="Hub URL; unset means HF_ENDPOINT, else https://huggingface.co."
    )

    def prefetch(self, models: list[str], *, cache_dir: str | None = None, **options) -> PrefetchReport:
        """:func:`i2v_dagster.prefetch.prefetch` with this resource's token, cache folder and endpoint."""
        return prefetch(
            models,
            cache_dir=cache_dir or self.cache_dir,
            token=self.token or None,
            endpoint=self.endpoint,
            **options,
        )


def hf_resource(*, cache_dir: str | None = None, endpoint: str | None = None) -> HuggingFaceResource:
    """The resource for Definitions: the token from ``dg.EnvVar("HF_TOKEN")``, read when a run launches.

    Dagster refuses to launch a run whose EnvVar is unset, even for an optional field, so the EnvVar is
    only wired in when HF_TOKEN is set where the code location loads (only its presence is read here).
    Without it the token stays None and huggingface_hub still finds HF_TOKEN (or a saved login) at run
    time; public repos need none.
    """
    token = dg.EnvVar("HF_TOKEN") if os.environ.get("HF_TOKEN") else None
    return HuggingFaceResource(token=token, cache_dir=cache_dir, endpoint=endpoint)


class PrefetchConfig(dg.Config):
    models: list[str] = Field(
        default=[ALL],
        description=f"Families ({', '.join([ALL, *FAMILIES])}) or adapter names to fetch.",
    )
    smoke: bool = Field(
        default=False,
        description=(
            "Fetch only metadata files (configs, tokenizers; no weights) within smoke_seconds; with "
            "dry_run: true (the default) it only lists them."
        ),
    )
    smoke_seconds: float = Field(
        default=20.0, description="Time bound of a smoke run in seconds; it stops and reports what is left."
    )
    dry_run: bool = Field(
        default=True,
        description=(
            "List the files (and sizes) that would be fetched; fetch nothing. The default: set it to false "
            "to fetch."
        ),
    )
    cache_dir: str | None = Field(
        default=None,
        description="Hub cache folder for this run; unset means the resource's (or HF_HUB_CACHE).",
    )


def weights_asset_key(result: RepoResult) -> dg.AssetKey:
    name = re.sub(r"[^A-Za-z0-9_]", "_", (result.repo_id or "").rsplit("/", 1)[-1])
    return dg.AssetKey(["model_weights", result.adapter, name])


def _repo_metadata(result: RepoResult, cache_dir: str) -> dict[str, dg.MetadataValue]:
    meta = {
        "mode": dg.MetadataValue.text(result.mode),
        "repo": dg.MetadataValue.text(result.repo_id or ""),
        "revision": dg.MetadataValue.text(result.revision or ""),
        "commit": dg.MetadataValue.text(result.commit or ""),
        "files": dg.MetadataValue.int(len(result.files)),
        "bytes": dg.MetadataValue.int(result.bytes),
        "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
        "cache_dir": dg.MetadataValue.path(cache_dir),
    }
    if result.snapshot_path:
        meta["snapshot_path"] = dg.MetadataValue.path(result.snapshot_path)
    if result.files_left:
        meta["files_left"] = dg.MetadataValue.json(list(result.files_left))
    return meta


@dg.op(
    name="prefetch_weights",
    description="Fetch (or dry-run, or smoke-test) the Hugging Face repos of the chosen model families.",
    out=dg.Out(list, description="One summary per repo (no token)."),
)
def prefetch_weights(context: dg.OpExecutionContext, config: PrefetchConfig, hf: HuggingFaceResource):
    done: list[RepoResult] = []

    def record(result: RepoResult) -> None:
        done.append(result)
        if result.skipped:
            return
        key = weights_asset_key(result)
        meta = _repo_metadata(result, cache_dir)
        if result.mode == "full":
            context.log_event(dg.AssetMaterialization(asset_key=key, metadata=meta))
        else:
            context.log_event(dg.AssetObservation(asset_key=key, metadata=meta))

    try:
        cache_dir = resolve_cache_dir(config.cache_dir or hf.cache_dir)
        report = hf.prefetch(
            list(config.models),
            cache_dir=cache_dir,
            dry_run=config.dry_run,
            smoke=config.smoke,
            smoke_seconds=config.smoke_seconds,
            logger=context.log,
            on_result=record,
        )
    except (PrefetchError, ValueError, MissingExtraError) as exc:  # ValueError: bad models, smoke_seconds
        raise dg.Failure(
            description=str(exc),
            metadata={"repos_done": dg.MetadataValue.json([r.as_dict() for r in done])},
            allow_retries=False,
        ) from exc
    if report.stopped == TIME_BOUND_REACHED:
        context.log.warning(
            "smoke run stopped at its %.0fs bound: %d metadata files left",
            config.smoke_seconds,
            report.files_left,
        )
    if report.mode == "dry_run":
        context.log.info("dry run: nothing was fetched; run with dry_run: false to fetch these files")
    return dg.Output(
        value=[r.as_dict() for r in report.results],
        metadata={
            "mode": dg.MetadataValue.text(report.mode),
            "repos": dg.MetadataValue.json({r.repo_id: r.commit for r in report.results if r.repo_id}),
            "files": dg.MetadataValue.int(report.files),
            "bytes": dg.MetadataValue.int(report.bytes),
            "seconds": dg.MetadataValue.float(round(report.seconds, 3)),
            "cache_dir": dg.MetadataValue.path(report.cache_dir),
            "endpoint": dg.MetadataValue.url(report.endpoint),
            "authenticated": dg.MetadataValue.bool(report.authenticated),
            "stopped": dg.MetadataValue.text(report.stopped or ""),
            "files_left": dg.MetadataValue.int(report.files_left),
            "skipped": dg.MetadataValue.json({r.adapter: r.skipped for r in report.results if r.skipped}),
        },
    )


@dg.job(
    name="prefetch_models",
    description=(
        "Fetch model weights into the Hugging Face cache. Defaults to a dry run that lists files and sizes; "
        "set dry_run: false to fetch (smoke: true fetches metadata files only)."
    ),
)
def prefetch_job() -> None:
    prefetch_weights()


smoke_prefetch_schedule = dg.ScheduleDefinition(
    name="smoke_prefetch",
    job=prefetch_job,
    cron_schedule="30 5 * * *",
    execution_timezone="UTC",
    run_config=dg.RunConfig(
        ops={"prefetch_weights": PrefetchConfig(models=[ALL], smoke=True, dry_run=False)}  # fetch, not list
    ),
    tags={"dagster/max_runtime": str(SMOKE_MAX_RUNTIME_S)},
    description="Daily: fetch every family's metadata files (no weights) to check the repos and token work.",
)
