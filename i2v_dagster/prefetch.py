"""Fetch model weights into the Hugging Face cache ahead of a run. Plain Python, no Dagster.

Models are named by family (``flux``, ``cogvideox``, ...; ``all`` for every family) or by adapter name;
each adapter gives the repo, revision and ``allow_patterns`` (see :mod:`i2v_dagster.models.registry`).
Three modes:

- **dry run**: list what would be fetched (file names, sizes the hub lists, total), fetch nothing;
- **smoke**: fetch only metadata files (configs, tokenizer files; never weights) within ``smoke_seconds``,
  then stop and report what was done and what was left;
- **full**: ``snapshot_download`` each repo with its ``allow_patterns`` at its pinned revision.

Every mode first lists each repo once (``HfApi.model_info``), which resolves the revision to a commit sha
and finds gated repos: a gated repo with no token anywhere fails before anything is downloaded. The token
is passed to ``huggingface_hub`` and nowhere else: no message, log line or result holds it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from i2v_dagster.errors import AdapterError, PrefetchError

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
# fmt: off
WEIGHT_SUFFIXES: tuple[str, ...] = (
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".msgpack", ".h5", ".npz", ".pkl",
)
# fmt: on
TIME_BOUND_REACHED = "time bound reached"
DEFAULT_HUB_URL = "https://huggingface.co"

Mode = Literal["dry_run", "smoke", "full"]


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

    @property
    def key(self) -> str:
        return f"{self.adapter}:{self.repo_id}"


@dataclass(frozen=True)
class PlannedFile:
    name: str
    size: int | None
    """Bytes, as the hub lists them (None when it does not)."""
    cached: bool = False
    """Already in the cache at the planned commit."""

    @property
    def is_metadata(self) -> bool:
        return is_metadata_file(self.name)


@dataclass(frozen=True)
class RepoPlan:
    target: PrefetchTarget
    commit: str
    """The commit sha the requested revision resolved to."""
    gated: bool
    files: tuple[PlannedFile, ...]
    """Files matching the adapter's ``allow_patterns``."""

    @property
    def bytes(self) -> int:
        return sum(f.size or 0 for f in self.files)

    def metadata_files(self) -> tuple[PlannedFile, ...]:
        return tuple(f for f in self.files if f.is_metadata)


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
    unknown_sizes: int = 0
    """Dry run: planned files whose size the hub did not list."""
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
    in_flight: str | None = None
    """Smoke: ``repo/file`` being fetched when the bound was reached (it may still land in the cache)."""

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
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def is_metadata_file(name: str) -> bool:
    """True for config/tokenizer files a smoke run may fetch; never for weights."""
    from fnmatch import fnmatchcase

    if name.endswith(WEIGHT_SUFFIXES):
        return False
    return any(fnmatchcase(name, p) for p in METADATA_PATTERNS)


def match_allow_patterns(names: Iterable[str], allow_patterns: Sequence[str]) -> list[str]:
    """Names ``snapshot_download`` would fetch with these ``allow_patterns`` (its own filter function)."""
    from huggingface_hub.utils import filter_repo_objects

    return list(filter_repo_objects(list(names), allow_patterns=list(allow_patterns) or None))


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
            target = PrefetchTarget(
                family=family,
                adapter=adapter,
                repo_id=repo_id,
                revision=pinned or "main",
                allow_patterns=tuple(patterns),
            )
            if target not in targets:
                targets.append(target)
    return targets


def _transport_errors() -> tuple[type[Exception], ...]:
    """Connection/timeout errors of the HTTP client huggingface_hub uses (httpx2, or httpx before it)."""
    found: list[type[Exception]] = []
    for module in ("httpx2", "httpx"):
        try:
            found.append(__import__(module).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


@contextmanager
def _hub_errors(repo_id: str, revision: str, endpoint: str) -> Iterator[None]:
    """Turn huggingface_hub's errors into a PrefetchError that says what to do (never with a token)."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except GatedRepoError as exc:
        status = exc.response.status_code if exc.response is not None else None
        raise PrefetchError(_gated_message(repo_id, endpoint, status, token_sent=_sent_token(exc))) from exc
    except RevisionNotFoundError as exc:
        raise PrefetchError(f"revision {revision!r} of {repo_id} does not exist on {endpoint}") from exc
    except RepositoryNotFoundError as exc:
        raise PrefetchError(
            f"{repo_id} was not found on {endpoint} (or it is private and the token has no access to it)"
        ) from exc
    except RemoteEntryNotFoundError as exc:
        raise PrefetchError(f"a file of {repo_id} at {revision!r} is missing on {endpoint}: {exc}") from exc
    except (OfflineModeIsEnabled, LocalEntryNotFoundError) as exc:
        raise PrefetchError(
            f"cannot fetch {repo_id}: the hub at {endpoint} is not reachable ({exc})"
        ) from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise PrefetchError(f"the hub at {endpoint} answered HTTP {status} for {repo_id}") from exc
    except _transport_errors() as exc:
        raise PrefetchError(
            f"cannot reach the hub at {endpoint} for {repo_id}: {type(exc).__name__}"
        ) from exc


def _gated_message(
    repo_id: str, endpoint: str, status: int | None = None, *, token_sent: bool = False
) -> str:
    page = f"{endpoint}/{repo_id}"
    if not token_sent:
        return (
            f"{repo_id} is a gated repo and no Hugging Face token was sent: set HF_TOKEN to a read token of "
            f"an account that has accepted the model's terms on {page}"
        )
    return (
        f"{repo_id} is a gated repo and the hub refused the token that was sent (HTTP {status}): check that "
        f"HF_TOKEN is a valid read token and that its account has accepted the model's terms on {page}"
    )


def _sent_token(exc: Exception) -> bool:
    """Whether the refused request carried an Authorization header (its value is never read)."""
    request = getattr(getattr(exc, "response", None), "request", None)
    return request is not None and "authorization" in request.headers


def _clean_token(token: str | None) -> str | None:
    return (token.strip() or None) if token else None


def _token_available(token: str | None) -> bool:
    from huggingface_hub import get_token

    return token is not None or get_token() is not None


def _check_online() -> None:
    from huggingface_hub import constants

    if constants.is_offline_mode():
        raise PrefetchError(
            "HF_HUB_OFFLINE is set: prefetching needs the hub; unset it (or set it to 0) and retry"
        )


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> str:
    """The absolute cache folder: ``cache_dir``, else huggingface_hub's HF_HUB_CACHE."""
    from huggingface_hub import constants

    return str(Path(cache_dir if cache_dir is not None else constants.HF_HUB_CACHE).expanduser().resolve())


def _resolve_endpoint(endpoint: str | None) -> str:
    from huggingface_hub import constants

    return (endpoint or constants.ENDPOINT or DEFAULT_HUB_URL).rstrip("/")


def _snapshot_dir(cache_dir: str, repo_id: str, commit: str) -> Path:
    from huggingface_hub.file_download import repo_folder_name

    return Path(cache_dir) / repo_folder_name(repo_id=repo_id, repo_type="model") / "snapshots" / commit


# ---------------------------------------------------------------------------------------------- planning
def plan_repo(
    target: PrefetchTarget, *, cache_dir: str, token: str | None, endpoint: str, timeout: float | None = None
) -> RepoPlan:
    """List one repo at its revision: commit sha, gated flag, and the files its patterns select."""
    from huggingface_hub import HfApi

    assert target.repo_id is not None
    api = HfApi(endpoint=endpoint, token=token)
    with _hub_errors(target.repo_id, target.revision, endpoint):
        info = api.model_info(target.repo_id, revision=target.revision, files_metadata=True, timeout=timeout)
    if not info.sha:
        raise PrefetchError(
            f"the hub at {endpoint} gave no commit sha for {target.repo_id}@{target.revision}"
        )
    sizes = {s.rfilename: s.size for s in info.siblings or []}
    snapshot = _snapshot_dir(cache_dir, target.repo_id, info.sha)
    files = tuple(
        PlannedFile(name=name, size=sizes[name], cached=(snapshot / name).is_file())
        for name in match_allow_patterns(sorted(sizes), target.allow_patterns)
    )
    return RepoPlan(target=target, commit=info.sha, gated=bool(info.gated), files=files)


def _check_gated(plans: Sequence[RepoPlan], token: str | None, endpoint: str) -> None:
    gated = [p.target.repo_id or "" for p in plans if p.gated]
    if gated and not _token_available(token):
        raise PrefetchError("; ".join(_gated_message(repo, endpoint) for repo in gated))


def plan_prefetch(
    models: Iterable[str],
    *,
    cache_dir: str | os.PathLike | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    revisions: Mapping[str, str] | None = None,
) -> list[RepoPlan]:
    """List every repo of ``models`` at its revision; raise PrefetchError for a gated repo without a token.

    Adapters that name no Hugging Face repo are left out (``prefetch`` reports them as skipped).
    """
    _check_online()
    token, cache, hub = _clean_token(token), resolve_cache_dir(cache_dir), _resolve_endpoint(endpoint)
    targets = [t for t in targets_for(models, revisions) if t.repo_id]
    plans = [plan_repo(t, cache_dir=cache, token=token, endpoint=hub) for t in targets]
    _check_gated(plans, token, hub)
    return plans


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
    already reported the repos before it). Raises PrefetchError when the hub refuses or cannot be reached.
    """
    if smoke and not smoke_seconds > 0:
        raise ValueError(f"`smoke_seconds` has to be greater than 0 but is {smoke_seconds}")
    log = logger or log_
    mode: Mode = "dry_run" if dry_run else "smoke" if smoke else "full"
    token, cache, hub = _clean_token(token), resolve_cache_dir(cache_dir), _resolve_endpoint(endpoint)
    _check_online()
    started = time.monotonic()
    targets = targets_for(models, revisions)
    log.info(
        "prefetch (%s) of %d adapters from %s into %s; token %s",
        mode,
        len(targets),
        hub,
        cache,
        "available" if _token_available(token) else "not set",
    )
    emit = on_result or (lambda result: None)

    results: list[RepoResult] = []
    for target in targets:
        if not target.repo_id:
            skipped = RepoResult.of(
                target, mode, skipped=f"adapter {target.adapter!r} names no Hugging Face repo"
            )
            log.info("%s: skipped (%s)", target.adapter, skipped.skipped)
            results.append(skipped)
            emit(skipped)
    todo = [t for t in targets if t.repo_id]

    stopped = in_flight = None
    if mode == "smoke":
        smoke_results, stopped, in_flight = _smoke(
            todo, cache_dir=cache, token=token, endpoint=hub, seconds=smoke_seconds, log=log
        )
        for result in smoke_results:
            results.append(result)
            emit(result)
    else:
        plans = [plan_repo(t, cache_dir=cache, token=token, endpoint=hub) for t in todo]
        _check_gated(plans, token, hub)
        for plan in plans:
            if dry_run:
                result = _dry_run_result(plan, smoke=smoke)
            else:
                result = _fetch_full(plan, cache_dir=cache, token=token, endpoint=hub, log=log)
            _log_result(log, result)
            results.append(result)
            emit(result)

    report = PrefetchReport(
        mode=mode,
        cache_dir=cache,
        endpoint=hub,
        results=tuple(results),
        seconds=time.monotonic() - started,
        authenticated=_token_available(token),
        stopped=stopped,
        in_flight=in_flight,
    )
    log.info("%s", report.summary())
    return report


def _log_result(log: logging.Logger, r: RepoResult) -> None:
    verb = "would fetch" if r.mode == "dry_run" else "fetched"
    log.info(
        "%s %s@%s (commit %s): %s %d files, %s in %.1fs%s",
        r.adapter,
        r.repo_id,
        r.revision,
        r.commit,
        verb,
        len(r.files),
        format_bytes(r.bytes),
        r.seconds,
        f"; {len(r.files_left)} left" if r.files_left else "",
    )


def _dry_run_result(plan: RepoPlan, *, smoke: bool) -> RepoResult:
    files = plan.metadata_files() if smoke else plan.files
    return RepoResult.of(
        plan.target,
        "dry_run",
        commit=plan.commit,
        files=tuple(f.name for f in files),
        bytes=sum(f.size or 0 for f in files),
        cached_files=sum(f.cached for f in files),
        unknown_sizes=sum(f.size is None for f in files),
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
        path = snapshot_download(
            t.repo_id,
            revision=t.revision,
            allow_patterns=list(t.allow_patterns) or None,
            cache_dir=cache_dir,
            token=token,
            endpoint=endpoint,
        )
    snapshot = Path(path)
    commit = snapshot.name
    if commit != plan.commit:
        log.warning("%s@%s moved from %s to %s while fetching", t.repo_id, t.revision, plan.commit, commit)
    present = sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())
    files = match_allow_patterns(present, t.allow_patterns)
    return RepoResult.of(
        t,
        "full",
        commit=commit,
        files=tuple(files),
        bytes=sum((snapshot / f).stat().st_size for f in files),
        seconds=time.monotonic() - started,
        snapshot_path=str(snapshot),
    )


# --------------------------------------------------------------------------------------------------- smoke
_SMOKE_SLACK_S = 1.0
"""The worker's request timeouts run this long past the bound, so that the bound (kept by the caller's
thread) ends a slow run, not a request timeout racing it."""


@dataclass
class _SmokeState:
    """Shared between the smoke worker thread and the caller; guarded by ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    plans: list[RepoPlan] = field(default_factory=list)
    done: dict[str, list[str]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    in_flight: str | None = None
    error: BaseException | None = None


def _smoke(
    targets: Sequence[PrefetchTarget],
    *,
    cache_dir: str,
    token: str | None,
    endpoint: str,
    seconds: float,
    log: logging.Logger,
) -> tuple[list[RepoResult], str | None, str | None]:
    """Fetch metadata files in a worker thread; at the bound, stop and report done and left.

    The bound is kept by the caller's thread (a hung request cannot hold it); the worker stops before its
    next file, and a file in flight at that moment finishes in the background (the hub's cache writes
    each file to a temporary name first, so the cache stays consistent).
    """
    state = _SmokeState()
    deadline = time.monotonic() + seconds
    worker = threading.Thread(
        target=_smoke_worker,
        args=(state, targets, deadline),
        kwargs={"cache_dir": cache_dir, "token": token, "endpoint": endpoint},
        name="prefetch-smoke",
        daemon=True,
    )
    worker.start()
    worker.join(timeout=max(0.0, deadline - time.monotonic()))
    stopped = None
    if worker.is_alive():
        state.stop.set()
        stopped = TIME_BOUND_REACHED
        log.warning("smoke prefetch: %s after %.1fs; stopping", TIME_BOUND_REACHED, seconds)
    with state.lock:
        if state.error is not None and stopped is None:
            raise state.error
        plans = {p.target: p for p in state.plans}
        done = {k: list(v) for k, v in state.done.items()}
        in_flight = state.in_flight if stopped else None
        timings = dict(state.seconds)

    results = []
    for target in targets:
        plan = plans.get(target)
        if plan is None:
            results.append(
                RepoResult.of(target, "smoke", skipped=f"{TIME_BOUND_REACHED} before the repo was listed")
            )
            continue
        wanted = plan.metadata_files()
        fetched = done.get(target.key, [])
        sizes = {f.name: f.size or 0 for f in wanted}
        result = RepoResult.of(
            target,
            "smoke",
            commit=plan.commit,
            files=tuple(fetched),
            bytes=sum(sizes[f] for f in fetched),
            seconds=timings.get(target.key, 0.0),
            files_left=tuple(f.name for f in wanted if f.name not in fetched),
            snapshot_path=str(_snapshot_dir(cache_dir, plan.target.repo_id or "", plan.commit)),
        )
        _log_result(log, result)
        results.append(result)
    return results, stopped, in_flight


def _smoke_worker(
    state: _SmokeState,
    targets: Sequence[PrefetchTarget],
    deadline: float,
    *,
    cache_dir: str,
    token: str | None,
    endpoint: str,
) -> None:
    from huggingface_hub import hf_hub_download

    try:
        for target in targets:
            if state.stop.is_set():
                return
            timeout = _SMOKE_SLACK_S + max(0.0, deadline - time.monotonic())
            plan = plan_repo(target, cache_dir=cache_dir, token=token, endpoint=endpoint, timeout=timeout)
            with state.lock:
                state.plans.append(plan)
        with state.lock:
            plans = list(state.plans)
        _check_gated(plans, token, endpoint)
        for plan in plans:
            key = plan.target.key
            repo_id = plan.target.repo_id or ""
            started = time.monotonic()
            for planned in plan.metadata_files():
                if state.stop.is_set():
                    return
                with state.lock:
                    state.in_flight = f"{repo_id}/{planned.name}"
                with _hub_errors(repo_id, plan.commit, endpoint):
                    hf_hub_download(
                        repo_id,
                        planned.name,
                        revision=plan.commit,
                        cache_dir=cache_dir,
                        token=token,
                        endpoint=endpoint,
                        etag_timeout=_SMOKE_SLACK_S + max(0.0, deadline - time.monotonic()),
                    )
                with state.lock:
                    state.done.setdefault(key, []).append(planned.name)
                    state.seconds[key] = time.monotonic() - started
                    state.in_flight = None
                log_.debug("smoke: fetched %s/%s", repo_id, planned.name)
    except BaseException as exc:  # handed to the caller's thread, which raises it
        with state.lock:
            state.error = exc
