"""The pysyncobj seam: the createJournal factory, the registry and the version guard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pysyncobj.journal
import pysyncobj.syncobj
import pysyncobj.version
import pytest

from kingbus.raft import journal
from kingbus.raft.journal import DiskJournal, JournalOptions


@pytest.fixture(autouse=True)
def _restore_factory() -> Iterator[None]:
    original = pysyncobj.syncobj.createJournal
    yield
    journal.uninstall_journal_factory()
    assert pysyncobj.syncobj.createJournal is original


def test_installed_factory_creates_registered_disk_journals(tmp_path: Path) -> None:
    journal.install_journal_factory(JournalOptions(fsync="never", segment_bytes=4096))
    created = pysyncobj.syncobj.createJournal(str(tmp_path / "j"))
    assert isinstance(created, DiskJournal)
    assert created.options.segment_bytes == 4096
    assert journal.journal_for(tmp_path / "j") is created
    assert journal.journal_for(str(tmp_path / "." / "j")) is created
    with pytest.raises(journal.JournalError, match="already open"):
        pysyncobj.syncobj.createJournal(str(tmp_path / "j"))
    created._destroy()
    with pytest.raises(KeyError):
        journal.journal_for(tmp_path / "j")
    again = pysyncobj.syncobj.createJournal(str(tmp_path / "j"))  # reopen after close is fine
    again._destroy()


def test_factory_refuses_an_in_memory_log() -> None:
    journal.install_journal_factory()
    with pytest.raises(journal.JournalError, match="journalFile"):
        pysyncobj.syncobj.createJournal(None)


def test_uninstall_gives_pysyncobj_its_own_journal_back(tmp_path: Path) -> None:
    with journal.journal_factory(JournalOptions(fsync="never")):
        assert isinstance(pysyncobj.syncobj.createJournal(str(tmp_path / "a")), DiskJournal)
    stock = pysyncobj.syncobj.createJournal(str(tmp_path / "b"))
    assert isinstance(stock, pysyncobj.journal.FileJournal)
    stock._destroy()


def test_installing_twice_replaces_the_options(tmp_path: Path) -> None:
    journal.install_journal_factory(JournalOptions(fsync="never", segment_bytes=1000))
    journal.install_journal_factory(JournalOptions(fsync="never", segment_bytes=2000))
    created = pysyncobj.syncobj.createJournal(str(tmp_path / "j"))
    assert created.options.segment_bytes == 2000
    created._destroy()
    journal.uninstall_journal_factory()
    assert pysyncobj.syncobj.createJournal is pysyncobj.journal.createJournal


def test_version_drift_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    journal.check_pysyncobj_version()
    monkeypatch.setattr(pysyncobj.version, "VERSION", "0.3.18")
    with pytest.raises(journal.PysyncobjVersionError, match=r"0\.3\.17.*0\.3\.18"):
        journal.install_journal_factory()
