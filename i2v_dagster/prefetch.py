"""Fetch model weights into the Hugging Face cache ahead of a run. Plain Python, no Dagster.

Models are named by family (``flux``, ``cogvideox``, ...; ``all`` for every family) or by adapter name;
each adapter gives the repo, revision and ``allow_patterns`` (see :mod:`i2v_dagster.models.registry`).
Every mode first plans each repo: its revision is resolved to a commit sha (``HfApi.repo_info``), then
huggingface_hub's own dry run (``snapshot_download(dry_run=True)`` at that commit) lists the files the
patterns select, with sizes and whether each is cached. A gated repo that the token (or its absence) does
not open fails there, before anything is downloaded. Then:

- **dry run**: report the plan; nothing is fetched or written to the cache;
- **smoke**: fetch the plan's metadata files (configs, tokenizer files; never weights) until
  ``smoke_seconds`` is up, then report what was fetched and what was left;
- **full**: ``snapshot_download`` each repo with its ``allow_patterns`` at its revision.

huggingface_hub comes with the ``[models]`` extra; without it every entry point fails with one line saying
so. The token is passed to huggingface_hub and nowhere else: no message, log line or result holds it.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from i2v_dagster.errors import AdapterError, PrefetchError
from i2v_dagster.extras import require_extra

if TYPE_CHECKING:
    from huggingface_hub import DryRunFileInfo

log_ = logging.getLogger(__name__)

ALL = "all"
FAMILIES: dict[str, tuple[str, ...]] = {
    "flux": ("flux_schnell",),
    "cogvideox": ("cogvideox_5b_i2v",),
    "cogvideox15": ("cogvideox15_5b_i2v",),
    "wan22": ("wan22_ti2v_5b",),
    "hunyuan": ("hunyuan_i2v",),
    "bark": ("bark",),
    "clip": ("clip",),
}
"""Family -> adapter names (registry names). ``all`` means every family here, in this order."""

METADATA_PATTERNS: tuple[str, ...] = ("*.json", "*.txt", "*.model", "*.yaml", "*.yml")
"""Files a smoke run fetches: configs, ``model_index.json``, tokenizer files (``spiece.model`` included)."""
TIME_BOUND_REACHED = "time bound reached"

Mode = Literal["dry_run", "smoke", "full"]


def _require_hub() -> None:
    require_extra("huggingface_hub", "prefetch")


# ------------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class PrefetchTarget:
    """One adapter's repo, as the registry describes it (with any revision override applied)."""

    family: str
    adapter: str
    repo_id: str | None
    revision: str
    """Requested revision: the adapter's pin (ideally a commit sha), an override, or ``main``."""
    allow_patterns: tuple[str, ...]
    """Empty means every file of the repo (``snapshot_download`` with ``allow_patterns=None``)."""


@dataclass(frozen=True)
class RepoPlan:
    target: PrefetchTarget
    commit: str
    """The commit sha the requested revision resolved to."""
    files: tuple[DryRunFileInfo, ...]
    """huggingface_hub's dry run of the files matching the adapter's ``allow_patterns``, by name."""

    @property
    def bytes(self) -> int:
        return sum(f.file_size or 0 for f in self.files)

    def metadata_files(self) -> tuple[DryRunFileInfo, ...]:
        return tuple(f for f in self.files if is_metadata_file(f.filename))


@dataclass(frozen=True)
class RepoResult:
    """What one repo got (or, in a dry run, would get)."""

    family: str
    adapter: str
    repo_id: str | None
    revision: str | None
    mode: Mode
    commit: str | None = None
    files: tuple[str, ...] = ()
    """Fetched (smoke, full) or to fetch (dry run)."""
    bytes: int = 0
    seconds: float = 0.0
    files_left: tuple[str, ...] = ()
    """Smoke: metadata files not fetched when the time bound was reached."""
    cached_files: int = 0
    """Dry run: planned files already in the cache."""
    snapshot_path: str | None = None
    skipped: str | None = None
    """Why nothing was done for this repo (None when it was processed)."""

    @classmethod
    def of(cls, target: PrefetchTarget, mode: Mode, **fields) -> RepoResult:
        return cls(target.family, target.adapter, target.repo_id, target.revision, mode=mode, **fields)

    def as_dict(self) -> dict:
        return {
            "family": self.family,
            "adapter": self.adapter,
            "repo": self.repo_id,
            "revision": self.revision,
            "commit": self.commit,
            "files": len(self.files),
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "files_left": len(self.files_left),
            "snapshot_path": self.snapshot_path,
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class PrefetchReport:
    mode: Mode
    cache_dir: str
    endpoint: str
    results: tuple[RepoResult, ...]
    seconds: float
    authenticated: bool = False
    """A token was available to send (the token itself is never kept)."""
    stopped: str | None = None
    """``TIME_BOUND_REACHED`` when a smoke run stopped at its bound."""

    @property
    def files(self) -> int:
        return sum(len(r.files) for r in self.results)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.results)

    @property
    def files_left(self) -> int:
        return sum(len(r.files_left) for r in self.results)

    @property
    def complete(self) -> bool:
        return self.stopped is None and all(r.skipped is None for r in self.results)

    def summary(self) -> str:
        verb = {"dry_run": "would fetch", "smoke": "fetched", "full": "fetched"}[self.mode]
        text = (
            f"{self.mode}: {verb} {self.files} files ({format_bytes(self.bytes)}) from "
            f"{sum(r.skipped is None for r in self.results)} repos in {self.seconds:.1f}s"
        )
        if self.stopped:
            text += f"; {self.stopped} with {self.files_left} files left"
        return text


# ------------------------------------------------------------------------------------------------- helpers
def format_bytes(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def match_allow_patterns(names: Iterable[str], allow_patterns: Sequence[str]) -> list[str]:
    """Names ``snapshot_download`` would fetch with these ``allow_patterns`` (its own filter function)."""
    _require_hub()
    from huggingface_hub.utils import filter_repo_objects

    return list(filter_repo_objects(list(names), allow_patterns=list(allow_patterns) or None))


def is_metadata_file(name: str) -> bool:
    """True for config/tokenizer files a smoke run may fetch; never for weights."""
    return bool(match_allow_patterns([name], METADATA_PATTERNS))


def families_for(models: Iterable[str]) -> list[tuple[str, str]]:
    """``(family, adapter)`` pairs for family names, adapter names and ``all``, in order, without repeats."""
    pairs: list[tuple[str, str]] = []
    for model in models:
        if model == ALL:
            found = [(fam, a) for fam, adapters in FAMILIES.items() for a in adapters]
        elif model in FAMILIES:
            found = [(model, a) for a in FAMILIES[model]]
        else:
            found = [(fam, a) for fam, adapters in FAMILIES.items() for a in adapters if a == model]
            if not found:
                known = ", ".join([ALL, *FAMILIES])
                raise AdapterError(
                    f"`models` has {model!r}, which is neither a family ({known}) nor an adapter"
                )
        pairs.extend(p for p in found if p not in pairs)
    if not pairs:
        raise AdapterError(f"`models` is empty: name families ({', '.join([ALL, *FAMILIES])}) or adapters")
    return pairs


def targets_for(models: Iterable[str], revisions: Mapping[str, str] | None = None) -> list[PrefetchTarget]:
    """Each adapter's repos, revisions and patterns.

    An adapter loading from several repos lists them in a ``prefetch_repos`` ClassVar of
    ``(repo_id, allow_patterns)`` pairs; otherwise its ``default_repo`` with ``allow_patterns``. The
    adapter's ``default_revision`` pins its ``default_repo``; ``revisions`` overrides it by adapter name
    (the default repo) or by repo id (any repo). Other repos follow ``main``.
    """
    from i2v_dagster.models.registry import get_adapter_info

    revisions = dict(revisions or {})
    targets = []
    for family, adapter in families_for(models):
        try:
            info = get_adapter_info(adapter)
        except (ImportError, AttributeError) as exc:
            raise PrefetchError(f"adapter {adapter!r} (family {family!r}) cannot be imported: {exc}") from exc
        repos = getattr(info.cls, "prefetch_repos", None) or ((info.repo_id, info.allow_patterns),)
        for repo_id, patterns in repos:
            if repo_id == info.repo_id:
                pinned = revisions.get(repo_id or "") or revisions.get(adapter) or info.revision
            else:
                pinned = revisions.get(repo_id)
            target = PrefetchTarget(family, adapter, repo_id, pinned or "main", tuple(patterns))
            if target not in targets:
                targets.append(target)
    return targets


def _transport_errors() -> tuple[type[Exception], ...]:
    """Connection/timeout errors of the HTTP client huggingface_hub uses (httpx2; httpx before it)."""
    return tuple(__import__(m).TransportError for m in ("httpx2", "httpx") if importlib.util.find_spec(m))


@contextmanager
def _hub_errors(repo_id: str, revision: str, endpoint: str) -> Iterator[None]:
    """Turn huggingface_hub's errors into a PrefetchError that says what to do (never with a token)."""
    from huggingface_hub import errors

    try:
        yield
    except errors.GatedRepoError as exc:
        request = getattr(exc.response, "request", None)  # only whether a token was sent is read
        if request is None or "authorization" not in request.headers:
            fix = "no Hugging Face token was sent: set HF_TOKEN to a read token of an account that has"
        else:
            fix = (
                f"the hub refused the token that was sent (HTTP {exc.response.status_code}): check that "
                "HF_TOKEN is a valid read token and that its account has"
            )
        raise PrefetchError(
            f"{repo_id} is a gated repo and {fix} accepted the model's terms on {endpoint}/{repo_id}"
        ) from exc
    except errors.RevisionNotFoundError as exc:
        raise PrefetchError(f"revision {revision!r} of {repo_id} does not exist on {endpoint}") from exc
    except errors.RepositoryNotFoundError as exc:
        raise PrefetchError(
            f"{repo_id} was not found on {endpoint} (or it is private and the token has no access to it)"
        ) from exc
    except errors.RemoteEntryNotFoundError as exc:
        raise PrefetchError(f"a file of {repo_id} at {revision!r} is missing on {endpoint}: {exc}") from exc
    except errors.HfHubHTTPError as exc:
        raise PrefetchError(
            f"the hub at {endpoint} answered HTTP {exc.response.status_code} for {repo_id}"
        ) from exc
    except (errors.OfflineModeIsEnabled, errors.LocalEntryNotFoundError, errors.DryRunError) as exc:
        cause = exc.__cause__ or exc
        raise PrefetchError(
            f"cannot fetch {repo_id}: the hub at {endpoint} is not reachable ({type(cause).__name__})"
        ) from exc
    except _transport_errors() as exc:
        raise PrefetchError(
            f"cannot reach the hub at {endpoint} for {repo_id}: {type(exc).__name__}"
        ) from exc


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> str:
    """The absolute cache folder: ``cache_dir``, else the environment's (:mod:`i2v_dagster.hfcache`); it is
    passed to huggingface_hub explicitly, so the library and the adapters agree on it."""
    from i2v_dagster.hfcache import hub_cache_dir

    _require_hub()
    return str(hub_cache_dir(cache_dir).resolve())


def _setup(
    cache_dir: str | os.PathLike | None, token: str | None, endpoint: str | None
) -> tuple[str, str | None, str]:
    """The cache folder, the token (None when blank) and the hub URL; refuses the hub's offline mode."""
    cache = resolve_cache_dir(cache_dir)
    from huggingface_hub import constants

    if constants.is_offline_mode():
        raise PrefetchError(
            "HF_HUB_OFFLINE is set: prefetching needs the hub; unset it (or set it to 0) and retry"
        )
    return cache, (token.strip() or None) if token else None, (endpoint or constants.ENDPOINT).rstrip("/")


def _snapshot_dir(cache_dir: str, repo_id: str, commit: str) -> Path:
    from huggingface_hub.file_download import repo_folder_name

    return Path(cache_dir) / repo_folder_name(repo_id=repo_id, repo_type="model") / "snapshots" / commit


# ---------------------------------------------------------------------------------------------- planning
def plan_repo(
    target: PrefetchTarget, *, cache_dir: str, token: str | None, endpoint: str, timeout: float | None = None
) -> RepoPlan:
    """Resolve one repo's revision to a commit and dry-run ``snapshot_download`` there (writes nothing).

    ``timeout`` bounds the revision lookup and each file's metadata request (huggingface_hub's
    ``etag_timeout``); None keeps huggingface_hub's defaults.
    """
    from huggingface_hub import HfApi, snapshot_download

    assert target.repo_id is not None
    api = HfApi(endpoint=endpoint, token=token)
    with _hub_errors(target.repo_id, target.revision, endpoint):
        commit = api.repo_info(target.repo_id, revision=target.revision, timeout=timeout).sha
        files = snapshot_download(
            target.repo_id,
            revision=commit,  # a sha: the dry run then writes no ref into the cache
            allow_patterns=list(target.allow_patterns) or None,
            cache_dir=cache_dir,
            token=token,
            endpoint=endpoint,
            dry_run=True,
            **({"etag_timeout": timeout} if timeout is not None else {}),
        )
    return RepoPlan(target, commit, tuple(sorted(files, key=lambda f: f.filename)))


def plan_prefetch(
    models: Iterable[str],
    *,
    cache_dir: str | os.PathLike | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    revisions: Mapping[str, str] | None = None,
) -> list[RepoPlan]:
    """Plan every repo of ``models``; raise PrefetchError for a gated repo the token does not open.

    Adapters that name no Hugging Face repo are left out (``prefetch`` reports them as skipped).
    """
    cache, token, hub = _setup(cache_dir, token, endpoint)
    targets = [t for t in targets_for(models, revisions) if t.repo_id]
    return [plan_repo(t, cache_dir=cache, token=token, endpoint=hub) for t in targets]


# ---------------------------------------------------------------------------------------------- fetching
def prefetch(
    models: Iterable[str] = (ALL,),
    *,
    dry_run: bool = False,
    smoke: bool = False,
    smoke_seconds: float = 20.0,
    cache_dir: str | os.PathLike | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    revisions: Mapping[str, str] | None = None,
    logger: logging.Logger | None = None,
    on_result: Callable[[RepoResult], None] | None = None,
) -> PrefetchReport:
    """Dry-run, smoke-fetch or fully fetch the repos of ``models`` into ``cache_dir`` (default HF_HUB_CACHE).

    ``dry_run`` with ``smoke`` lists the metadata files a smoke run would fetch. ``on_result`` is called in
    the caller's thread with each repo's result as soon as it is known (a full fetch that fails later has
    already reported the repos before it). Raises PrefetchError when the hub refuses or cannot be reached,
    MissingExtraError when huggingface_hub is not installed.
    """
    if smoke and not (math.isfinite(smoke_seconds) and smoke_seconds > 0):
        raise ValueError(f"`smoke_seconds` has to be a number greater than 0 but is {smoke_seconds}")
    cache, token, hub = _setup(cache_dir, token, endpoint)
    from huggingface_hub import get_token

    log = logger or log_
    mode: Mode = "dry_run" if dry_run else "smoke" if smoke else "full"
    authenticated = token is not None or get_token() is not None
    started = time.monotonic()
    targets = targets_for(models, revisions)
    log.info(
        "prefetch (%s) of %d repos from %s into %s; token %s",
        mode,
        len(targets),
        hub,
        cache,
        "available" if authenticated else "not set",
    )
    results: list[RepoResult] = []

    def add(r: RepoResult) -> None:
        if r.skipped:
            log.info("%s %s: skipped (%s)", r.adapter, r.repo_id or "", r.skipped)
        else:
            log.info(
                "%s %s@%s (commit %s): %s %d files, %s in %.1fs%s",
                *(r.adapter, r.repo_id, r.revision, r.commit, "would fetch" if dry_run else "fetched"),
                *(len(r.files), format_bytes(r.bytes), r.seconds),
                f"; {len(r.files_left)} left" if r.files_left else "",
            )
        results.append(r)
        if on_result is not None:
            on_result(r)

    for target in targets:
        if not target.repo_id:
            add(RepoResult.of(target, mode, skipped=f"adapter {target.adapter!r} names no Hugging Face repo"))
    todo = [t for t in targets if t.repo_id]

    stopped = None
    if mode == "smoke":
        smoke_results, stopped = _smoke(
            todo, cache_dir=cache, token=token, endpoint=hub, seconds=smoke_seconds
        )
        for result in smoke_results:
            add(result)
        if stopped:
            log.warning("smoke prefetch: %s after %.1fs; stopped", TIME_BOUND_REACHED, smoke_seconds)
    else:
        plans = [plan_repo(t, cache_dir=cache, token=token, endpoint=hub) for t in todo]
        for plan in plans:
            if dry_run:
                add(_dry_run_result(plan, smoke=smoke))
            else:
                add(_fetch_full(plan, cache_dir=cache, token=token, endpoint=hub, log=log))

    report = PrefetchReport(
        mode=mode,
        cache_dir=cache,
        endpoint=hub,
        results=tuple(results),
        seconds=time.monotonic() - started,
        authenticated=authenticated,
        stopped=stopped,
    )
    log.info("%s", report.summary())
    return report


def _dry_run_result(plan: RepoPlan, *, smoke: bool) -> RepoResult:
    files = plan.metadata_files() if smoke else plan.files
    return RepoResult.of(
        plan.target,
        "dry_run",
        commit=plan.commit,
        files=tuple(f.filename for f in files),
        bytes=sum(f.file_size or 0 for f in files),
        cached_files=sum(f.is_cached for f in files),
    )


def _fetch_full(
    plan: RepoPlan, *, cache_dir: str, token: str | None, endpoint: str, log: logging.Logger
) -> RepoResult:
    from huggingface_hub import snapshot_download

    t = plan.target
    assert t.repo_id is not None
    if not t.allow_patterns:
        log.warning("%s gives no allow_patterns: fetching every file of %s", t.adapter, t.repo_id)
    log.info("fetching %s@%s: %d files, %s", t.repo_id, t.revision, len(plan.files), format_bytes(plan.bytes))
    started = time.monotonic()
    with _hub_errors(t.repo_id, t.revision, endpoint):
        path = snapshot_download(  # the requested revision (not the sha), so that a branch gets its ref
            t.repo_id,
            revision=t.revision,
            allow_patterns=list(t.allow_patterns) or None,
            cache_dir=cache_dir,
            token=token,
            endpoint=endpoint,
        )
    commit = Path(path).name
    if commit != plan.commit:
        log.warning("%s@%s moved from %s to %s while fetching", t.repo_id, t.revision, plan.commit, commit)
    return RepoResult.of(
        t,
        "full",
        commit=commit,
        files=tuple(f.filename for f in plan.files),
        bytes=plan.bytes,
        seconds=time.monotonic() - started,
        snapshot_path=path,
    )


# --------------------------------------------------------------------------------------------------- smoke
_SMOKE_SLACK_S = 1.0
"""Request timeouts in a smoke run end this long after the bound, so that the bound (kept by the caller's
thread) ends a slow run, not a request timeout racing it."""


def _smoke(
    targets: Sequence[PrefetchTarget], *, cache_dir: str, token: str | None, endpoint: str, seconds: float
) -> tuple[list[RepoResult], str | None]:
    """Plan every repo, then fetch their metadata files one by one, in a daemon thread, until the bound.

    The caller's thread keeps the bound (a hung request cannot hold it); the worker stops before its next
    file, and a file in flight at that moment may still land (huggingface_hub writes each file under a
    temporary name first, so the cache stays consistent). What was fetched is read from the snapshot.
    """
    from huggingface_hub import hf_hub_download

    deadline = time.monotonic() + seconds
    stop = threading.Event()
    plans: dict[PrefetchTarget, RepoPlan] = {}
    timings: dict[PrefetchTarget, float] = {}
    failed: list[BaseException] = []

    def timeout() -> float:
        return _SMOKE_SLACK_S + max(0.0, deadline - time.monotonic())

    def work() -> None:
        try:
            for target in targets:
                if stop.is_set():
                    return
                plans[target] = plan_repo(
                    target, cache_dir=cache_dir, token=token, endpoint=endpoint, timeout=timeout()
                )
            for target, plan in list(plans.items()):
                repo_id, started = target.repo_id or "", time.monotonic()
                for file in plan.metadata_files():
                    if stop.is_set():
                        return
                    with _hub_errors(repo_id, plan.commit, endpoint):
                        hf_hub_download(
                            repo_id,
                            file.filename,
                            revision=plan.commit,
                            cache_dir=cache_dir,
                            token=token,
                            endpoint=endpoint,
                            etag_timeout=timeout(),
                        )
                    timings[target] = time.monotonic() - started
        except BaseException as exc:  # handed to the caller's thread, which raises it
            failed.append(exc)

    worker = threading.Thread(target=work, name="prefetch-smoke", daemon=True)
    worker.start()
    worker.join(timeout=max(0.0, deadline - time.monotonic()))
    stop.set()
    stopped = TIME_BOUND_REACHED if worker.is_alive() else None
    if failed and stopped is None:
        raise failed[0]

    results = []
    for target in targets:
        plan = plans.get(target)
        if plan is None:
            skipped = f"{TIME_BOUND_REACHED} before the repo was listed"
            results.append(RepoResult.of(target, "smoke", skipped=skipped))
            continue
        snapshot = _snapshot_dir(cache_dir, target.repo_id or "", plan.commit)
        wanted = plan.metadata_files()
        done = [f for f in wanted if Path(f.local_path).is_file()]
        results.append(
            RepoResult.of(
                target,
                "smoke",
                commit=plan.commit,
                files=tuple(f.filename for f in done),
                bytes=sum(f.file_size or 0 for f in done),
                seconds=timings.get(target, 0.0),
                files_left=tuple(f.filename for f in wanted if f not in done),
                snapshot_path=str(snapshot),
            )
        )
    return results, stopped
