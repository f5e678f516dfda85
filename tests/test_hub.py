"""Artifacts as Hugging Face Hub repositories, tested without network.

Downloads resolve through huggingface_hub itself: either from a Hugging Face cache laid out here
exactly as huggingface_hub writes it (``models--org--name/{blobs,refs,snapshots}``, snapshot files
as relative symlinks to blobs named by their git or LFS hash) with ``HF_HUB_OFFLINE=1``, or from a
stand-in Hub server on 127.0.0.1 that speaks the endpoints huggingface_hub 0.36 calls (repo
create, branch, validate-yaml, preupload, LFS batch + PUT, NDJSON commit, repo info, resolve).
Nothing of mxbai_integrations is mocked; expected scores come from the original artifact and
from sentence-transformers' CrossEncoder on the same checkpoint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")
yaml = pytest.importorskip("yaml")

from huggingface_hub import constants as hf_constants  # noqa: E402

try:
    from huggingface_hub.utils import reset_sessions  # 0.x: one requests session per thread
except ImportError:  # 1.x and later: one shared httpx client, remade on next use after close_session
    from huggingface_hub import close_session as reset_sessions

from mxbai_integrations import MxbaiReranker  # noqa: E402
from mxbai_integrations.artifact import MANIFEST_NAME, read_manifest  # noqa: E402
from mxbai_integrations.errors import (  # noqa: E402
    ArgumentError,
    ArtifactError,
    MissingExtraError,
    ModelNotFoundError,
)
from mxbai_integrations.hub import (  # noqa: E402
    export_command,
    fetch_artifact,
    hf_cache_repo_root,
    model_card,
    push_artifact,
)
from mxbai_integrations.scorer import Scorer  # noqa: E402

QUERY = "Which city is the capital of France?"
DOCS = ["Paris is the capital and largest city of France.", "Berlin is the capital of Germany.",
        "The Eiffel Tower was completed in 1889. " * 5, "Bananas are yellow."]
REPO = "test-org/tiny-v1-onnx"
TOKEN = "hf_test_write_token"
LFS_MIN_BYTES = 10 * 1000 * 1000  # the Hub stores files of 10 MB and more in LFS
PUBLIC = "https://huggingface.co"  # the Hub answers with its public URLs, whatever endpoint was called


# -- the Hugging Face cache, as huggingface_hub lays it out -----------------------------------------------
def is_lfs(name: str, size: int) -> bool:
    """What the Hub's default .gitattributes (``*.onnx``, ``*.data`` ...) and size rule store in LFS."""
    return name.endswith((".onnx", ".data", ".bin")) or size >= LFS_MIN_BYTES


def etag_of(name: str, data: bytes) -> str:
    """A blob's name in the cache: the LFS sha256, or the git blob sha1 for a regular file."""
    if is_lfs(name, len(data)):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def artifact_files(directory: Path) -> dict[str, bytes]:
    manifest = read_manifest(directory)
    return {name: (directory / name).read_bytes() for name in (MANIFEST_NAME, *manifest.files)}


def add_snapshot(cache: Path, repo_id: str, files: dict[str, bytes], refs: tuple[str, ...] = ("main",)) -> str:
    """One commit of ``repo_id`` in ``cache``: blobs, snapshot links, and the refs that point to it."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = hashlib.sha1(repr(sorted((n, hashlib.sha256(d).hexdigest()) for n, d in files.items())).encode()
                          ).hexdigest()
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for name, data in files.items():
        blob = repo / "blobs" / etag_of(name, data)
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / name)  # ../../blobs/<etag>, as _create_symlink
    for ref in refs:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)  # no newline, as huggingface_hub writes it
    return commit


@pytest.fixture(autouse=True)
def fresh_hf_sessions() -> Iterator[None]:
    """huggingface_hub caches one HTTP session per thread, made offline or online when first used.

    Autouse and without monkeypatch, so it is torn down after monkeypatch has put the constants
    back: no session made here (online, or offline) outlives the test.
    """
    reset_sessions()
    yield
    reset_sessions()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE=1 for this test, both in the environment and in huggingface_hub's constants."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    reset_sessions()


def scores_of(path: Path, manifest: Any, allowed_root: Path | None = None) -> np.ndarray:
    scorer = Scorer(path, manifest, allowed_root=allowed_root)
    return np.asarray(MxbaiReranker.from_scorer(scorer).score(QUERY, DOCS))


# -- fetch from the cache, offline ----------------------------------------------------------------------------
def test_fetch_offline_returns_the_snapshot_and_scores_like_the_original(tmp_path, offline, v1_artifact,
                                                                         v1_reference):
    cache = tmp_path / "hf"
    commit = add_snapshot(cache, REPO, artifact_files(v1_artifact))
    fetched = fetch_artifact(REPO, cache_dir=cache)
    repo_root = cache / "models--test-org--tiny-v1-onnx"
    assert fetched is not None
    assert fetched.path == repo_root / "snapshots" / commit
    assert fetched.commit_hash == commit and fetched.revision == "main" and fetched.repo_id == REPO
    assert fetched.allowed_root == repo_root and hf_cache_repo_root(fetched.path) == repo_root
    assert fetched.downloaded == () and fetched.checksums_verified
    assert (fetched.path / "model.onnx").is_symlink()  # loaded through the blob links, not copies
    assert fetched.manifest.files == read_manifest(v1_artifact).files

    ours = scores_of(fetched.path, fetched.manifest, fetched.allowed_root)
    original = np.asarray(MxbaiReranker(str(v1_artifact), providers=["cpu"]).score(QUERY, DOCS))
    np.testing.assert_array_equal(ours, original)
    reference = v1_reference.predict([(QUERY, d) for d in DOCS], batch_size=1, show_progress_bar=False)
    np.testing.assert_allclose(ours, np.asarray(reference), atol=1e-4, rtol=0)


def test_reranker_takes_the_repo_id_and_the_snapshot_path(tmp_path, offline, monkeypatch, v1_artifact):
    """A repo id resolves through huggingface_hub's default cache; the snapshot path it gives loads as well."""
    cache = tmp_path / "hf"
    commit = add_snapshot(cache, REPO, artifact_files(v1_artifact))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))  # cache_dir=None is huggingface_hub's default
    monkeypatch.setenv("MXBAI_INTEGRATIONS_CACHE", str(tmp_path / "mxbai"))  # no first-use export lands in ~
    original = MxbaiReranker(str(v1_artifact), providers=["cpu"]).score(QUERY, DOCS)
    by_id = MxbaiReranker(REPO, providers=["cpu"])
    assert by_id.path == cache / "models--test-org--tiny-v1-onnx" / "snapshots" / commit
    assert by_id.score(QUERY, DOCS) == original
    assert MxbaiReranker(str(by_id.path), providers=["cpu"]).score(QUERY, DOCS) == original


def test_a_tampered_blob_is_refused_naming_the_file(tmp_path, offline, v1_artifact):
    cache = tmp_path / "hf"
    add_snapshot(cache, REPO, artifact_files(v1_artifact))
    blob = (cache / "models--test-org--tiny-v1-onnx" / "snapshots").glob("*/model.onnx").__next__().resolve()
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight: same size, so only the sha256 can tell
    blob.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"'model\.onnx' is corrupt: sha256") as info:
        fetch_artifact(REPO, cache_dir=cache)
    assert "test-org/tiny-v1-onnx" in str(info.value) and "Nothing was deleted" in str(info.value)
    assert blob.read_bytes() == bytes(data)  # refused, not deleted


def test_a_checkpoint_repo_is_none_and_an_unknown_repo_names_both_possibilities(tmp_path, monkeypatch):
    cache = tmp_path / "hf"
    add_snapshot(cache, "test-org/tiny-checkpoint", {"config.json": b'{"model_type": "deberta-v2"}'})
    # Offline only through the environment, set after huggingface_hub was imported: still honoured.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    reset_sessions()
    assert fetch_artifact("test-org/tiny-checkpoint", cache_dir=cache) is None
    with pytest.raises(ModelNotFoundError) as info:
        fetch_artifact("test-org/no-such-repo", cache_dir=cache)
    message = str(info.value)
    assert "neither an mxbai ONNX artifact repo" in message and "nor a checkpoint we could download" in message
    assert "HF_HUB_OFFLINE" in message and str(cache) in message


def test_revision_pins_the_snapshot(tmp_path, offline, v1_artifact, v2_artifact):
    cache = tmp_path / "hf"
    old = add_snapshot(cache, REPO, artifact_files(v1_artifact), refs=("v1.0",))
    new = add_snapshot(cache, REPO, artifact_files(v2_artifact), refs=("main",))
    assert old != new
    latest = fetch_artifact(REPO, cache_dir=cache)
    tagged = fetch_artifact(REPO, cache_dir=cache, revision="v1.0")
    by_hash = fetch_artifact(REPO, cache_dir=cache, revision=old)
    assert latest is not None and tagged is not None and by_hash is not None
    assert (latest.commit_hash, latest.manifest.family) == (new, "v2")
    assert (tagged.commit_hash, tagged.manifest.family, tagged.revision) == (old, "v1", "v1.0")
    assert by_hash.path == tagged.path
    with pytest.raises(ModelNotFoundError, match="neither an mxbai ONNX artifact repo"):
        fetch_artifact(REPO, cache_dir=cache, revision="v9.9")


# -- a stand-in Hub on 127.0.0.1 ------------------------------------------------------------------------------
@dataclass
class Repo:
    private: bool
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeHub:
    """What the stand-in server holds and was sent: repos, LFS objects, each request, each commit's payload."""

    base: str = ""
    repos: dict[str, Repo] = field(default_factory=dict)
    lfs: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    commits: list[dict[str, Any]] = field(default_factory=list)
    cards: list[str] = field(default_factory=list)
    served: dict[str, bytes] = field(default_factory=dict)  # path -> bytes to serve instead (tampering)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def head(self, repo_id: str, ref: str = "main") -> dict[str, bytes]:
        repo = self.repos[repo_id]
        return repo.commits[repo.refs[ref]]

    def commit(self, repo_id: str, ref: str, files: dict[str, bytes], deleted: tuple[str, ...] = ()) -> str:
        repo = self.repos[repo_id]
        parent = repo.commits.get(repo.refs.get(ref, ""), {})
        tree = {**{k: v for k, v in parent.items() if k not in deleted}, **files}
        oid = hashlib.sha1(f"{repo_id}:{ref}:{len(repo.commits)}".encode()).hexdigest()
        repo.commits[oid] = tree
        repo.refs[ref] = oid
        return oid


API_REPO = r"(?P<repo>[^/]+/[^/]+)"


class HubHandler(BaseHTTPRequestHandler):
    hub: FakeHub

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    # -- plumbing --
    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers)

    def _error(self, status: int, code: str | None, message: str = "", extra: dict[str, str] | None = None) -> None:
        headers = {**({"X-Error-Code": code} if code else {}), **({"X-Error-Message": message} if message else {}),
                   **(extra or {})}
        self._json(status, {"error": message or code}, headers)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _authorized(self) -> bool:
        if self.headers.get("authorization") == f"Bearer {TOKEN}":
            return True
        self._error(401, None, "Invalid credentials in Authorization header")
        return False

    def _route(self) -> None:
        url = urlsplit(self.path)
        with self.hub.lock:
            self.hub.requests.append((self.command, url.path))
        for method, pattern, handler in ROUTES:
            match = re.fullmatch(pattern, url.path)
            if method == self.command and match:
                return handler(self, **{k: unquote(v) for k, v in match.groupdict().items()},
                               query=parse_qs(url.query))
        self._error(404, None, f"no route {self.command} {url.path}")

    do_GET = do_POST = do_PUT = do_HEAD = _route

    # -- write API --
    def create_repo(self, query: dict) -> None:
        if not self._authorized():
            return
        data = json.loads(self._body())
        repo_id = f"{data['organization']}/{data['name']}"
        if repo_id in self.hub.repos:  # the Hub's 409 still carries the url, which create_repo(exist_ok) reads
            return self._json(409, {"error": "You already created this model repo",
                                    "url": f"{self.hub.base}/{repo_id}"})
        # huggingface_hub 0.x sends "private", 1.x and later "visibility"
        self.hub.repos[repo_id] = Repo(private=bool(data.get("private")) or data.get("visibility") == "private")
        self.hub.commit(repo_id, "main", {})  # the Hub's initial commit
        self._json(200, {"url": f"{self.hub.base}/{repo_id}", "name": repo_id})

    def create_branch(self, repo: str, branch: str, query: dict) -> None:
        if not self._authorized():
            return
        target = self.hub.repos[repo]
        if branch in target.refs:
            return self._error(409, None, "Reference already exists")
        start = json.loads(self._body() or b"{}").get("startingPoint") or "main"
        target.refs[branch] = target.refs[start]
        self._json(200, {})

    def validate_yaml(self, query: dict) -> None:
        content = json.loads(self._body())["content"]
        self.hub.cards.append(content)
        front = content.split("---")[1]
        try:
            yaml.safe_load(front)
        except yaml.YAMLError as exc:
            return self._json(400, {"errors": [{"message": str(exc)}]})
        self._json(200, {"warnings": []})

    def preupload(self, repo: str, rev: str, query: dict) -> None:
        if not self._authorized():
            return
        files = json.loads(self._body())["files"]
        self._json(200, {"files": [{"path": f["path"], "uploadMode": "lfs" if is_lfs(f["path"], f["size"])
                                    else "regular", "shouldIgnore": False} for f in files]})

    def lfs_batch(self, repo: str, query: dict) -> None:
        if not self._authorized():
            return
        data = json.loads(self._body())
        assert data["operation"] == "upload" and "basic" in data["transfers"]
        self._json(200, {"transfer": "basic", "objects": [
            {"oid": o["oid"], "size": o["size"], "authenticated": True,
             "actions": {"upload": {"href": f"{self.hub.base}/lfs-put/{o['oid']}"}}} for o in data["objects"]]})

    def lfs_put(self, oid: str, query: dict) -> None:
        body = self._body()
        if hashlib.sha256(body).hexdigest() != oid:  # what the Hub's storage checks
            return self._error(400, None, "sha256 mismatch")
        with self.hub.lock:
            self.hub.lfs[oid] = body
        self._send(200)

    def commit(self, repo: str, rev: str, query: dict) -> None:
        if not self._authorized():
            return
        assert self.headers.get("Content-Type") == "application/x-ndjson"
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        header, ops = lines[0], lines[1:]
        assert header["key"] == "header"
        files: dict[str, bytes] = {}
        for op in ops:
            value = op["value"]
            if op["key"] == "file":
                assert value["encoding"] == "base64"
                files[value["path"]] = base64.b64decode(value["content"])
            elif op["key"] == "lfsFile":
                blob = self.hub.lfs.get(value["oid"])
                if blob is None or len(blob) != value["size"]:
                    return self._error(400, None, f"LFS object {value['oid']} was not uploaded")
                files[value["path"]] = blob
            else:
                return self._error(400, None, f"unexpected operation {op['key']}")
        ref = rev
        pr_url = None
        if query.get("create_pr") == ["1"]:
            number = 1 + sum(r.startswith("refs/pr/") for r in self.hub.repos[repo].refs)
            ref = f"refs/pr/{number}"
            self.hub.repos[repo].refs[ref] = self.hub.repos[repo].refs[rev]
            pr_url = f"{PUBLIC}/{repo}/discussions/{number}"
        oid = self.hub.commit(repo, ref, files)
        self.hub.commits.append({"repo": repo, "ref": ref, "summary": header["value"]["summary"],
                                 "modes": {op["value"]["path"]: op["key"] for op in ops}, "files": files})
        self._json(200, {"commitUrl": f"{PUBLIC}/{repo}/commit/{oid}", "commitOid": oid,
                         "pullRequestUrl": pr_url})

    # -- read API --
    def _lookup(self, repo: str, rev: str) -> tuple[str, dict[str, bytes]] | None:
        target = self.hub.repos.get(repo)
        if target is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return None
        commit = rev if rev in target.commits else target.refs.get(rev)
        if commit is None:
            self._error(404, "RevisionNotFound", "Invalid rev id")
            return None
        return commit, target.commits[commit]

    def repo_info(self, repo: str, rev: str, query: dict) -> None:
        found = self._lookup(repo, rev)
        if found is not None:
            commit, tree = found
            self._json(200, {"id": repo, "sha": commit, "private": self.hub.repos[repo].private,
                             "siblings": [{"rfilename": name} for name in sorted(tree)]})

    def tree(self, repo: str, rev: str, query: dict) -> None:
        """The file listing huggingface_hub >= 1.0 uses in snapshot_download (0.x reads repo info's siblings)."""
        found = self._lookup(repo, rev)
        if found is not None:
            entries = []
            for name, data in sorted(found[1].items()):
                entry: dict[str, Any] = {"type": "file", "path": name, "size": len(data),
                                         "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}
                if is_lfs(name, len(data)):
                    entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                entries.append(entry)
            self._json(200, entries)

    def resolve(self, repo: str, rev: str, name: str, query: dict) -> None:
        found = self._lookup(repo, rev)
        if found is None:
            return
        commit, tree = found
        if name not in tree:
            return self._error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": commit})
        data = self.hub.served.get(name, tree[name])
        etag = etag_of(name, tree[name])
        headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"'}
        if is_lfs(name, len(data)):
            headers |= {"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))}
        self._send(200, data, headers, content_type="application/octet-stream")


ROUTES = [
    ("POST", r"/api/repos/create", HubHandler.create_repo),
    ("POST", rf"/api/models/{API_REPO}/branch/(?P<branch>[^/]+)", HubHandler.create_branch),
    ("POST", r"/api/validate-yaml", HubHandler.validate_yaml),
    ("POST", rf"/api/models/{API_REPO}/preupload/(?P<rev>[^/]+)", HubHandler.preupload),
    ("POST", rf"/{API_REPO}\.git/info/lfs/objects/batch", HubHandler.lfs_batch),
    ("PUT", r"/lfs-put/(?P<oid>[0-9a-f]{64})", HubHandler.lfs_put),
    ("POST", rf"/api/models/{API_REPO}/commit/(?P<rev>[^/]+)", HubHandler.commit),
    ("GET", rf"/api/models/{API_REPO}/revision/(?P<rev>[^/]+)", HubHandler.repo_info),
    ("GET", rf"/api/models/{API_REPO}/tree/(?P<rev>[^/]+)", HubHandler.tree),
    ("HEAD", rf"/{API_REPO}/resolve/(?P<rev>[^/]+)/(?P<name>.+)", HubHandler.resolve),
    ("GET", rf"/{API_REPO}/resolve/(?P<rev>[^/]+)/(?P<name>.+)", HubHandler.resolve),
]


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """The stand-in Hub on 127.0.0.1, with huggingface_hub online for this test only."""
    hub = FakeHub()
    handler = type("Handler", (HubHandler,), {"hub": hub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    hub.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    # The stand-in speaks LFS, not Xet: as HF_HUB_DISABLE_XET=1 does (huggingface_hub >= 1.0 uploads
    # through Xet whenever hf_xet is installed; 0.x asks the LFS batch endpoint, which answers "basic").
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)
    reset_sessions()  # sessions made while offline carry an adapter that refuses every request
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()


def push(hub: FakeHub, directory: Path, repo_id: str = REPO, **kwargs: Any) -> str:
    return push_artifact(directory, repo_id, token=kwargs.pop("token", TOKEN), endpoint=hub.base, **kwargs)


def copy_artifact(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_push_sends_exactly_the_artifact_files_and_a_model_card(tmp_path, fake_hub, v1_artifact):
    artifact = copy_artifact(v1_artifact, tmp_path / "artifact")
    (artifact / "notes.txt").write_text("not part of the artifact")
    url = push(fake_hub, artifact, private=True)

    assert len(fake_hub.commits) == 1
    commit = fake_hub.commits[0]
    expected = artifact_files(v1_artifact)
    assert set(commit["files"]) == {*expected, "README.md"}
    assert all(commit["files"][name] == data for name, data in expected.items())
    assert commit["modes"]["model.onnx"] == "lfsFile" and commit["modes"][MANIFEST_NAME] == "file"
    assert fake_hub.repos[REPO].private
    assert url == f"{PUBLIC}/{REPO}/commit/{fake_hub.repos[REPO].refs['main']}"
    assert commit["summary"] == "Upload mxbai ONNX artifact (v1, fp32) of tiny-v1"

    card = commit["files"]["README.md"].decode()
    assert fake_hub.cards == [card]  # huggingface_hub had the Hub check the card's YAML first
    front = yaml.safe_load(card.split("---")[1])
    assert front["tags"] == ["onnx", "reranker", "mxbai", "text-ranking"]
    assert front["license"] == "other" and "base_model" not in front  # a local checkpoint: no hub base model
    manifest = read_manifest(v1_artifact)
    assert f"Validation: {manifest.validation.summary()}" in card
    assert "mxbai-onnx export " in card and "--dtype fp32" in card and f'MxbaiReranker("{REPO}")' in card


def test_push_then_fetch_online_downloads_only_the_artifact(tmp_path, fake_hub, v1_artifact):
    push(fake_hub, v1_artifact)
    fake_hub.commit(REPO, "main", {"pytorch_model.bin": b"\0" * 4096, "config.json": b"{}"})  # not artifact files
    cache = tmp_path / "hf"
    fetched = fetch_artifact(REPO, cache_dir=cache, endpoint=fake_hub.base, verify=False)
    assert fetched is not None
    assert sorted(fetched.downloaded) == ["model.onnx", "tokenizer.json"]
    assert sorted(p.name for p in fetched.path.iterdir()) == ["model.onnx", MANIFEST_NAME, "tokenizer.json"]
    assert fetched.commit_hash == fake_hub.repos[REPO].refs["main"]
    assert (fetched.allowed_root / "refs" / "main").read_text() == fetched.commit_hash
    original = np.asarray(MxbaiReranker(str(v1_artifact), providers=["cpu"]).score(QUERY, DOCS))
    np.testing.assert_array_equal(scores_of(fetched.path, fetched.manifest, fetched.allowed_root), original)

    fake_hub.repos["test-org/a-checkpoint"] = Repo(private=False)
    fake_hub.commit("test-org/a-checkpoint", "main", {"config.json": b"{}"})
    assert fetch_artifact("test-org/a-checkpoint", cache_dir=cache, endpoint=fake_hub.base) is None
    with pytest.raises(ModelNotFoundError, match="nor a checkpoint we could download.*no such repository"):
        fetch_artifact("test-org/missing", cache_dir=cache, endpoint=fake_hub.base)
    with pytest.raises(ModelNotFoundError, match="revision: 'v7' does not exist"):
        fetch_artifact(REPO, cache_dir=cache, endpoint=fake_hub.base, revision="v7")


def test_a_download_is_checked_even_without_verify(tmp_path, fake_hub, v1_artifact):
    push(fake_hub, v1_artifact)
    good = fake_hub.head(REPO)["tokenizer.json"]
    bad = bytearray(good)
    bad[100] ^= 0x20  # same size: huggingface_hub's own size check passes it
    fake_hub.served["tokenizer.json"] = bytes(bad)
    with pytest.raises(ArtifactError, match=r"'tokenizer\.json' is corrupt: sha256"):
        fetch_artifact(REPO, cache_dir=tmp_path / "hf", endpoint=fake_hub.base, verify=False)


def test_push_refuses_a_corrupt_or_failed_artifact_before_any_request(tmp_path, fake_hub, v1_artifact):
    corrupt = copy_artifact(v1_artifact, tmp_path / "corrupt")
    data = bytearray((corrupt / "tokenizer.json").read_bytes())
    data[10] ^= 0x01
    (corrupt / "tokenizer.json").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"'tokenizer\.json' is corrupt: sha256"):
        push(fake_hub, corrupt)

    failed = copy_artifact(v1_artifact, tmp_path / "failed")
    manifest = json.loads((failed / MANIFEST_NAME).read_text())
    manifest["validation"].update(passed=False, failures=["max abs diff 0.2 > 0.0001"])
    (failed / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="failed validation at export.*allow_invalid=True"):
        push(fake_hub, failed)
    assert fake_hub.requests == []  # nothing reached the Hub

    push(fake_hub, failed, allow_invalid=True)
    assert "Validation: FAILED against" in fake_hub.head(REPO)["README.md"].decode()

    with pytest.raises(ArgumentError, match="repo_id: the Hub refused"):
        push(fake_hub, v1_artifact, repo_id="test-org/other", token="hf_wrong")


def test_push_to_a_branch_and_as_a_pull_request(tmp_path, fake_hub, v1_artifact, v2_artifact):
    push(fake_hub, v1_artifact)
    push(fake_hub, v2_artifact, revision="v2-preview")
    refs = fake_hub.repos[REPO].refs
    assert read_manifest(v1_artifact).files.keys() <= fake_hub.head(REPO).keys()
    cache = tmp_path / "hf"
    preview = fetch_artifact(REPO, cache_dir=cache, endpoint=fake_hub.base, revision="v2-preview")
    assert preview is not None and preview.manifest.family == "v2" and preview.commit_hash == refs["v2-preview"]

    main_before = refs["main"]
    url = push(fake_hub, v2_artifact, create_pr=True)
    assert url == f"{PUBLIC}/{REPO}/discussions/1" and refs["main"] == main_before
    with pytest.raises(ArgumentError, match="create_pr"):
        push(fake_hub, v2_artifact, create_pr=True, revision="v2-preview")


# -- the extra and the import contract ------------------------------------------------------------------------
def test_without_huggingface_hub_the_error_names_the_extra(monkeypatch, v1_artifact):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # `import huggingface_hub` now fails
    with pytest.raises(MissingExtraError, match=re.escape('pip install "mxbai-integrations[hub]"')):
        fetch_artifact(REPO)
    with pytest.raises(MissingExtraError, match=re.escape('pip install "mxbai-integrations[hub]"')):
        push_artifact(v1_artifact, REPO)


def test_importing_hub_loads_neither_huggingface_hub_nor_the_build_time_stack():
    code = ("import sys, mxbai_integrations.hub; "
            "print(sorted(m for m in ('huggingface_hub', 'torch', 'transformers', 'onnx_export', 'onnx') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- the model card, from the manifest ------------------------------------------------------------------------
def test_model_card_inherits_license_and_base_model_from_a_hub_source(v1_artifact):
    manifest = read_manifest(v1_artifact)
    mixedbread = manifest.__class__.from_dict({**manifest.to_dict(), "source": {
        **manifest.source.to_dict(), "model_id": "mixedbread-ai/mxbai-rerank-xsmall-v1", "path": None,
        "revision": "f1b7c6c"}})
    front = yaml.safe_load(model_card(mixedbread, "me/x").split("---")[1])
    assert front["license"] == "apache-2.0" and front["base_model"] == "mixedbread-ai/mxbai-rerank-xsmall-v1"
    assert front["library_name"] == "mxbai-integrations" and front["pipeline_tag"] == "text-ranking"
    other = mixedbread.__class__.from_dict({**mixedbread.to_dict(), "source": {
        **mixedbread.source.to_dict(), "model_id": "someone/some-reranker"}})
    assert yaml.safe_load(model_card(other, "me/x").split("---")[1])["license"] == "other"
    assert yaml.safe_load(model_card(other, "me/x", license="mit").split("---")[1])["license"] == "mit"
    assert export_command(mixedbread, "./x").split() == [
        "mxbai-onnx", "export", "mixedbread-ai/mxbai-rerank-xsmall-v1", "./x", "--dtype", "fp32", "--max-length",
        str(manifest.max_length), "--opset", str(manifest.opset), "--revision", "f1b7c6c", "--exporter",
        manifest.created_with["exporter"]]


def test_cli_push_uploads_and_prints_the_commit(tmp_path, fake_hub, v1_artifact, monkeypatch, capsys):
    """`mxbai-onnx push ARTIFACT REPO_ID`: the token and endpoint come from huggingface_hub's own settings."""
    from mxbai_integrations import cli

    monkeypatch.setattr(hf_constants, "ENDPOINT", fake_hub.base)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert cli.main(["push", str(v1_artifact), REPO, "--private"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"pushed {v1_artifact} to {REPO}: {PUBLIC}/{REPO}/commit/{fake_hub.repos[REPO].refs['main']}"
    assert set(fake_hub.commits[0]["files"]) == {*artifact_files(v1_artifact), "README.md"}
    assert cli.main(["push", str(tmp_path / "nowhere"), REPO]) == 2
    assert "is not an artifact directory" in capsys.readouterr().err
