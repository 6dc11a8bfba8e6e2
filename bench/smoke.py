"""Smoke mode: every benchmark at tiny sizes, so that a test runs them all in seconds.

Set ``LUCIDA_BENCH_SMOKE=1`` (``python bench/run_all.py --smoke`` does, with :func:`smoke_env`;
the child processes a benchmark starts inherit it). A smoke run goes through the same steps as a
full run and prints its numbers, but judges no goal or ratio: at these sizes they mean nothing.
"""

from __future__ import annotations

import os

#: The environment variable that turns smoke mode on.
SMOKE_ENV = "LUCIDA_BENCH_SMOKE"
SMOKE = os.environ.get(SMOKE_ENV, "") not in ("", "0")


def sized(full, smoke):
    """Return ``smoke`` in smoke mode, else ``full``.

    Parameters
    ----------
    full : object
        The value of a real run (an image size, a number of rounds, ...).
    smoke : object
        The value of a smoke run.

    Returns
    -------
    object
    """
    return smoke if SMOKE else full


def smoke_env(env: dict[str, str]) -> dict[str, str]:
    """Return ``env`` with smoke mode on and one OpenMP thread per process.

    On a busy machine, OpenMP threads that spin while waiting for a core make tiny passes tens
    of times slower than one thread does.

    Parameters
    ----------
    env : dict of str to str
        The environment to start from (``os.environ``).

    Returns
    -------
    dict of str to str
    """
    return {**env, SMOKE_ENV: "1", "OMP_NUM_THREADS": "1"}
