"""What the fault-drill tools (``tools.chaos``, ``tools.chaos_paging``) share: choosing the
drills from ``--only`` and printing a drill's verdict."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def chosen(only: str, known: Iterable[str]) -> list[str]:
    """The drills named in ``--only`` (comma-separated); exits naming any unknown one."""
    names = [d for d in only.split(",") if d]
    unknown = set(names) - set(known)
    if unknown:
        raise SystemExit(f"unknown drills: {sorted(unknown)}")
    return names


def verdict(name: str, failures: Sequence[str], summary: str) -> bool:
    """Print ``PASS``/``FAIL`` with the drill's figures and its first failures; passed?"""
    passed = not failures
    print(f"  {'PASS' if passed else 'FAIL'} {name}: {summary}", flush=True)
    for f in failures[:10]:
        print(f"    - {f}")
    return passed
