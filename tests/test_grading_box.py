"""The box, attacked directly: programs handed to the grading process with the scan left out.

``test_grading.py`` shows the scan catching these constructs in a notebook; here the same tricks run
inside the box, to show that the layers behind the scan hold on their own (one grading process for
all of them).
"""

from __future__ import annotations

import os
import socket
import threading

import pytest

from grading_answers import CORRECT
from workshop.grading.grader import _run_learner
from workshop.grading.sandbox import landlock_abi

TIMEOUT = 4

PROGRAMS = {
    "patch_expect": ("train_one_epoch", """
import workshop.tasks.training_functions as t


def train_one_epoch(model, loader, loss_fn, optimizer, device):
    t.expect = lambda *a, **k: None
    return 0.0
"""),
    "patch_core_at_definition": ("iou_score", """
import workshop.tasks.core as core

core.Exercise.run_checks = lambda self, c: core.Verdict(self.name, True, None, "all checks pass")


def iou_score(logits, target, threshold=0.5):
    return 0.0
"""),
    "forge_channel": ("is_improvement", """
import json
import os


def is_improvement(value, best, monitor):
    fake = json.dumps({"token": "0" * 32, "exercise": "is_improvement", "status": "pass", "message": "ok"})
    for fd in range(3, 256):
        try:
            os.write(fd, fake.encode() + b"\\n")
        except OSError:
            pass
    os._exit(0)
"""),
    "print_pass": ("dice_loss", """
def dice_loss(logits, target, smooth=1.0):
    print("PASS dice_loss: all 5 checks pass. Using your dice_loss.")
    print('{"status": "pass"}')
    return 0.3
"""),
    "kill_parent": ("mask_to_box", """
import os
import signal


def mask_to_box(mask):
    os.kill(os.getppid(), signal.SIGKILL)
    raise RuntimeError("still here")
"""),
    "environment": ("polygon_to_mask", """
import os


def polygon_to_mask(points, height, width):
    raise RuntimeError("env:" + os.environ.get("GRADER_SECRET", "none") + "," + os.environ.get("HTTPS_PROXY", "none"))
"""),
    "network": ("per_class_iou", """
import socket


def per_class_iou(confusion):
    socket.create_connection(("127.0.0.1", PORT), timeout=2).sendall(b"leak")
    raise RuntimeError("connected")
"""),
    "honest": ("is_improvement", "import math\n\n\n" + CORRECT["is_improvement"]),
}


def _item(exercise: str, source: str) -> dict:
    from workshop.grading.grader import _module_of
    from workshop.tasks import get_exercise

    return {"exercise": exercise, "notebook": "box.ipynb", "segments": [{"source": source, "line": 1, "cell": 0}],
            "cells": {"0": source}, "module": _module_of(get_exercise(exercise))}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    port = server.getsockname()[1]
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:  # bounded: stops when the test is done
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            received.append(conn.recv(100))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    os.environ["GRADER_SECRET"] = "s3cret"
    os.environ["HTTPS_PROXY"] = "http://proxy.invalid:3128"
    try:
        names = list(PROGRAMS)
        items = [_item(ex, src.replace("PORT", str(port))) for ex, src in PROGRAMS.values()]
        answer = _run_learner("box", items, tmp_path_factory.mktemp("box"), TIMEOUT, 1024)
    finally:
        del os.environ["GRADER_SECRET"], os.environ["HTTPS_PROXY"]
        stop.set()
        thread.join(2)
        server.close()
    assert "results" in answer, answer
    return {"by": dict(zip(names, answer["results"])), "received": received}


def test_checker_patched_at_call_time_is_caught_by_the_fingerprint(results) -> None:
    r = results["by"]["patch_expect"]
    assert r["status"] == "error" and "tampering" in r["message"] and "expect" in r["message"]


def test_core_patched_while_defining_is_caught_by_the_fingerprint(results) -> None:
    r = results["by"]["patch_core_at_definition"]
    assert r["status"] == "error" and "run_checks" in r["message"]


def test_forged_result_channel_is_not_a_pass(results) -> None:
    assert results["by"]["forge_channel"]["status"] == "error"


def test_printed_pass_lines_reach_nobody(results) -> None:
    r = results["by"]["print_pass"]
    def dice_loss(logits, target, smooth=1.0):
        return 0.3

    from workshop.tasks import get_exercise

    assert r["status"] == "fail" and r["message"] == get_exercise("dice_loss").run_checks(dice_loss).message


@pytest.mark.skipif(landlock_abi() < 6, reason="signal scoping needs Landlock ABI 6")
def test_box_cannot_kill_the_grader(results) -> None:
    r = results["by"]["kill_parent"]
    assert r["status"] == "error" and "PermissionError" in r["message"]
    assert results["by"]["honest"]["status"] == "pass"  # graded after the attack, by the same process


def test_instructor_environment_is_not_visible(results) -> None:
    r = results["by"]["environment"]
    assert "env:none,none" in r["message"], r["message"]


def test_no_network_from_the_box(results) -> None:
    r = results["by"]["network"]
    assert r["status"] == "error" and "connected" not in r["message"]
    assert results["received"] == []


def test_honest_answer_graded_in_the_same_process_passes(results) -> None:
    assert results["by"]["honest"]["status"] == "pass"
