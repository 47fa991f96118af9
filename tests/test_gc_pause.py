"""Reads that build many entities pause the garbage collector and always restore it."""

from __future__ import annotations

import gc
import threading

import pytest

from skillmeat_cache import Project
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


def test_overlapping_pauses_in_threads_restore_the_collector_once_all_end(gc_enabled):
    inside, release = threading.Barrier(2), threading.Event()

    def hold():
        with repos._gc_paused():
            inside.wait()
            release.wait()

    thread = threading.Thread(target=hold)
    thread.start()
    with repos._gc_paused():
        inside.wait()
    assert not gc.isenabled()  # the other thread's pause still holds
    release.set()
    thread.join()
    assert gc.isenabled()
