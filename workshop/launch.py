"""``workshop torchrun ...``: PyTorch's ``torchrun``, with its failures told in one line.

``workshop torchrun --nproc_per_node 2 train --config my.yaml`` runs exactly
``torchrun --nproc_per_node 2 -m workshop train --config my.yaml``: the same argument parser and
the same elastic agent (``torch.distributed.run``), nothing home-made. The difference is what you
read when the launch fails: instead of the agent's traceback, one ``error:`` line that says what
went wrong and what to change (a port already in use, a rendezvous that timed out because a
machine did not join, which rank died and why).

Shape:
    argv: [torchrun options..., workshop command, its options...]
"""

from __future__ import annotations

import sys

from workshop.errors import WorkshopError

RUNNABLE = ("train", "quickstart")  # workshop commands that train, and so can run on several processes


def split_arguments(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split ``argv`` into torchrun's options and the workshop command with its options.

    Raises:
        WorkshopError: no workshop command in ``argv`` (the message shows the form).

    Example:
        >>> split_arguments(["--nproc_per_node", "2", "train", "--config", "a.yaml"])
        (['--nproc_per_node', '2'], ['train', '--config', 'a.yaml'])
    """
    for i, token in enumerate(argv):
        if token in RUNNABLE:
            return argv[:i], argv[i:]
    raise WorkshopError(
        "workshop torchrun needs torchrun's options and then a workshop command "
        f"({' or '.join(RUNNABLE)}), e.g.: workshop torchrun --nproc_per_node 2 train --config my.yaml"
    )


def torchrun(argv: list[str], program: tuple[str, ...] = ("-m", "workshop")) -> int:
    """Run ``torchrun OPTIONS -m workshop COMMAND ...``; return its exit status, failures as one line.

    Args:
        argv: torchrun's options, then the workshop command and its options.
        program: what torchrun starts in every process (default: this package's command line).

    Returns:
        0 when every process finished; 2 when the launch or a process failed (message on stderr);
        130 after Ctrl-C.
    """
    try:
        options, command = split_arguments(argv)
    except WorkshopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from torch.distributed import run

    args = run.parse_args([*options, *program, *command])
    try:
        run.run(args)
    except BaseException as exc:  # the agent's exceptions, translated
        message = describe_launch_failure(exc, args)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) or type(exc).__name__ == "SignalException" else 2
    return 0


def describe_launch_failure(exc: BaseException, args) -> str | None:
    """One line for a failure of ``torchrun``'s agent, or None for an exception it does not know."""
    from torch.distributed import DistError
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError, RendezvousTimeoutError

    endpoint = args.rdzv_endpoint or f"{args.master_addr or '127.0.0.1'}:{args.master_port}"
    if isinstance(exc, ChildFailedError):
        return _child_failures(exc)
    if isinstance(exc, (KeyboardInterrupt, SignalException)):
        return "interrupted: torchrun stopped every process of the run; the checkpoints written so far are intact"
    if isinstance(exc, RendezvousTimeoutError):
        return (f"torchrun's rendezvous at {endpoint} timed out: not every machine joined (--nnodes {args.nnodes}). "
                "Start the same command on every machine with the same --rdzv-endpoint and --rdzv-id, check "
                "that the port is reachable from all of them, or raise --rdzv-conf join_timeout=SECONDS")
    if isinstance(exc, RendezvousError):
        return f"torchrun's rendezvous at {endpoint} failed: {exc}"
    if isinstance(exc, DistError):
        text = str(exc)
        if "EADDRINUSE" in text or "address already in use" in text:
            return (f"torchrun could not listen on {endpoint}: the port is already in use (another run?). "
                    "Choose a free one with --master-port PORT (or --rdzv-endpoint HOST:PORT), or use --standalone")
        return f"torchrun could not reach its rendezvous at {endpoint}: {text.splitlines()[0] if text else exc!r}"
    return None


def _child_failures(exc) -> str:
    parts = []
    for rank, failure in sorted(exc.failures.items()):
        if failure.exitcode < 0:
            why = f"killed by {failure.signal_name()}"
        else:
            why = f"exit status {failure.exitcode}"
        message = failure.message if isinstance(failure.message, str) else failure.message.get("message", "")
        if message and not message.startswith(("To enable traceback", "Signal ")):
            why += f": {message}"
        parts.append(f"rank {rank} (local rank {failure.local_rank}) {why}")
    return f"the run stopped: {len(parts)} process(es) failed; " + "; ".join(parts)
