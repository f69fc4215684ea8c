"""A small emulation of the GitLab REST API v4, enough for python-gitlab's repository calls.

It speaks the real wire format on loopback: URL-encoded project paths and
refs, the ``ref`` parameter, ``PRIVATE-TOKEN`` authentication with GitLab's
401/404 bodies, and offset pagination with ``X-Total``/``X-Next-Page``/``Link``
headers. Repository content is an in-memory history of snapshots; blob ids
are real git blob hashes. Every request is recorded so tests can count them.

Content may be anything git can hold: bytes that are not UTF-8, big blobs
(served in chunks; :attr:`GitLabEmulator.sent` records how many bytes of each
download reached the client before it hung up), path names with bytes that
are not UTF-8 (given as ``str`` with surrogate escapes, as ``os.listdir``
gives them; JSON carries them as ``\\udcXX``), and symbolic links
(:class:`Symlink`: a tree entry of mode ``120000`` whose blob is the target).
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlencode, urlsplit


def blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass(frozen=True)
class Symlink:
    """A symbolic link in a commit: git stores ``target`` as the blob of a mode-120000 entry."""

    target: str

    def blob(self) -> bytes:
        return self.target.encode("utf-8", "surrogateescape")


def _path_bytes(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


class Repository:
    def __init__(self):
        self.commits: dict[str, dict] = {}
        self.branches: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self._blobs: dict[str, bytes] = {}  # every blob ever committed, by id
        self._counter = 0

    def commit(self, files: dict[str, str | bytes | Symlink], branch: str = "main", message: str = "update") -> str:
        """Record a full snapshot of the repository as a new commit on ``branch``.

        A value is the file's text (stored as UTF-8), its raw bytes, or a :class:`Symlink`.
        """
        self._counter += 1
        snapshot, links = {}, set()
        for path, content in files.items():
            if isinstance(content, Symlink):
                links.add(path)
                content = content.blob()
            snapshot[path] = content if isinstance(content, bytes) else content.encode()
        digest = hashlib.sha1(f"{self._counter}:{message}".encode())
        for path in sorted(snapshot):
            blob = blob_id(snapshot[path])
            self._blobs[blob] = snapshot[path]
            digest.update(_path_bytes(path) + blob.encode() + (b"l" if path in links else b""))
        sha = digest.hexdigest()
        self.commits[sha] = {"files": snapshot, "symlinks": links, "message": message,
                             "parent": self.branches.get(branch), "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}
        self.branches[branch] = sha
        return sha

    def tag(self, name: str, sha: str) -> None:
        self.tags[name] = sha

    def resolve(self, ref: str) -> str | None:
        if ref in self.branches:
            return self.branches[ref]
        if ref in self.tags:
            return self.tags[ref]
        return ref if ref in self.commits else None

    def tree(self, sha: str, path: str, recursive: bool) -> list[dict]:
        files, links = self.commits[sha]["files"], self.commits[sha]["symlinks"]
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        entries: dict[str, dict] = {}
        for file_path, content in files.items():
            if not file_path.startswith(prefix):
                continue
            rest = file_path[len(prefix):].split("/")
            depth = len(rest) if recursive else 1
            for level in range(1, min(depth, len(rest)) + 1):
                entry_path = prefix + "/".join(rest[:level])
                is_blob = level == len(rest)
                if entry_path not in entries:
                    tree_id = hashlib.sha1(_path_bytes(entry_path) + sha.encode()).hexdigest()
                    entries[entry_path] = {
                        "id": blob_id(content) if is_blob else tree_id,
                        "name": rest[level - 1], "type": "blob" if is_blob else "tree", "path": entry_path,
                        "mode": ("120000" if file_path in links else "100644") if is_blob else "040000",
                    }
        return [entries[key] for key in sorted(entries)]

    def blob(self, blob: str) -> bytes | None:
        return self._blobs.get(blob)


class GitLabEmulator:
    def __init__(self, project_path: str = "geocat/config-repo", project_id: int = 42, token: str = "glpat-test-token"):
        self.repo = Repository()
        self.project_path, self.project_id, self.token = project_path, project_id, token
        self.requests: list[tuple[str, str]] = []
        self.sent: dict[str, int] = {}  # request path -> bytes of the last answer's body that reached the client
        self.delay = 0.0  # seconds added to every answer ("GitLab is slow")
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> "GitLabEmulator":
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                emulator._handle(self)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def count(self, fragment: str = "") -> int:
        with self._lock:
            return sum(1 for _, path in self.requests if fragment in path)

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- HTTP -----------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        if self.delay:
            time.sleep(self.delay)
        split = urlsplit(handler.path)
        with self._lock:
            self.requests.append(("GET", split.path))
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        if handler.headers.get("PRIVATE-TOKEN") != self.token:
            return self._json(handler, 401, {"message": "401 Unauthorized"})
        segments = [unquote(s) for s in split.path.split("/")]  # keeps %2F inside a segment as one segment
        if segments[:3] != ["", "api", "v4"] or len(segments) < 5 or segments[3] != "projects":
            return self._json(handler, 404, {"error": "404 Not Found"})
        if segments[4] not in (self.project_path, str(self.project_id)):
            return self._json(handler, 404, {"message": "404 Project Not Found"})
        route = segments[5:]
        if not route:
            return self._json(handler, 200, {"id": self.project_id, "path_with_namespace": self.project_path,
                                             "default_branch": "main"})
        if route[:2] == ["repository", "commits"] and len(route) == 3:
            sha = self.repo.resolve(route[2])
            if sha is None:
                return self._json(handler, 404, {"message": "404 Commit Not Found"})
            commit = self.repo.commits[sha]
            return self._json(handler, 200, {"id": sha, "short_id": sha[:8], "title": commit["message"],
                                             "message": commit["message"], "created_at": commit["created_at"],
                                             "parent_ids": [commit["parent"]] if commit["parent"] else []})
        if route == ["repository", "tree"]:
            sha = self.repo.resolve(query.get("ref", "main"))
            if sha is None:
                return self._json(handler, 404, {"message": "404 Tree Not Found"})
            entries = self.repo.tree(sha, query.get("path", ""), query.get("recursive") in ("true", "True", "1"))
            if query.get("path") and not entries:
                return self._json(handler, 404, {"message": "404 Tree Not Found"})
            return self._paginated(handler, split.path, query, entries)
        if route[:2] == ["repository", "blobs"] and len(route) == 4 and route[3] == "raw":
            content = self.repo.blob(route[2])
            if content is None:
                return self._json(handler, 404, {"message": "404 Blob Not Found"})
            return self._send(handler, 200, content, "text/plain; charset=utf-8", record=split.path)
        if route[:2] == ["repository", "branches"]:
            items = [{"name": name, "commit": {"id": sha}} for name, sha in sorted(self.repo.branches.items())]
            return self._named(handler, split.path, query, items, route, "Branch")
        if route[:2] == ["repository", "tags"]:
            items = [{"name": name, "commit": {"id": sha}} for name, sha in sorted(self.repo.tags.items())]
            return self._named(handler, split.path, query, items, route, "Tag")
        return self._json(handler, 404, {"error": "404 Not Found"})

    def _named(self, handler, path, query, items, route, kind):
        if len(route) == 3:
            found = next((item for item in items if item["name"] == route[2]), None)
            if found is None:
                return self._json(handler, 404, {"message": f"404 {kind} Not Found"})
            return self._json(handler, 200, found)
        return self._paginated(handler, path, query, items)

    def _paginated(self, handler, path, query, items):
        per_page = max(1, min(int(query.get("per_page", 20)), 100))
        page = max(1, int(query.get("page", 1)))
        total_pages = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {"X-Total": str(len(items)), "X-Total-Pages": str(total_pages), "X-Per-Page": str(per_page),
                   "X-Page": str(page), "X-Next-Page": str(page + 1) if page < total_pages else "",
                   "X-Prev-Page": str(page - 1) if page > 1 else ""}
        links = []
        for rel, number in (("next", page + 1 if page < total_pages else None), ("first", 1), ("last", total_pages)):
            if number is not None:
                links.append(f'<{self.url}{path}?{urlencode({**query, "page": number, "per_page": per_page})}>; rel="{rel}"')
        headers["Link"] = ", ".join(links)
        return self._json(handler, 200, chunk, headers)

    def _json(self, handler, status, body, headers=None):
        return self._send(handler, status, json.dumps(body).encode(), "application/json", headers)

    CHUNK = 64 * 1024

    def _send(self, handler, status, data: bytes, content_type: str, headers=None, record: str | None = None):
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        sent = 0
        try:
            for start in range(0, len(data), self.CHUNK):  # in chunks, as a server streams a big blob
                handler.wfile.write(data[start: start + self.CHUNK])
                sent = min(len(data), start + self.CHUNK)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True  # the client stopped reading: a streamed download it cut short
        finally:
            if record is not None:
                with self._lock:
                    self.sent[record] = sent
