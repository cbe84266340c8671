"""User-facing errors: one line naming the problem and the fix, and a non-zero exit code.

Exit codes of `python -m study`: 0 done; 1 a user-fixable error (KitError); 2 a bad spec, study file,
`--set` override or model name; 3 missing or corrupt data; 4 (EXIT_INCOMPLETE) `study run` stopped by
its time guard with cells missing (finished rows are kept: re-run to continue); 130 interrupted (Ctrl-C),
129 / 143 stopped by SIGHUP / SIGTERM (128 + the signal's number, as shells report it).
"""

#: Where a worker process of `study run` leaves its error line and exit code for the parent to report (env var).
ERROR_FILE = "STUDY_ERROR_FILE"

#: `study run` finished its studies' trials as far as the time guard allowed, but cells are missing.
EXIT_INCOMPLETE = 4


class KitError(Exception):
    """An error the user can fix; the CLI prints its message on one line, with no traceback."""

    exit_code = 1


class SpecError(KitError):
    """A malformed spec file or spec value (exit code 2)."""

    exit_code = 2

    @classmethod
    def at(cls, where: str, key: str, problem: str, allowed: str) -> "SpecError":
        """The kit's one message shape for a bad value: "file: key: problem; allowed: …"."""
        return cls(f"{where}: {key}: {problem}; allowed: {allowed}")


class UnknownModelError(KitError):
    """A model name that is not registered (exit code 2)."""

    exit_code = 2


class DataError(KitError):
    """A dataset that is missing, corrupt or inconsistent (exit code 3)."""

    exit_code = 3


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a `timeout`, a cancelled CI job, a closed terminal), handled like Ctrl-C: workers stop,
    finished rows stay, and the exit code is 128 + the signal's number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
