"""Reads that build many entities pause the garbage collector and always restore it."""

from __future__ import annotations

import gc
import threading

import pytest

from skillmeat_cache import Project
from skillmeat_cache.repositories import common
from skillmeat_cache.repositories import sqlalchemy as repos


@pytest.fixture
def gc_enabled():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_a_read_pauses_the_collector_and_restores_it(uow_factory, gc_enabled, mocker):
    with uow_factory() as uow:
        uow.projects.add(Project(name="p", path="/p"))
    seen = []
    real = repos.SqlAlchemyProjectRepository._where_status

    def spy(self, stmt, status):
        seen.append(gc.isenabled())
        return real(self, stmt, status)

    mocker.patch.object(repos.SqlAlchemyProjectRepository, "_where_status", spy)
    with uow_factory(read_only=True) as uow:
        assert [p.name for p in uow.projects.list()] == ["p"]
    assert seen == [False] and gc.isenabled()


def test_a_failing_read_restores_the_collector(uow_factory, gc_enabled):
    with pytest.raises(Exception, match="status"), uow_factory(read_only=True) as uow:
        uow.projects.list(status="gone")
    assert gc.isenabled()


def test_a_collector_the_application_turned_off_stays_off(uow_factory, gc_enabled):
    gc.disable()
    with uow_factory(read_only=True) as uow:
        uow.artifacts.outdated()
    assert not gc.isenabled()


def test_a_pause_lasts_one_read_however_reads_in_other_threads_overlap(gc_enabled):
    """The read that paused the collector turns it back on when it ends, even while a
    read in another thread goes on: back-to-back overlapping reads never keep it off."""
    started, first_done, second_may_end = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def second_read():
        with common.gc_paused():  # starts while the first read holds the pause
            started.set()
            first_done.wait()
            seen["during"] = gc.isenabled()  # the first has ended: collector back on
            second_may_end.wait()

    with common.gc_paused():
        thread = threading.Thread(target=second_read)
        thread.start()
        started.wait()
        assert not gc.isenabled()
    first_done.set()
    second_may_end.set()
    thread.join()
    assert seen["during"] is True and gc.isenabled()


def test_a_forked_child_gets_its_collector_back(gc_enabled):
    """Forked while another thread's read paused the collector: the child turns it on."""
    import os

    holding, release = threading.Event(), threading.Event()

    def read():
        with common.gc_paused():
            holding.set()
            release.wait()

    thread = threading.Thread(target=read)
    thread.start()
    holding.wait()
    try:
        pid = os.fork()
        if pid == 0:  # the child: exit status says whether the collector is on
            os._exit(0 if gc.isenabled() else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        thread.join()
    assert os.waitstatus_to_exitcode(status) == 0
