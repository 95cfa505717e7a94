"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input: names the problem and, in ``fix``, what to do about it."""

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem} ({self.fix})" if self.fix else self.problem


def unknown_name(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> UsageError:
    """The error for a name that is not one of ``valid`` (model, dataset, preset, key, ...)."""
    return UsageError(f"unknown {kind} {name!r}", f"valid: {', '.join(sorted(valid))}")
