"""Shared test fixtures."""
import os

import pytest
import torch


@pytest.fixture
def one_thread():
    """One torch thread: small problems only gain overhead (and contention) from more."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# an unexpected exception inside a command must fail its test, not turn into the
# command line's one-line "internal error" report (a2a_cli.cli.user_errors)
os.environ.setdefault("A2A_DEBUG", "1")

# The tests' tensors are tiny: more threads only add overhead, and on a machine that is
# busy with other work, OpenMP threads waiting on each other made single passes up to
# 80 times slower. The commands the tests start inherit the setting.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
