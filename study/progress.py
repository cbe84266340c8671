"""Progress of a study run: a live bar with ETA on a terminal, plain periodic log lines off one."""

from __future__ import annotations

import logging
import os
import sys
import time

log = logging.getLogger("study.progress")


def _interval_s() -> float:
    """Seconds between plain progress lines off a terminal (env STUDY_PROGRESS_S; default 60)."""
    return float(os.environ.get("STUDY_PROGRESS_S") or 60)


def eta_text(done_now: int, total: int, done_at_start: int, elapsed_s: float) -> str:
    """The estimated time left from this run's own pace (rows finished since it began), or "?" before the first."""
    made = done_now - done_at_start
    if made <= 0 or elapsed_s <= 0:
        return "?"
    left = max(0, total - done_now) * elapsed_s / made
    return f"{left:.0f} s" if left < 120 else f"{left / 60:.0f} min"


class Progress:
    """Studies done/total, rows done/total, best so far and ETA: a tqdm bar on a terminal; off one (CI, nohup,
    a log file) a plain line at most every STUDY_PROGRESS_S seconds and one per finished study."""

    def __init__(self, contexts):
        from tqdm import tqdm

        self.contexts = contexts
        # a live bar on a terminal; in a log (CI, nohup) one line per finished study instead
        self.bar = tqdm(total=1, file=sys.stderr, unit="trial", dynamic_ncols=True, smoothing=0.1, disable=None)
        self._redirect = None
        if not self.bar.disable:  # log lines are written above the live bar, not through it
            from study.logs import redirect_to_bar

            self._redirect = redirect_to_bar()
            self._redirect.__enter__()
        self.study_index, self.ctx, self.began = 0, None, time.time()
        self.run_began, self.done_at_start, self.last_line = time.time(), None, time.time()
        self.refresh_total()

    def refresh_total(self) -> None:
        """Recount the rows every study will have (adaptive seeds grow it)."""
        # imported here, not at the top: `study --help` imports this module and must not load torch
        from study.cells import expected_rows

        self.bar.total = sum(expected_rows(c) for c in self.contexts)
        self.update()

    def start(self, index: int, ctx) -> None:
        """A new study begins (the previous one is done)."""
        if self.ctx is not None and self.bar.disable:
            log.info(f"study {self.study_index}/{len(self.contexts)} {self.ctx.spec.name}: done "
                     f"({time.time() - self.began:.0f} s)")
        self.study_index, self.ctx, self.began = index, ctx, time.time()
        self.update()

    def update(self) -> None:
        """Recount finished rows from the results tables and show the best validation accuracy so far."""
        from study import results
        from study.cells import expected_rows

        done, best = 0, None
        for c in self.contexts:
            rows = [r for r in results.load_rows(c.results_path) if r.get("profile") == c.profile]
            done += min(len(rows), expected_rows(c))
            if c is self.ctx:
                accs = [r["val_accuracy"] for r in rows if isinstance(r.get("val_accuracy"), (int, float))]
                best = max(accs, default=None)
        self.bar.n = done
        name = self.ctx.spec.name if self.ctx else ""
        self.bar.set_description(f"study {self.study_index}/{len(self.contexts)} {name}")
        self.bar.set_postfix_str(f"best val {100 * best:.1f}%" if best is not None else "")
        if self.done_at_start is None:
            self.done_at_start = done
        if self.bar.disable and time.time() - self.last_line >= _interval_s():
            self.last_line = time.time()
            eta = eta_text(done, int(self.bar.total), self.done_at_start, time.time() - self.run_began)
            log.info(f"progress: study {self.study_index}/{len(self.contexts)} {name}: {done}/{self.bar.total} trials, "
                     f"ETA {eta}" + (f", best val {100 * best:.1f}%" if best is not None else ""))

    def close(self) -> None:
        """Finish the bar."""
        self.start(len(self.contexts) + 1, None)
        self.bar.close()
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None
