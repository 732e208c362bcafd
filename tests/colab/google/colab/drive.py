"""Stand-in for ``google.colab.drive``: ``mount`` makes ``MOUNTPOINT/MyDrive`` on the local disk."""

from pathlib import Path

mounted: list[str] = []


def mount(mountpoint: str, force_remount: bool = False, timeout_ms: int = 120000, readonly: bool = False) -> None:
    (Path(mountpoint) / "MyDrive").mkdir(parents=True, exist_ok=True)
    mounted.append(str(mountpoint))
    print(f"Mounted at {mountpoint}")
