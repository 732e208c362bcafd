"""The box one exercise's code runs in: resource limits, no network, a filesystem allow-list.

``enter_box`` is called in a freshly forked process *before* any learner code runs there. It applies,
as far as the operating system allows (each layer reports whether it held):

* ``RLIMIT_CPU`` (CPU seconds), ``RLIMIT_AS`` (address space: the interpreter's current size plus
  the memory limit), ``RLIMIT_FSIZE`` (largest file written), no core dumps;
* a new, empty network namespace (``unshare(CLONE_NEWNET)``: as root, or inside a new user namespace
  where unprivileged ones are allowed);
* Landlock (Linux 5.13 and later): the process and everything it starts may read only the Python
  installation, the ``workshop`` package and system libraries, may write only under its own temporary
  folder, may not connect or bind TCP sockets (kernel ABI 4+), and may not signal processes outside its
  box (ABI 6+). The submissions folder and the gradebook lie outside the allow-list: they can be
  neither read nor written.
* ``PR_SET_PDEATHSIG``: the box dies with the grader that started it.

The environment the box sees is already stripped by the parent (see ``clean_environment``).

Taught in: not taught (instructor tooling).
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)

# Landlock (include/uapi/linux/landlock.h)
_SYS_CREATE, _SYS_ADD_RULE, _SYS_RESTRICT = 444, 445, 446
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_ALL_V1 = (1 << 13) - 1
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1
_READ = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
_PR_SET_NO_NEW_PRIVS, _PR_SET_PDEATHSIG = 38, 1
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000

KEPT_VARIABLES = ("LANG", "LC_ALL", "TZ")


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def clean_environment(workdir: str | Path, package_root: str | Path) -> dict[str, str]:
    """The only variables a grading process gets: none of the instructor's (tokens, proxies, paths).

    Args:
        workdir: the box's temporary folder (also ``HOME`` and ``TMPDIR``).
        package_root: the folder that holds the ``workshop`` package, so the box imports this one.
    """
    env = {k: os.environ[k] for k in KEPT_VARIABLES if k in os.environ}
    env.update({
        "PATH": "/usr/bin:/bin", "HOME": str(workdir), "TMPDIR": str(workdir), "PYTHONPATH": str(package_root),
        "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "MPLBACKEND": "Agg", "WORKSHOP_OFFLINE": "1",
        "WORKSHOP_PROFILE": "smoke", "WORKSHOP_DATA_DIR": str(Path(workdir) / "data"), "NO_PROXY": "*",
    })
    return env


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 where there is none (other OS, old kernel, disabled)."""
    if not sys.platform.startswith("linux"):
        return 0
    value = _libc.syscall(_SYS_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(int(value), 0)


def readable_roots() -> list[str]:
    """Folders a box may read: the interpreter, its libraries, the workshop package, system files."""
    import workshop

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(workshop.__file__).resolve().parent)}
    roots |= {p for p in sys.path if p and ("site-packages" in p or "dist-packages" in p or p.startswith(sys.base_prefix))}
    roots |= {"/usr", "/lib", "/lib64", "/lib32", "/bin", "/etc/ld.so.cache", "/etc/localtime", "/etc/ssl",
              "/sys/devices/system/cpu", "/dev/null", "/dev/urandom", "/dev/zero"}
    return sorted(r for r in roots if os.path.exists(r))


def _add_path(ruleset: int, path: str, access: int) -> bool:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        rule = _PathBeneath(access, fd)
        return _libc.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule),
                             ctypes.c_uint32(0)) == 0
    finally:
        os.close(fd)


def _landlock(workdir: str, readable: list[str]) -> str:
    abi = landlock_abi()
    if abi < 1:
        return "landlock: not available on this system (filesystem not isolated)"
    fs = _FS_ALL_V1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0) | (_FS_IOCTL_DEV if abi >= 5 else 0)
    net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (_SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL) if abi >= 6 else 0
    attr = _RulesetAttr(fs, net, scoped)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else (16 if abi >= 4 else 8)
    ruleset = _libc.syscall(_SYS_CREATE, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return f"landlock: refused ({os.strerror(ctypes.get_errno())})"
    try:
        for root in readable:
            access = _READ if os.path.isdir(root) else (_FS_EXECUTE | _FS_READ_FILE)
            if root.startswith("/dev/"):
                access |= _FS_WRITE_FILE
            _add_path(ruleset, root, access & fs)
        _add_path(ruleset, workdir, fs)
        if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return "landlock: no_new_privs refused"
        if _libc.syscall(_SYS_RESTRICT, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            return f"landlock: restrict refused ({os.strerror(ctypes.get_errno())})"
    finally:
        os.close(ruleset)
    parts = ["files: read only Python and system folders, write only its temporary folder"]
    if net:
        parts.append("no TCP")
    if scoped:
        parts.append("no signals outside the box")
    return f"landlock ABI {abi}: " + ", ".join(parts)


def _network_off() -> str:
    flags = _CLONE_NEWNET if os.geteuid() == 0 else (_CLONE_NEWUSER | _CLONE_NEWNET)
    if sys.platform.startswith("linux") and _libc.unshare(ctypes.c_int(flags)) == 0:
        return "network: a new empty network namespace"
    return "network: namespace not available (proxy variables stripped only)"


def address_space() -> int:
    """The process's current virtual size in bytes (0 where it cannot be read)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def enter_box(workdir: str | Path, readable: list[str], cpu_seconds: int, memory_mb: int,
              file_mb: int = 64) -> list[str]:
    """Confine the calling process (see the module docstring); returns one line per layer applied."""
    workdir = str(workdir)
    applied = []
    if sys.platform.startswith("linux"):
        _libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0)
    os.chdir(workdir)
    limit = address_space() + memory_mb * 2**20
    # CPU: SIGXCPU at the soft limit (the harness reads it as a timeout), SIGKILL 2 s later at the hard one
    for what, soft, hard in ((resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 2), (resource.RLIMIT_AS, limit, limit),
                             (resource.RLIMIT_FSIZE, file_mb * 2**20, file_mb * 2**20), (resource.RLIMIT_CORE, 0, 0)):
        try:
            resource.setrlimit(what, (soft, hard))
        except (ValueError, OSError):
            applied.append(f"limit {what} refused")  # e.g. a hard limit already lower
    applied.append(f"limits: {cpu_seconds} s CPU, {memory_mb} MB memory above the interpreter, {file_mb} MB files")
    applied.append(_network_off())
    applied.append(_landlock(workdir, readable))
    return applied
