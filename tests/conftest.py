"""Shared test set-up: every test starts with the training logger as a fresh process has it."""

import logging

import pytest


@pytest.fixture(autouse=True)
def fresh_training_logger():
    """Training's setup_logging gives the 'spkid.train' logger its own file and console handlers and
    stops it propagating to the root logger (where pytest's caplog listens); undo that after each
    test, so that a later test's caplog sees training's messages whichever tests ran before it."""
    yield
    log = logging.getLogger("spkid.train")
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    log.propagate = True


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node Slurm cluster (tests/slurm_cluster.py) for the whole session, started on
    first use and stopped at the end; a skip naming the reason where its daemons cannot start."""
    from slurm_cluster import ClusterUnavailable, start_cluster

    try:
        cluster = start_cluster()
    except ClusterUnavailable as e:
        pytest.skip(f"no Slurm test cluster: {e}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def two_process_run(tmp_path_factory):
    """A tiny system trained by one torchrun of two CPU processes (tests/two_process_run.py), for
    the pre-emption tests to compare their resumed runs with."""
    from two_process_run import train_uninterrupted

    return train_uninterrupted(tmp_path_factory.mktemp("two_process_run"))
