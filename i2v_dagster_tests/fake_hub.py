"""A tiny local Hugging Face Hub for offline tests (stdlib HTTP server on 127.0.0.1, a free port).

It serves the routes ``huggingface_hub`` uses to list, dry-run and download a model repo (``HfApi.repo_info``,
then ``snapshot_download``, with or without ``dry_run``):

- ``GET /api/models/{repo}`` and ``GET /api/models/{repo}/revision/{rev}``: model info (``sha``, ``gated``,
  ``siblings``);
- ``GET /api/models/{repo}/tree/{rev}[/{path}]``: the tree listing (sizes, blob ids, LFS data);
- ``HEAD``/``GET /{repo}/resolve/{rev}/{file}``: the file, with ``X-Repo-Commit``, ``ETag`` (git blob sha1,
  or sha256 for LFS files), ``Content-Length`` and ``X-Linked-Size``. A dry run sends only the ``HEAD``.

Errors carry the hub's ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``,
``GatedRepo``). Like the real hub, a gated repo's info and tree are public while its files answer 401
without an ``Authorization: Bearer`` header and 403 with a token the hub does not accept. Every request is
recorded (method, path, query, the ``Authorization`` header); ``delay_s`` makes every answer slow.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit

from i2v_dagster_tests.loopback import LoopbackServer

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".msgpack", ".h5")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeRepo:
    """A model repo: commits (sha -> {file name: bytes}) and refs (branch or tag -> sha)."""

    repo_id: str
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    gated: bool = False

    @classmethod
    def build(cls, repo_id: str, files: dict[str, bytes], *, gated: bool = False) -> FakeRepo:
        repo = cls(repo_id, gated=gated)
        repo.add_commit(files)
        return repo

    def add_commit(self, files: dict[str, bytes], *, ref: str = "main") -> str:
        """Add a commit holding ``files``, point ``ref`` at it, and return its sha."""
        digest = hashlib.sha1(f"{self.repo_id}\n{len(self.commits)}".encode())
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
        sha = digest.hexdigest()
        self.commits[sha] = dict(files)
        self.refs[ref] = sha
        return sha

    @property
    def head(self) -> str:
        return self.refs["main"]

    def resolve(self, revision: str) -> str | None:
        if revision in self.commits:
            return revision
        return self.refs.get(revision)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    """URL path, percent-decoded, without the query."""
    query: dict[str, list[str]]
    authorization: str | None
    """The ``Authorization`` header as received (None when absent)."""

    @property
    def is_resolve(self) -> bool:
        return "/resolve/" in self.path and not self.path.startswith("/api/")

    @property
    def filename(self) -> str:
        """The file of a resolve request (``unet/config.json``)."""
        return self.path.split("/resolve/", 1)[1].split("/", 1)[1]


def _file_entry(name: str, data: bytes) -> dict:
    entry: dict = {"type": "file", "path": name, "size": len(data), "oid": git_blob_sha1(data)}
    if name.endswith(LFS_SUFFIXES):
        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return entry


class FakeHub(LoopbackServer):
    """Run with ``with FakeHub([...]) as hub:``; point ``endpoint=hub.url`` (or ``HF_ENDPOINT``) at it."""

    thread_name = "fake-hub"

    def __init__(self, repos: list[FakeRepo], *, token: str | None = None, delay_s: float = 0.0) -> None:
        self.repos = {repo.repo_id: repo for repo in repos}
        self.token = token
        """The only token the hub accepts for gated repos."""
        self.delay_s = delay_s
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()

    # what tests look at ---------------------------------------------------------------------------------
    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def resolve_requests(self, repo_id: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            found = [r for r in self.requests if r.is_resolve]
        return [r for r in found if repo_id is None or r.path.startswith(f"/{repo_id}/resolve/")]

    def downloads(self, repo_id: str | None = None) -> list[RecordedRequest]:
        """Resolve requests that fetched a file's content (``GET``; a dry run's ``HEAD`` fetches none)."""
        return [r for r in self.resolve_requests(repo_id) if r.method == "GET"]


class _HubHandler(BaseHTTPRequestHandler):
    @property
    def fake(self) -> FakeHub:
        return self.server.fake

    server_version = "FakeHub/1.0"

    def log_message(self, format, *args) -> None:  # keep test output (and captured logs) quiet
        pass

    # routing --------------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def _dispatch(self, *, head: bool) -> None:
        split = urlsplit(self.path)
        raw_parts = split.path.strip("/").split("/")
        query = parse_qs(split.query)
        self.fake.record(
            RecordedRequest(
                method=self.command,
                path=unquote(split.path),
                query=query,
                authorization=self.headers.get("Authorization"),
            )
        )
        if self.fake.delay_s:
            time.sleep(self.fake.delay_s)
        parts = [unquote(p) for p in raw_parts]
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            self._api(parts[2:], query, head=head)
        elif len(parts) >= 5 and parts[2] == "resolve":
            self._resolve(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), head=head)
        else:
            self._error(404, "NotFound", f"no route for {split.path}")

    def _repo(self, repo_id: str) -> FakeRepo | None:
        repo = self.fake.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
        return repo

    def _commit(self, repo: FakeRepo, revision: str) -> str | None:
        sha = repo.resolve(revision)
        if sha is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return sha

    # /api/models/... --------------------------------------------------------------------------------------
    def _api(self, parts: list[str], query: dict[str, list[str]], *, head: bool) -> None:
        repo = self._repo(f"{parts[0]}/{parts[1]}")
        if repo is None:
            return
        rest = parts[2:]
        if not rest or rest[0] == "revision":
            sha = self._commit(repo, rest[1] if len(rest) > 1 else "main")
            if sha is not None:
                self._json(self._model_info(repo, sha), head=head)
        elif rest[0] == "tree" and len(rest) >= 2:
            sha = self._commit(repo, rest[1])
            if sha is not None:
                self._json(self._tree(repo, sha, "/".join(rest[2:]), _flag(query, "recursive")), head=head)
        else:
            self._error(404, "NotFound", "unknown api route")

    def _model_info(self, repo: FakeRepo, sha: str) -> dict:
        siblings = [{"rfilename": name} for name in sorted(repo.commits[sha])]
        return {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": sha,
            "lastModified": "2026-01-01T00:00:00.000Z",
            "private": False,
            "gated": "manual" if repo.gated else False,
            "disabled": False,
            "tags": [],
            "siblings": siblings,
        }

    def _tree(self, repo: FakeRepo, sha: str, folder: str, recursive: bool) -> list[dict]:
        prefix = f"{folder}/" if folder else ""
        files = {n: d for n, d in repo.commits[sha].items() if n.startswith(prefix)}
        entries: dict[str, dict] = {}
        for name, data in sorted(files.items()):
            rel = name[len(prefix) :].split("/")
            for depth in range(1, len(rel)):  # parent folders of this file
                if depth > 1 and not recursive:
                    break
                folder_path = prefix + "/".join(rel[:depth])
                oid = hashlib.sha1(folder_path.encode()).hexdigest()
                entries.setdefault(
                    folder_path, {"type": "directory", "path": folder_path, "oid": oid, "size": 0}
                )
            if recursive or len(rel) == 1:
                entries[name] = _file_entry(name, data)
        return list(entries.values())

    # /{repo}/resolve/{rev}/{file} -----------------------------------------------------------------------
    def _resolve(self, repo_id: str, revision: str, filename: str, *, head: bool) -> None:
        repo = self._repo(repo_id)
        if repo is None:
            return
        if repo.gated:
            auth = self.headers.get("Authorization")
            message = f"Access to model {repo_id} is restricted."
            if auth is None:
                self._error(401, "GatedRepo", message + " You must be authenticated to access it.")
                return
            if self.fake.token is None or auth != f"Bearer {self.fake.token}":
                self._error(403, "GatedRepo", message + " You are not in the authorized list.")
                return
        sha = self._commit(repo, revision)
        if sha is None:
            return
        data = repo.commits[sha].get(filename)
        if data is None:
            self._error(404, "EntryNotFound", f"{filename} does not exist at {sha}", commit=sha)
            return
        entry = _file_entry(filename, data)
        etag = entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"{etag}"')
        self.send_header("X-Repo-Commit", sha)
        self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if not head:
            self.wfile.write(data)

    # answers --------------------------------------------------------------------------------------------
    def _json(self, payload: object, *, head: bool) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, *, commit: str | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit is not None:
            self.send_header("X-Repo-Commit", commit)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return query.get(name, ["false"])[-1].lower() in ("1", "true")


FakeHub.handler = _HubHandler
