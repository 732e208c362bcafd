"""The grading process of one learner: ``python -m workshop.grading.runner`` (job on stdin, JSON on stdout).

This process is the trusted harness: it imports torch and the needed exercise modules once, then, for each
exercise, forks a *box* (see ``workshop.grading.sandbox``) and never runs learner code itself.
Inside the box, and only there:

1. the checker's state is fingerprinted (every ``workshop`` module's globals, the exercises and
   their check lists, the checker classes, ``builtins``, ``math``, ``torch``, ``numpy``, ``torch.Tensor``);
2. the learner's definitions (cut out by ``workshop.grading.cells``) are executed in a fresh namespace;
3. ``Exercise.run_checks`` runs the library's checks on the object they define;
4. the fingerprint is compared again: a changed checker makes the exercise ``error``, whatever
   the checks said;
5. one record goes back over a pipe, tagged with a token the box was given at its fork.

The harness accepts exactly one well-formed record with the right token and exercise name;
anything else (nothing, two records, a wrong token, a crash, ``os._exit``) is ``error``, and a box
that outlives its time is killed and graded ``timeout``. The box's stdout and stderr go to a file
in its temporary folder: printed ``PASS`` lines reach nobody.

Taught in: not taught (instructor tooling).
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
import traceback
from typing import Any

STARTED = time.time()


def _fingerprint() -> dict[tuple, Any]:
    """Identities of everything the verdict depends on (see the module docstring)."""
    import builtins
    import math

    import numpy
    import torch

    from workshop.tasks import core

    fp: dict[tuple, Any] = {}
    modules = [m for n, m in list(sys.modules.items()) if m is not None and (n == "workshop" or n.startswith("workshop."))]
    modules += [builtins, math, numpy, torch, torch.nn.functional]
    for module in modules:
        for key, value in list(vars(module).items()):
            fp[(module.__name__, key)] = id(value)
            code = getattr(value, "__code__", None)
            if code is not None:
                fp[(module.__name__, key, "code")] = (id(code), id(getattr(value, "__defaults__", None)))
    for cls in (core.Exercise, core.Check, core.Verdict, core.CheckFailure, torch.Tensor, torch.nn.Module):
        for key, value in list(vars(cls).items()):
            fp[(cls.__qualname__, key)] = id(value)
    for ex in _loaded_exercises().values():
        fp[("exercise", ex.name)] = (id(ex), id(ex.checks), id(ex.reference), tuple((id(c), id(c.run)) for c in ex.checks),
                                  tuple(ex.hints))
    return fp


def _loaded_exercises() -> dict[str, Any]:
    """The exercises of the ``workshop.tasks`` modules imported in this process (only those a job needs)."""
    found = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("workshop.tasks.") and module is not None:
            for ex in getattr(module, "EXERCISES", []):
                found[ex.name] = ex
    return found


def _changed(before: dict[tuple, Any]) -> list[str]:
    after = _fingerprint()
    return [".".join(str(p) for p in key[:2]) for key, value in before.items()
            if after.get(key) != value and key[:2] != ("workshop.tasks", "_REGISTRY")]  # a cache, filled on use


def _hint_number(verdict, exercise) -> int | None:
    """The hint the verdict points to: ``verdict.hint`` when the library gives one, else from its message."""
    hint = getattr(verdict, "hint", None)
    if isinstance(hint, int):
        return hint
    import re

    match = re.search(rf"{exercise.name}\.hint\((\d+)\)", verdict.message or "")
    return int(match.group(1)) if match else None


def _classify(exercise, candidate, verdict) -> str:
    """``fail`` for a check the code did not meet (or the stub), ``error`` when the learner's code raised."""
    from workshop.tasks.core import CheckFailure

    check = next((c for c in exercise.checks if c.name == verdict.failed_check), None)
    if check is None:
        return "fail"
    try:
        check.run(candidate)
    except (CheckFailure, NotImplementedError):
        return "fail"
    except Exception:
        return "error"
    return "fail"


def _in_box(item: dict, token: str, wfd: int, job: dict) -> None:
    """Everything that happens in the forked box; ends with one record on ``wfd`` (or not at all)."""
    import builtins
    import linecache

    from workshop.grading.sandbox import enter_box

    os.setpgid(0, 0)
    workdir = os.path.join(job["workdir"], f"box-{item.get('box', item['exercise'])}")
    os.makedirs(workdir, exist_ok=True)
    log = os.open(os.path.join(workdir, "output.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.closerange(3, wfd)
    os.closerange(wfd + 1, 65536)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)
    exercise = _loaded_exercises()[item["exercise"]]
    record: dict[str, Any] = {"token": token, "exercise": exercise.name}
    box = enter_box(workdir, job["readable"], job["timeout"], job["memory_mb"])
    before = _fingerprint()

    def send(status: str, message: str, **extra: Any) -> None:
        record.update(status=status, message=message, box=box, **extra)
        os.write(wfd, (json.dumps(record) + "\n").encode())
        os.close(wfd)

    import tempfile
    import types

    tempfile.tempdir = workdir
    os.environ.update(TMPDIR=workdir, HOME=workdir)
    module = types.ModuleType("__main__")  # as in Jupyter; dataclasses and pickle look the module up
    sys.modules["__main__"] = module
    namespace = module.__dict__
    namespace["__builtins__"] = builtins
    try:
        for seg in item["segments"]:
            filename = f"<{item['notebook']} cell {seg['cell']}>"
            cell_source = item["cells"][str(seg["cell"])]
            lines = [line + "\n" for line in cell_source.split("\n")]  # "\n" only, as Python counts lines
            linecache.cache[filename] = (len(cell_source), None, lines, filename)
            code = compile("\n" * (seg["line"] - 1) + seg["source"], filename, "exec")
            exec(code, namespace)
    except BaseException as exc:  # the exercise cell itself fails (NameError, ImportError, SystemExit...)
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<")]
        where = f" (cell {frames[-1].filename.rsplit(' ', 1)[-1][:-1]}, line {frames[-1].lineno}: {frames[-1].line})" \
            if frames and frames[-1].line else ""
        send("error", f"the exercise cell raised {type(exc).__name__}: {exc}{where} while being defined")
        return
    if exercise.name not in namespace:
        send("error", f"the exercise cell's definitions do not create {exercise.name} (only def, class and "
                      "import lines are run)")
        return
    candidate = namespace[exercise.name]
    if candidate is exercise.reference or getattr(candidate, "__wrapped__", None) is exercise.reference:
        send("reference", f"{exercise.name} is the library's own implementation")
        return
    tampered = _changed(before)
    if tampered:
        send("error", "tampering: defining the exercise changed the checker (" + ", ".join(tampered[:5]) + ")")
        return
    try:
        verdict = exercise.run_checks(candidate)
        status = "pass" if verdict.passed else _classify(exercise, candidate, verdict)
    except BaseException as exc:  # SystemExit, KeyboardInterrupt, ... escaping the checks
        send("error", f"the code stopped the checks with {type(exc).__name__}: {exc}")
        return
    tampered = _changed(before)
    if tampered:
        send("error", "tampering: the checker was changed while the checks ran (" + ", ".join(tampered[:5]) + ")")
        return
    send(status, verdict.message, hint=_hint_number(verdict, exercise), failed_check=verdict.failed_check)


def _read(fd: int, pid: int, deadline: float) -> tuple[bytes, int | None, bool]:
    """Read the box's pipe until EOF or ``deadline``; returns (data, wait status, timed out)."""
    chunks, status, timed_out = [], None, False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            if sum(map(len, chunks)) > 1_000_000:
                break
        elif status is None:
            done, wait = os.waitpid(pid, os.WNOHANG)
            if done:
                status = wait
                break
    for sig_target in (pid,):
        try:
            os.killpg(sig_target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if status is None:
        _, status = os.waitpid(pid, 0)
    return b"".join(chunks), status, timed_out


def _warm_up(names: set[str]) -> None:
    """Run each needed exercise's checks on its reference once, here, before any box is forked.

    Libraries patch themselves on first use (importing ``torch._dynamo`` wraps ``torch.manual_seed``,
    for one); doing that first keeps such changes out of the boxes' fingerprints, so only changes made
    by learner code count as tampering.
    """
    try:
        import torch._dynamo  # noqa: F401
    except Exception:
        pass
    exercises = _loaded_exercises()
    for name in sorted(names):
        try:
            exercises[name].run_checks(exercises[name].reference)
        except Exception:
            pass


def grade_item(item: dict, job: dict) -> dict:
    """Fork a box for one exercise and turn what comes back into a result dict."""
    import secrets

    token = secrets.token_hex(16)
    rfd, wfd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            _in_box(item, token, wfd, job)
        except BaseException:
            pass
        finally:
            os._exit(0)
    os.close(wfd)
    try:
        os.setpgid(pid, pid)
    except (PermissionError, ProcessLookupError):
        pass
    started = time.monotonic()
    data, status, timed_out = _read(rfd, pid, started + job["timeout"] + 5)
    os.close(rfd)
    result = {"exercise": item["exercise"], "seconds": round(time.monotonic() - started, 3)}
    records = []
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    good = [r for r in records if r.get("token") == token and r.get("exercise") == item["exercise"]]
    valid = len(records) == 1 and len(good) == 1 and good[0].get("status") in {"pass", "fail", "error", "reference"}
    cpu_out = os.WIFSIGNALED(status) and (os.WTERMSIG(status) == signal.SIGXCPU or (
        os.WTERMSIG(status) == signal.SIGKILL and time.monotonic() - started >= job["timeout"]))
    if not valid and not records and (timed_out or cpu_out):
        result.update(status="timeout", message=f"stopped after {job['timeout']} s (an endless loop, or far too slow)")
        return result
    if not valid:
        if not records:
            how = (f"was killed by signal {os.WTERMSIG(status)} (a crash, or out of memory)" if os.WIFSIGNALED(status)
                   else f"ended with exit code {os.WEXITSTATUS(status)} before the checks finished (sys.exit / os._exit?)")
            result.update(status="error", message=f"the grading box {how}")
        else:
            result.update(status="error", message="tampering: the result channel received a forged or extra verdict")
        return result
    rec = good[0]
    result.update(status=rec["status"], message=str(rec.get("message", ""))[:2000], box=rec.get("box", []),
                  hint=rec.get("hint") if isinstance(rec.get("hint"), int) else None,
                  failed_check=rec.get("failed_check"))
    return result


def main() -> int:
    job = json.load(sys.stdin)
    imported_at = time.time()
    import torch

    torch.set_num_threads(1)
    import importlib

    import workshop.grading.sandbox  # noqa: F401  (imported before any box, which may not read files)

    for module in sorted({item["module"] for item in job["items"]}):
        if not module.startswith("workshop.tasks."):
            raise SystemExit(f"not an exercise module: {module}")
        importlib.import_module(module)  # only the exercises this learner is graded on: torch, not all of them
    imported_all = time.time()
    _warm_up({item["exercise"] for item in job["items"]})
    ready_at = time.time()
    results = [grade_item(item, job) for item in job["items"]]
    out = {"results": results, "started": STARTED, "imports_started": imported_at, "imported": imported_all,
           "ready": ready_at,
           "finished": time.time()}
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
