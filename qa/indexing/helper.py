"""A second core for the build: one forked process that shares a batch's CPU-bound work.

While a build is inside `sharing()`, `share(fn, items)` cuts `items` into pieces that this
process and a helper process take in turn, each running `fn` over its pieces, until none is
left: whichever is faster (the other core may be busy with something else) does more, and
neither waits long at the end. The build hands it each batch's chunking, model pass and typing
(qa/indexing/build.py): two one-thread model passes side by side outrun one pass on two
threads, and spaCy's typing runs on one core. The helper is forked on the first batch that
needs it, so it shares the loaded models' memory, and a run with nothing to embed never starts
one.

It is a speed-up and never a risk to the build: it is only used on Linux, from the main thread
(a server reloading its knowledge base in a worker thread does the work itself; forking a
process full of threads and sockets is not safe), with two usable cores. It ignores Ctrl-C,
dies with its parent (PR_SET_PDEATHSIG, so even a SIGKILLed `qa index` leaves nothing behind),
and exits before `sharing()` does, so before the store's writer lets go of its lock. If it
fails in any way, or takes far longer than this process took for a piece, it is killed, its
pieces are done here, and it is not used again in that run.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
# The helper's last piece may take this long, plus this many times what one of our pieces took,
# before it is taken for hung (a fork that inherited a held lock deadlocks; it never errs).
GRACE_S = 60.0
SLACK = 10.0
# A shared batch is cut into at most PIECES pieces of about MIN_PIECE items or more: enough
# that the one finishing first waits little for the other, few enough that each piece stays a
# long model pass.
PIECES = 16
MIN_PIECE = 32
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass
class _Session:
    owner: int  # the thread that opened `sharing()`; no other thread uses its helper
    pool: ProcessPoolExecutor | None = None
    pid: int | None = None
    failed: bool = False


_session: _Session | None = None
# The next piece to take, and its lock: made before the helper is forked, so both processes
# hold the same shared memory.
_next: Any = None
_next_lock: Any = None


@contextlib.contextmanager
def sharing() -> Iterator[None]:
    """While open, `share` may hand pieces of a batch to a helper process (see the module doc).
    Nested or from another thread than the main one, it does nothing."""
    global _session
    if _session is not None or not _usable():
        yield
        return
    session = _session = _Session(threading.get_ident())
    try:
        yield
    except BaseException:
        _stop(session, kill=True)
        raise
    finally:
        _session = None
        _stop(session, kill=False)


def share(
    fn: Callable[[Sequence[T]], list[R]],
    items: Sequence[T],
    here: Callable[[Sequence[T]], list[R]] | None = None,
    size: Callable[[T], int] | None = None,
) -> list[R] | None:
    """fn(items), with the helper doing some of the pieces: None where no helper may be used
    (outside `sharing()`, another thread, or after a failure), and the caller does it all.

    `here`, if given, is what this process runs over its pieces instead of `fn` (the same work,
    with what cannot cross to another process, such as a progress bar). With `size`, pieces
    are cut from the items sorted biggest first (like with like, and the small ones last);
    the results come back in the items' order either way."""
    session = _session
    if session is None or session.owner != threading.get_ident() or session.failed:
        return None
    pool = session.pool or _start(session)
    if pool is None:
        return None
    order = list(range(len(items)))
    if size is not None:
        order.sort(key=lambda i: -size(items[i]))
    pieces = [
        [items[i] for i in order[a:b]] for a, b in itertools.pairwise(_cuts(order, items, size))
    ]
    count = len(pieces)
    done: dict[int, list[R]] = {}
    with _next_lock:
        _next.value = 0  # the helper is idle between batches
    try:
        theirs = pool.submit(_take, fn, pieces)
    except Exception as error:  # a broken pool refuses work at once
        _give_up(session, error)
        return None
    began = time.perf_counter()
    try:
        while (k := _claim()) is not None and k < count:
            done[k] = (here or fn)(pieces[k])
    except BaseException as error:  # ours failed: the helper must not go on taking pieces
        _give_up(session, error)
        raise
    per_piece = (time.perf_counter() - began) / max(1, len(done))
    try:
        if k is None:
            raise TimeoutError("the helper holds the pieces' lock")
        done.update(theirs.result(timeout=GRACE_S + SLACK * per_piece))
    except Exception as error:  # died, hung, or raised: its pieces are done here
        _give_up(session, error)
        done.update({k: fn(piece) for k, piece in enumerate(pieces) if k not in done})
    results: list[R] = [None] * len(items)  # type: ignore[list-item]
    ordered = itertools.chain.from_iterable(done[k] for k in range(count))
    for i, result in zip(order, ordered, strict=True):
        results[i] = result
    return results


def _cuts(order: list[int], items: Sequence[T], size: Callable[[T], int] | None) -> list[int]:
    """Where the pieces of `order` begin and end: up to PIECES pieces of about MIN_PIECE items
    or more (two at the least), of like total size when `size` is given."""
    count = max(2, min(PIECES, len(order) // MIN_PIECE))
    weights = [size(items[i]) if size is not None else 1 for i in order]
    total, cuts, running = sum(weights), [0], 0
    for position, weight in enumerate(weights[:-1], start=1):
        running += weight
        if running * count >= total * len(cuts) and len(cuts) < count:
            cuts.append(position)
    return [*cuts, len(order)]


def _claim() -> int | None:
    """The next piece's number (taken), or None if the lock stays held (by a helper that died
    holding it)."""
    if not _next_lock.acquire(timeout=5.0):
        return None
    try:
        k = int(_next.value)
        _next.value = k + 1
        return k
    finally:
        _next_lock.release()


def _take(fn: Callable[[Sequence[T]], list[R]], pieces: list[list[T]]) -> dict[int, list[R]]:
    """In the helper: pieces in turn, while any is left."""
    done = {}
    while (k := _claim()) is not None and k < len(pieces):
        done[k] = fn(pieces[k])
    return done


def _usable() -> bool:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return (
        sys.platform == "linux"
        and threading.current_thread() is threading.main_thread()
        and cores >= 2
    )


def _start(session: _Session) -> ProcessPoolExecutor | None:
    global _next, _next_lock
    context = multiprocessing.get_context("fork")
    _next, _next_lock = context.RawValue("i", 0), context.Lock()
    pool = ProcessPoolExecutor(
        1,
        mp_context=context,
        initializer=_in_helper,
        initargs=(os.getpid(),),
    )
    try:
        session.pid = pool.submit(os.getpid).result(timeout=GRACE_S)
    except Exception as error:  # fork refused (memory), the initializer failed...
        session.pool = pool
        _give_up(session, error)
        return None
    session.pool = pool
    return pool


def _give_up(session: _Session, error: BaseException) -> None:
    log.warning("the build's helper process failed (%r); working in this process", error)
    session.failed = True
    _stop(session, kill=True)


def _stop(session: _Session, kill: bool) -> None:
    pool, pid = session.pool, session.pid
    session.pool = session.pid = None
    if pool is None:
        return
    if kill:  # by the pid it told us, or the pool's own record if it never did (hung at start)
        pids = {pid} if pid is not None else set(getattr(pool, "_processes", None) or ())
        for number in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(number, signal.SIGKILL)
    pool.shutdown(wait=True, cancel_futures=True)


def _in_helper(parent: int) -> None:
    """The helper's start: Ctrl-C is the parent's to handle, and the parent's death (even by
    SIGKILL, which runs no cleanup) is the helper's too. Without that guarantee it exits, and
    the build goes on without it."""
    global _session
    _session = None  # the parent's, copied by the fork: the helper never starts a helper
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    if prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0 or os.getppid() != parent:
        os._exit(1)  # no death signal, or the parent died before it was set
