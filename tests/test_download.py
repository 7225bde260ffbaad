"""kecam release files: the resolution rule, and fetching from a local HTTP server (no network).

Every test runs with ``MLX_ATTENTION_CACHE`` and ``KERAS_HOME`` in a temporary folder, and
downloads from a server on 127.0.0.1 that counts the requests it answers.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import require_reference

from mlx_attention.models import _download
from mlx_attention.models._download import (
    PretrainedUnavailable,
    ReleaseFile,
    WeightsDownloadError,
    fetch,
    resolve,
)

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = bytes(range(256)) * 4096  # 1 MiB: several read chunks
MD5 = hashlib.md5(PAYLOAD).hexdigest()
PRETRAINED = {
    "toy": {"imagenet": MD5, "bad": MD5, "missing": MD5},
    "toy_res": {"imagenet": {224: "a" * 32, 384: "b" * 32}, "reversed": {384: "c", 224: "d"}},
    "toy_split": {"imagenet": {224: ["e", "f"]}},
}


class Server:
    """Serves ``files`` (path -> bytes) on 127.0.0.1, counting GETs per path."""

    def __init__(self, files: dict[str, bytes], delay_s: float = 0.0):
        self.files, self.delay_s, self.requests = files, delay_s, {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                server.requests[self.path] = server.requests.get(self.path, 0) + 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                time.sleep(server.delay_s)
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    """Our cache and kecam's, both temporary: a test never sees the user's."""
    ours, keras = tmp_path / "cache", tmp_path / "keras"
    monkeypatch.setenv("MLX_ATTENTION_CACHE", str(ours))
    monkeypatch.setenv("KERAS_HOME", str(keras))
    return ours, keras / "models"


@pytest.fixture
def server(monkeypatch):
    files = {
        f"/toy/toy_{tag}.h5": body
        for tag, body in (("imagenet", PAYLOAD), ("bad", PAYLOAD[:-1] + b"x"))
    }
    srv = Server(files)
    monkeypatch.setenv("MLX_ATTENTION_WEIGHTS_URL", srv.url + "/")
    yield srv
    srv.close()


def toy(tag: str = "imagenet") -> ReleaseFile:
    return resolve("toy", tag, 224, "toy", PRETRAINED)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


# --- resolve --------------------------------------------------------------------------------------


def test_resolve_a_plain_entry(monkeypatch):
    monkeypatch.delenv("MLX_ATTENTION_WEIGHTS_URL", raising=False)
    release = resolve("toy", "imagenet", 160, "nat", PRETRAINED)
    assert release == ReleaseFile(
        model_name="toy",
        tag="imagenet",
        file_name="toy_imagenet.h5",
        md5=MD5,
        url=f"{_download.RELEASE_URL}/nat/toy_imagenet.h5",
        resolution=224,  # kecam's assumption for entries without resolutions
    )


@pytest.mark.parametrize(
    ("tag", "width", "resolution"),
    [
        ("imagenet", 224, 224),
        ("imagenet", 300, 224),  # nearest: 76 away vs 84
        ("imagenet", 310, 384),
        ("imagenet", 304, 224),  # a tie goes to the first listed
        ("reversed", 304, 384),  # ... whichever that is
        ("imagenet", 1000, 384),
        ("imagenet", None, 384),  # a dynamic width takes the largest
        ("reversed", None, 384),
    ],
)
def test_resolve_picks_the_resolution_nearest_the_width(tag, width, resolution):
    release = resolve("toy_res", tag, width, "cmt", PRETRAINED)
    assert release.resolution == resolution
    assert release.file_name == f"toy_res_{resolution}_{tag}.h5"
    assert release.md5 == PRETRAINED["toy_res"][tag][resolution]
    assert release.url.endswith(f"/cmt/toy_res_{resolution}_{tag}.h5")


def test_resolve_names_the_tags_that_exist():
    with pytest.raises(PretrainedUnavailable, match=r"'toy_res'.*'imagenet21k'.*\['imagenet', 're"):
        resolve("toy_res", "imagenet21k", 224, "cmt", PRETRAINED)
    with pytest.raises(ValueError, match="'nobody'.*kecam has no pretrained file"):
        resolve("nobody", "imagenet", 224, "cmt", PRETRAINED)
    with pytest.raises(PretrainedUnavailable, match="splits this file into 2 parts"):
        resolve("toy_split", "imagenet", 224, "fastervit", PRETRAINED)


def test_cache_dir_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("MLX_ATTENTION_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _download.cache_dir() == tmp_path / "xdg" / "mlx-attention"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _download.cache_dir() == tmp_path / ".cache" / "mlx-attention"
    assert _download.keras_cache_dir() == tmp_path / ".keras" / "models"


# --- fetch ----------------------------------------------------------------------------------------


def test_fetch_downloads_once_then_reads_the_cache(server, caches):
    path = fetch(toy())
    assert path == caches[0] / "toy_imagenet.h5"
    assert path.read_bytes() == PAYLOAD
    assert fetch(toy()) == path
    assert server.requests == {"/toy/toy_imagenet.h5": 1}
    assert leftovers(caches[0]) == ["toy_imagenet.h5"]


def test_a_bad_checksum_raises_and_leaves_nothing(server, caches):
    with pytest.raises(WeightsDownloadError) as error:
        fetch(toy("bad"))
    message = str(error.value)
    for part in ("toy_bad.h5", f"{server.url}/toy/toy_bad.h5", str(caches[0] / "toy_bad.h5"), MD5):
        assert part in message
    assert "md5" in message and "removed" in message
    assert leftovers(caches[0]) == []


def test_a_missing_file_is_an_http_error(server, caches):
    with pytest.raises(WeightsDownloadError, match=r"toy_missing\.h5.*HTTP 404.*by hand"):
        fetch(toy("missing"))
    assert leftovers(caches[0]) == []


def test_offline_names_the_url_and_where_to_put_the_file(monkeypatch, caches):
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLX_ATTENTION_WEIGHTS_URL", f"http://127.0.0.1:{port}")
    release = toy()
    with pytest.raises(WeightsDownloadError, match="unreachable") as error:
        fetch(release)
    assert release.url in str(error.value) and str(caches[0] / "toy_imagenet.h5") in str(
        error.value
    )
    assert leftovers(caches[0]) == []


def test_an_unwritable_cache_folder_says_so(server, monkeypatch, tmp_path):
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("MLX_ATTENTION_CACHE", str(tmp_path / "a_file" / "cache"))
    with pytest.raises(WeightsDownloadError, match="cannot write to the cache folder"):
        fetch(toy())
    assert server.requests == {}


def test_kecams_cache_is_used_without_a_request(server, caches):
    caches[1].mkdir(parents=True)
    (caches[1] / "toy_imagenet.h5").write_bytes(PAYLOAD)
    assert fetch(toy()) == caches[1] / "toy_imagenet.h5"
    assert server.requests == {}


def test_a_corrupt_cached_file_is_downloaded_again(server, caches):
    # ours is replaced; kecam's is left alone (not ours to change) and not used
    caches[0].mkdir(parents=True)
    caches[1].mkdir(parents=True)
    (caches[0] / "toy_imagenet.h5").write_bytes(b"truncated")
    (caches[1] / "toy_imagenet.h5").write_bytes(b"also truncated")
    path = fetch(toy())
    assert path == caches[0] / "toy_imagenet.h5" and path.read_bytes() == PAYLOAD
    assert (caches[1] / "toy_imagenet.h5").read_bytes() == b"also truncated"
    assert server.requests == {"/toy/toy_imagenet.h5": 1}


CHILD = """
import sys, time
from pathlib import Path
from mlx_attention.models._download import fetch, resolve
release = resolve("toy", "imagenet", 224, "toy", {{"toy": {{"imagenet": "{md5}"}}}})
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.01)
print(fetch(release, progress=False))
"""


def test_two_processes_download_once(server, caches, tmp_path):
    server.delay_s = 1.0  # both are inside fetch while the first download is under way
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD.format(md5=MD5), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    time.sleep(0.2)
    go.touch()
    outputs = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    assert {out.strip() for out, _ in outputs} == {str(caches[0] / "toy_imagenet.h5")}
    assert server.requests == {"/toy/toy_imagenet.h5": 1}
    assert (caches[0] / "toy_imagenet.h5").read_bytes() == PAYLOAD


# --- kecam's own rule ----------------------------------------------------------------------------


def _release_cases() -> list[tuple[str, str, int | None]]:
    """``(constructor, tag, width)`` for every tag of every registered constructor: at its
    default width, at each of the tag's resolutions, between them and for a dynamic shape."""
    from mlx_attention import models

    rows = []
    for name in models.list_models():
        entry = models.get_entry(name)
        for tag, files in entry.family.pretrained_dict.get(entry.spec.model_name, {}).items():
            widths = {entry.spec.input_shape[1], None}
            if isinstance(files, dict):
                widths |= {*files, (min(files) + max(files)) // 2}
            rows += [(name, tag, width) for width in sorted(widths, key=lambda w: w or 0)]
    return rows


@pytest.mark.reference
@pytest.mark.parametrize("name, tag, width", _release_cases())
def test_release_files_are_the_ones_kecam_asks_for(monkeypatch, name, tag, width):
    """Our PRETRAINED_DICT entry is kecam's, and for every tag and width ``resolve`` gives the file,
    URL and md5 that kecam's ``reload_model_weights`` asks ``get_file`` for."""
    require_reference()
    sys.path.insert(0, str(ROOT / "tools"))
    import make_model_fixtures as tool
    from keras_cv_attention_models import download_and_load

    from mlx_attention import models

    entry = models.get_entry(name)
    family, model_name = entry.family, entry.spec.model_name
    # kecam's PRETRAINED_DICT: beside the constructor (BoTNet...) or its builder (nat.NAT for DiNAT)
    where = (
        tool.kecam_builder(f"{family.module}.{n}").__module__ for n in (name, family.builder_name)
    )
    kecam = next(m for m in map(sys.modules.get, where) if hasattr(m, "PRETRAINED_DICT"))
    assert family.pretrained_dict[model_name] == kecam.PRETRAINED_DICT[model_name]
    asked = []

    def get_file(file_name, url, cache_subdir, file_hash):
        asked.append((file_name, url, file_hash))
        raise OSError("no download in tests")  # kecam prints it and gives up

    monkeypatch.setattr(download_and_load.backend, "get_file", get_file)
    # kecam reads the width (input_shape[2]): a height of its own shows the rule
    shape = (None, None if width is None else 97, width, 3)
    stub = type("Stub", (), {"name": model_name, "input_shape": shape})()
    download_and_load.reload_model_weights(stub, kecam.PRETRAINED_DICT, family.sub_release, tag)
    monkeypatch.delenv("MLX_ATTENTION_WEIGHTS_URL", raising=False)
    ours = resolve(model_name, tag, width, family.sub_release, family.pretrained_dict)
    assert asked == [(ours.file_name, ours.url, ours.md5)]
