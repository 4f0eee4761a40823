"""Ctrl-C and SIGTERM stop training between two steps, so that a save made then resumes exactly.

A training step changes several things one after the other: it draws a minibatch from the agent's
random generator, steps optimisers, then advances the step counters. A ``KeyboardInterrupt``
raised between two of these leaves an agent that no save can resume exactly, and SIGTERM
(``kill``, ``timeout``, SLURM preemption, ``docker stop``) by default ends the process without
saving anything. While :func:`defer_interrupts` is active, both signals are recorded instead of
acted on, and :meth:`DeferredInterrupts.raise_pending` raises them, as a
:class:`TrainingSignal` (a ``KeyboardInterrupt``), where the training loop calls it: between two
whole steps. A step that draws samples for minutes (a support renewal) calls it too, between two
sampling chunks, and undoes what it changed before the signal leaves it (its random generator
rewound), so the training still stops whole, between the step before and the interrupted one, and
a resumed run redoes the interrupted step as the uninterrupted run did. A second Ctrl-C while one
is pending interrupts at once.

A signal the process ignores stays ignored. A job that a script or another non-interactive shell
starts in the background (``python train.py &``, ``nohup python train.py &``) begins with SIGINT
ignored: such a run goes on when it receives SIGINT, and SIGTERM still saves and stops it.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingSignal(KeyboardInterrupt):
    """Training was stopped by the signal ``signal_name`` (``"SIGINT"`` for Ctrl-C, ``"SIGTERM"``).

    ``at_step_boundary`` is True when it was raised between two training steps, so the agent is
    whole and a save of it resumes exactly; False for a second Ctrl-C, which stops at once, possibly
    in the middle of a step.
    """

    def __init__(self, signum: int, at_step_boundary: bool = True):
        super().__init__(signum, at_step_boundary)
        self.signum, self.at_step_boundary = signum, at_step_boundary

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    def __str__(self) -> str:
        return f"{self.signal_name} {'between two steps' if self.at_step_boundary else 'in the middle of a step'}"


class DeferredInterrupts:
    """What :func:`defer_interrupts` yields: the signal received and not raised yet (``received``)."""

    def __init__(self) -> None:
        self.received: int | None = None

    def raise_pending(self) -> None:
        """Raise :class:`TrainingSignal` for the signal received since the last call, if any;
        call it where the agent is whole (between two steps), or inside a step whose changes so far
        are undone as the signal passes."""
        if self.received is not None:
            signum, self.received = self.received, None
            raise TrainingSignal(signum)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None and signum == signal.SIGINT:
            self.received = None
            raise TrainingSignal(signum, at_step_boundary=False)
        if self.received is None:
            self.received = signum
            name = signal.Signals(signum).name
            again = " (Ctrl-C again stops it at once, mid-step)" if signum == signal.SIGINT else ""
            _tell(f"\n{name} received: training stops after the current step{again}\n")


def _tell(message: str) -> None:
    try:
        sys.stderr.write(message)
        sys.stderr.flush()
    except (OSError, RuntimeError, ValueError, AttributeError):  # no stderr, closed, or written to right now
        pass


@contextmanager
def defer_interrupts() -> Iterator[DeferredInterrupts]:
    """Hold SIGINT and SIGTERM back while the block runs; its code raises them at safe points with
    :meth:`DeferredInterrupts.raise_pending`, and a signal still pending when the block ends is
    raised on leaving it.

    A signal is taken over only where it has its default behaviour (``KeyboardInterrupt`` for
    SIGINT, ending the process for SIGTERM): a handler the program installed, and an ignored signal
    (SIGINT in a job a script started in the background), stay as they are. The previous handlers
    are back when the block ends, normally or by an exception. Outside the main thread, where
    Python cannot set signal handlers (and signals are not delivered), nothing is deferred.
    """
    deferred = DeferredInterrupts()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        try:
            for signum in DEFERRED_SIGNALS:
                if signal.getsignal(signum) in (signal.default_int_handler, signal.SIG_DFL):
                    previous[signum] = signal.signal(signum, deferred._handle)
        except ValueError:  # not the main interpreter: signals are not ours to handle
            pass
    try:
        yield deferred
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    deferred.raise_pending()
