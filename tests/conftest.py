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
