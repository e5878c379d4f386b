"""kfcli.core.outage: the back-off and the two log lines of an outage, the guarded store."""

from __future__ import annotations

import pytest

from kfcli.core.errors import ConfigError, KfError, NetworkError
from kfcli.core.outage import Outage, StoreUnavailable, guarded, open_waiting


def test_an_outage_is_logged_when_it_begins_and_when_it_ends():
    log, now = [], [100.0]
    outage = Outage("the message store", log.append, clock=lambda: now[0])
    waits = [outage.failed(NetworkError(f"down {i}")) for i in range(8)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]
    assert log == ["the message store: down 0; trying again, backing off up to 5 s"]
    now[0] += 95
    outage.recovered()
    outage.recovered()  # nothing to end
    assert log[1:] == ["the message store works again after 2 min (8 failed tries)"]
    assert not outage.active
    outage.failed(NetworkError("again"))
    assert len(log) == 3  # a new outage is a new line


class _Failing:
    display_url = "sqlite:///x"

    def last_seq(self, corp_id):
        raise ConfigError("cannot write to the store x (attempt to write a readonly database)")

    def messages(self, corp_id):
        yield "first"
        raise KfError("store x: database or disk is full")

    def message(self, corp_id, msgid):
        from kfcli.core.store.base import MediaMissing

        raise MediaMissing("the archived copy is missing")

    def cursor(self, corp_id, open_kfid):
        raise ValueError("a bug, not an outage")


def test_a_guarded_store_tags_its_failures_and_passes_answers():
    from kfcli.core.store.base import MediaMissing

    store = guarded(_Failing())
    assert store.display_url == "sqlite:///x"
    with pytest.raises(StoreUnavailable) as failed:
        store.last_seq("wwA")
    assert failed.value.exit_code == 3 and isinstance(failed.value.cause, ConfigError)
    rows = store.messages("wwA")
    assert next(rows) == "first"
    with pytest.raises(StoreUnavailable, match="disk is full"):
        next(rows)
    with pytest.raises(MediaMissing):
        store.message("wwA", "m1")
    with pytest.raises(ValueError):
        store.cursor("wwA", "wkA")


def test_open_waiting_waits_for_an_unreachable_store_but_not_for_a_misconfigured_one():
    log, tries = [], []

    def opener():
        tries.append(1)
        if len(tries) < 3:
            raise NetworkError("cannot reach the PostgreSQL store at db:5432")
        return "store"

    outage = Outage("the message store", log.append, clock=lambda: 0.0)
    assert open_waiting(opener, outage, sleep=lambda s: None) == "store"
    assert len(tries) == 3 and len(log) == 2

    def misconfigured():
        raise ConfigError("PostgreSQL at db:5432 refused the login")

    with pytest.raises(ConfigError):
        open_waiting(misconfigured, outage, sleep=lambda s: None)


def test_a_guarded_store_hands_files_over_as_they_are(tmp_path):
    """A plain file is an iterator (of lines): the media file a PostgreSQL store makes for
    the archive must stay a file, not become a generator (msg sync --follow crashed on the
    first image of a PostgreSQL store), nor a stop for a newer schema an outage."""
    import io

    from kfcli.core.store.base import SchemaTooNew

    class Store:
        def new_media_file(self):
            import tempfile

            return tempfile.TemporaryFile()

        def commit_page(self):
            raise SchemaTooNew("migrated past this build")

    file = guarded(Store()).new_media_file()  # type: ignore[arg-type]
    with file:
        assert isinstance(file, io.IOBase)
        file.write(b"data")
        file.seek(0)
        assert file.read() == b"data"
    with pytest.raises(SchemaTooNew):
        guarded(Store()).commit_page()  # type: ignore[arg-type]
