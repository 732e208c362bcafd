"""Downloading real data sets: resumable HTTP, sha256 checks, extraction into the registry layout.

What happens in ``install(entry, ...)``:

1. each archive is streamed to ``<downloads>/<file>.part``; a ``.part`` left by a broken download
   is continued with an HTTP ``Range`` request (or started again when the server ignores
   ``Range``), and a connection that breaks mid-way is resumed a few times automatically;
2. the finished file is checked against its recorded sha256 (a mismatch deletes it and says so;
   where no checksum is recorded the computed one is reported instead);
3. the archives are unpacked into a staging folder following the entry's rules, the layout is
   checked, and the folder is renamed into place with a marker file that records the checksums.

Every failure is a ``DataError`` with one line that says what happened and the manual way round:
download the URL in a browser, put the file at the path given, run ``workshop data verify NAME``.
Only ``urllib`` from the standard library is used.

Why not pooch (considered for issue 12): pooch would bring hashes, a cache and retries, but not
what these entries need: resuming a half-finished ``.part`` after a broken connection (pooch starts
again), mirrors tried in order per archive, unpacking that re-roots archive paths into the shared
layout (``*/CamVid/train/`` -> ``train/``; pooch's ``Unzip``/``Untar`` keep the archive's own paths),
a ``finalize`` step and the one-line manual alternative per failure. Those would be custom processors
and downloaders around pooch, so the existing, tested module (about 500 lines) stays; it depends on
the entries only (``workshop.data.entries``), so there is no import cycle with the registry.

Taught in: notebooks/03_dataset.ipynb
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import tarfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from workshop.errors import DataError

if TYPE_CHECKING:
    from workshop.data.entries import Archive, DatasetEntry

__all__ = [
    "extract",
    "fetch",
    "install",
    "is_offline",
    "manual_hint",
    "sha256_of_file",
    "verify_install",
]

MARKER = ".workshop-download.json"
USER_AGENT = "segmentation-workshop-downloader/1 (+urllib)"
CHUNK = 1 << 20


def is_offline() -> bool:
    """True when ``WORKSHOP_OFFLINE`` is set to 1/true/yes/on (no connection is attempted then)."""
    return os.environ.get("WORKSHOP_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def manual_hint(url: str, path: Path, name: str) -> str:
    """The manual alternative, as one sentence."""
    return f"download {url} in a browser, put it at {path}, then run `workshop data verify {name}`"


def sha256_of_file(path: str | os.PathLike, chunk_size: int = CHUNK) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- HTTP


def _reason(exc: BaseException, url: str, timeout: float) -> str:
    """A short, human reason for a failed request."""
    host = urllib.request.urlparse(url).netloc
    if isinstance(exc, urllib.error.HTTPError):
        return f"the server answered HTTP {exc.code} {exc.reason}"
    inner = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(inner, socket.gaierror):
        return f"the host {host} could not be found (offline, or DNS failure)"
    if isinstance(inner, ConnectionRefusedError):
        return f"the connection to {host} was refused"
    if isinstance(inner, (TimeoutError, socket.timeout)):
        return f"no answer from {host} within {timeout:g} s"
    if isinstance(inner, ssl.SSLError) or isinstance(inner, ssl.CertificateError):
        return f"secure connection to {host} failed ({inner})"
    if isinstance(inner, (ConnectionResetError, ConnectionAbortedError, http.client.IncompleteRead)):
        return f"the connection to {host} broke off"
    text = str(inner) or type(inner).__name__
    return f"{text} ({host})"


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _stream(response, part: Path, mode: str, progress_cb: Callable[[int], None] | None) -> int:
    written = 0
    with open(part, mode) as fh:
        while True:
            block = response.read(CHUNK)
            if not block:
                break
            fh.write(block)
            written += len(block)
            if progress_cb is not None:
                progress_cb(len(block))
    return written


def _progress_bar(enabled: bool, total: int | None, initial: int, label: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=label, leave=False)


def _check_host(url: str, timeout: float) -> None:
    """Resolve the host within ``timeout`` seconds (a broken DNS can otherwise hang for minutes)."""
    parsed = urllib.request.urlparse(url)
    host, port = parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)
    outcome: list[BaseException | None] = []

    def resolve() -> None:
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=resolve, daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise urllib.error.URLError(socket.timeout(f"resolving {host} took longer than {timeout:g} s"))
    if outcome[0] is not None:
        raise urllib.error.URLError(outcome[0])


def _download_once(
    url: str, part: Path, size: int | None, timeout: float, retries: int, progress: bool
) -> None:
    """Fill ``part`` with the whole file at ``url``, resuming what is already there. Raises on failure."""
    _check_host(url, timeout)
    attempt = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        if size is not None and have == size:
            return  # a previous run got every byte; the checksum decides the rest
        if size is not None and have > size:
            part.unlink()
            have = 0
        headers = {"User-Agent": USER_AGENT}
        if have:
            headers["Range"] = f"bytes={have}-"
        request = urllib.request.Request(url, headers=headers)
        received = 0
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status = response.status
                total = response.headers.get("Content-Length")
                total = int(total) if total and total.isdigit() else None
                mode = "wb"
                if have and status == 206:
                    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                    if match and int(match.group(1)) == have:
                        mode = "ab"
                    else:  # a range we did not ask for: start again
                        have = 0
                        response.close()
                        part.unlink(missing_ok=True)
                        continue
                else:
                    have = 0  # 200: the server ignored Range (or there was nothing): start again
                expected = (have + total) if total is not None else size
                bar = _progress_bar(progress, expected, have, part.name[: -len(".part")])
                try:
                    received = _stream(response, part, mode, bar.update if bar else None)
                finally:
                    if bar is not None:
                        bar.close()
                if total is not None and received < total:
                    raise http.client.IncompleteRead(b"", total - received)
            return
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:  # Range Not Satisfiable: the .part is complete or foreign
                if size is None or have == size:
                    return
                part.unlink(missing_ok=True)
                attempt += 1
                if attempt > retries:
                    raise
                continue
            raise
        except (OSError, http.client.HTTPException):
            grew = part.exists() and part.stat().st_size > have
            if not grew:
                raise  # no byte came this time (refused, timed out): retrying at once would not help
            attempt += 1
            if attempt > retries:
                raise
            time.sleep(min(2.0, 0.2 * attempt))  # then resume from what we have


def fetch(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    *,
    name: str = "NAME",
    mirrors: Sequence[str] = (),
    size: int | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    progress: bool = False,
) -> str:
    """Download ``url`` to ``dest`` via ``dest.part``, resuming a broken download, and check its sha256.

    Args:
        url: the file's address (``mirrors`` are tried after it, in order).
        dest: final path of the file.
        sha256: the expected hex digest, or None (then nothing is compared).
        name: data set name, for the manual hint in messages.
        size: expected size in bytes, if known.
        timeout: seconds to wait for the server on every socket operation.
        retries: how often a broken transfer is resumed before giving up.
        progress: show a progress bar.

    Returns:
        The sha256 of the downloaded file.

    Raises:
        DataError: offline, unreachable, HTTP error, or checksum mismatch (the wrong file is
            deleted); the message gives the manual alternative.
    """
    dest = Path(dest)
    hint = manual_hint(url, dest, name)
    if is_offline():
        raise DataError(f"cannot download {name}: offline mode (WORKSHOP_OFFLINE=1). To get it by hand: {hint}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures = []
    for candidate in (url, *mirrors):
        try:
            _download_once(candidate, part, size, timeout, retries, progress)
            break
        except (OSError, http.client.HTTPException) as exc:
            failures.append(f"{_reason(exc, candidate, timeout)}")
    else:
        kept = f" (the partial file {part.name} is kept and will be resumed)" if part.exists() and part.stat().st_size else ""
        raise DataError(f"cannot download {name}: {'; '.join(failures)}{kept}. To get it by hand: {hint}")
    digest = sha256_of_file(part)
    if sha256 is not None and digest != sha256.lower():
        part.unlink(missing_ok=True)
        raise DataError(
            f"sha256 mismatch for {dest.name} from {url}: expected {sha256}, got {digest}; "
            f"the file was deleted (a broken or changed download). Run the download again, or: {hint}"
        )
    os.replace(part, dest)
    return digest


# ----------------------------------------------------------------------------- extraction


def _map_member(member: str, rules: Sequence[tuple[str, str]]) -> str | None:
    """Where archive path ``member`` goes in the layout (relative path), or None to skip it."""
    parts = [p for p in PurePosixPath(member).parts if p not in ("", ".")]
    if not parts or parts[0] == "__MACOSX" or parts[-1].startswith("._"):
        return None
    if not rules:
        return "/".join(parts)
    for pattern, target in rules:
        pat = [p for p in pattern.split("/") if p]
        if pattern.endswith("/"):
            if len(parts) > len(pat) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(parts, pat)):
                return "/".join([*[p for p in target.split("/") if p], *parts[len(pat):]])
        elif len(parts) == len(pat) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(parts, pat)):
            return target
    return None


def _safe_target(root: Path, rel: str, archive: Path) -> Path:
    rel_path = PurePosixPath(rel)
    if rel_path.is_absolute() or ".." in rel_path.parts:
        raise DataError(f"{archive}: refusing the archive member {rel!r} (it points outside the data folder)")
    return root.joinpath(*rel_path.parts)


def _members(archive: Path) -> Iterator[tuple[str, Callable[[], object]]]:
    name = archive.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield info.filename, (lambda info=info: zf.open(info))
    elif name.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")):
        with tarfile.open(archive) as tf:
            for member in tf:
                if member.isfile():
                    yield member.name, (lambda member=member: tf.extractfile(member))
    else:
        raise DataError(f"{archive}: unknown archive type; expected .zip, .tar, .tar.gz, .tgz")


def extract(archive: str | os.PathLike, dest: str | os.PathLike, rules: Sequence[tuple[str, str]] = ()) -> int:
    """Unpack the members of ``archive`` that ``rules`` keep into ``dest`` (see ``registry.Archive``).

    Members that would land outside ``dest`` (absolute paths, ``..``), macOS resource forks and
    links are never written.

    Returns:
        The number of files written.

    Raises:
        DataError: the file is not a readable archive (named, with what to do).
    """
    archive, dest = Path(archive), Path(dest)
    written = 0
    try:
        for member, open_member in _members(archive):
            rel = _map_member(member, rules)
            if rel is None:
                continue
            target = _safe_target(dest, rel, archive)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open_member() as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
            written += 1
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EACCES, errno.EROFS):
            raise DataError(f"cannot unpack {archive.name} into {dest}: {exc.strerror}") from None
        detail = " ".join(str(exc).split())[:200]
        raise DataError(
            f"{archive} cannot be unpacked ({type(exc).__name__}: {detail}); delete it and download it again"
        ) from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise DataError(
            f"{archive} cannot be unpacked ({type(exc).__name__}: {detail}); delete it and download it again"
        ) from None
    return written


# ----------------------------------------------------------------------------- install and verify


def _count(root: Path, path: str, pattern: str | None) -> int:
    target = root / path
    if pattern is None:
        if not target.is_file():
            return 0
        return sum(1 for ln in target.read_text().splitlines() if ln.strip() and not ln.startswith("#"))
    return sum(1 for p in target.glob(pattern) if p.is_file() and not p.name.startswith("._")) if target.is_dir() else 0


def _count_lines(entry: "DatasetEntry", root: Path) -> list[str]:
    lines = []
    for path, pattern, expected in entry.counts:
        found = _count(root, path, pattern)
        what = f"{path}/{pattern}" if pattern else f"{path} entries"
        flag = "ok" if found == expected else f"EXPECTED {expected}"
        lines.append(f"  {what}: {found} ({flag})")
    return lines


def _checksum_line(filename: str, recorded: str | None, computed: str | None) -> str:
    if recorded is None:
        return f"  {filename}: no checksum recorded: computed sha256 is {computed}"
    return f"  {filename}: sha256 OK ({computed})"


def _check_archive_file(archive: "Archive", path: Path, name: str) -> str:
    digest = sha256_of_file(path)
    if archive.sha256 is not None and digest != archive.sha256.lower():
        raise DataError(
            f"sha256 mismatch for {path}: expected {archive.sha256}, got {digest}. It is not the published "
            f"file (incomplete, or another version): delete it, then run `workshop data download {name}`, "
            f"or {manual_hint(archive.url, path, name)}"
        )
    return digest


def install(
    entry: "DatasetEntry",
    target: str | os.PathLike,
    downloads: str | os.PathLike,
    progress: bool = True,
    keep_archives: bool = False,
    timeout: float = 30.0,
) -> Path:
    """Download (or reuse) the archives of ``entry``, check them, unpack into ``target`` with a marker.

    An archive already at ``downloads/<filename>`` (put there by hand) is checked and used
    instead of downloading. A complete ``target`` (marker present) is returned as it is.

    Returns:
        ``target``.

    Raises:
        DataError: download, checksum or layout problems (one line, with the manual alternative).
    """
    target, downloads = Path(target), Path(downloads)
    if (target / MARKER).is_file() and all((target / rel).exists() for rel in entry.layout):
        return target
    digests: list[dict[str, str | None]] = []
    files: list[Path] = []
    for archive in entry.archives:
        path = downloads / archive.filename
        if path.is_file():
            digest = _check_archive_file(archive, path, entry.name)
        else:
            digest = fetch(
                archive.url, path, archive.sha256, name=entry.name, mirrors=archive.mirrors,
                size=archive.size, timeout=timeout, progress=progress,
            )
        digests.append({"file": archive.filename, "url": archive.url, "sha256": digest, "recorded_sha256": archive.sha256})
        files.append(path)
    staging = target.with_name(f".{target.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        count = sum(extract(path, staging, archive.rules) for path, archive in zip(files, entry.archives))
        if entry.finalize is not None:
            entry.finalize(staging)
        missing = [rel for rel in entry.layout if not (staging / rel).exists()]
        if missing:
            raise DataError(
                f"the archive(s) of {entry.name} do not have the expected layout: missing {', '.join(missing)} "
                f"(unpacked {count} files). The publisher may have changed it; please report this"
            )
        record = {
            "name": entry.name,
            "archives": digests,
            "files": count,
            "completed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (staging / MARKER).write_text(json.dumps(record, indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not keep_archives:
        for path in files:
            path.unlink(missing_ok=True)
    return target


def verify_install(entry: "DatasetEntry", target: str | os.PathLike, downloads: str | os.PathLike) -> str:
    """Report on a downloaded data set; with archives placed by hand in ``downloads``, install them first.

    Returns:
        Lines: where the data set is, a checksum line per archive (``no checksum recorded: computed
        sha256 is ...`` where none is recorded), and expected vs found file counts.

    Raises:
        DataError: nothing downloaded and no archive to install (says where to put it), a checksum
            mismatch, or a broken layout.
    """
    target, downloads = Path(target), Path(downloads)
    complete = (target / MARKER).is_file()
    if not complete:
        absent = [a for a in entry.archives if not (downloads / a.filename).is_file()]
        if absent:
            a = absent[0]
            part = downloads / (a.filename + ".part")
            partial = f" ({part.name} holds an unfinished download; `workshop data download {entry.name}` resumes it)" if part.exists() else ""
            raise DataError(
                f"{entry.name} is not downloaded and {downloads / a.filename} does not exist{partial}: run "
                f"`workshop data download {entry.name}`, or {manual_hint(a.url, downloads / a.filename, entry.name)}"
            )
        install(entry, target, downloads, progress=False)
    record = json.loads((target / MARKER).read_text())
    missing = [rel for rel in entry.layout if not (target / rel).exists()]
    if missing:
        raise DataError(f"{target} is damaged: missing {', '.join(missing)}; run `workshop data download {entry.name}` again")
    lines = [f"{entry.name}: complete in {target} ({record.get('files', '?')} files, {record.get('completed', '')})"]
    for item in record.get("archives", []):
        lines.append(_checksum_line(item["file"], item.get("recorded_sha256"), item.get("sha256")))
    lines += _count_lines(entry, target)
    return "\n".join(lines)
