"""The connection cache, through ``run_query`` on real SQLite connections that a
recording subclass of the SQLite plugin lets us see."""

import threading

import pytest

import plugins
from plugins import QueryFailed


def run(options, sql="SELECT 1", data_source_id="ds-1"):
    return plugins.run_query(data_source_id=data_source_id, kind="recording_sqlite", options=options,
                             query={"query": sql})


def is_closed(connection):
    try:
        connection.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - sqlite3.ProgrammingError: closed database
        return True
    return False


def test_two_runs_share_one_connection(recording_sqlite):
    plugin_class, options = recording_sqlite
    run(options)
    run(options)
    assert len(plugin_class.opened) == 1 and plugin_class.closed == []
    assert plugins.connection_cache.stats() == {"total": 1, "kinds": {"recording_sqlite": {"active": 0, "idle": 1}},
                                                "organizations": {("recording_sqlite", None): 1}}


def test_connections_expire_after_the_ttl(recording_sqlite, plugin_settings):
    plugin_class, options = recording_sqlite
    plugin_settings(CONNECTION_CACHE_TTL_SECONDS=0.3)
    run(options)
    run(options)
    assert len(plugin_class.opened) == 1
    threading.Event().wait(0.4)
    run(options)
    assert len(plugin_class.opened) == 2
    assert plugin_class.closed == plugin_class.opened[:1] and is_closed(plugin_class.opened[0])


def test_idle_connections_are_closed(recording_sqlite, plugin_settings):
    plugin_class, options = recording_sqlite
    plugin_settings(CONNECTION_CACHE_IDLE_SECONDS=0.3, CONNECTION_CACHE_TTL_SECONDS=60)
    for _ in range(3):  # each use keeps it fresh: 3 x 0.15 s > the idle limit
        run(options)
        threading.Event().wait(0.15)
    assert len(plugin_class.opened) == 1
    threading.Event().wait(0.35)
    plugins.connection_cache.sweep()
    assert plugin_class.closed == plugin_class.opened
    assert plugins.connection_cache.stats()["total"] == 0


def test_size_cap_evicts_the_least_recently_used(recording_sqlite, plugin_settings):
    plugin_class, options = recording_sqlite
    plugin_settings(CONNECTION_CACHE_MAX_SIZE=2)
    for data_source_id in ("a", "b", "a", "c"):
        run(options, data_source_id=data_source_id)
    assert plugin_class.closed == [plugin_class.opened[1]]
    run(options, data_source_id="a")
    run(options, data_source_id="c")
    assert len(plugin_class.opened) == 3 and plugins.connection_cache.stats()["total"] == 2


def test_new_options_close_the_old_connection(recording_sqlite):
    plugin_class, options = recording_sqlite
    run(options)
    run({**options, "note": "edited"})
    assert len(plugin_class.opened) == 2
    assert plugin_class.closed == plugin_class.opened[:1] and is_closed(plugin_class.opened[0])
    run({**options, "note": "edited"})
    assert len(plugin_class.opened) == 2


def test_failed_run_closes_its_connection(recording_sqlite):
    plugin_class, options = recording_sqlite
    run(options)
    with pytest.raises(QueryFailed):
        run(options, "SELECT * FROM no_such_table")
    assert plugin_class.closed == plugin_class.opened[:1]
    assert plugins.connection_cache.stats()["total"] == 0
    run(options)
    assert len(plugin_class.opened) == 2


def test_invalidate_closes_the_data_sources_connections(recording_sqlite):
    plugin_class, options = recording_sqlite
    run(options, data_source_id="kept")
    run(options, data_source_id="dropped")
    plugins.invalidate("dropped")
    assert plugin_class.closed == plugin_class.opened[1:]
    run(options, data_source_id="kept")
    assert len(plugin_class.opened) == 2


def test_a_checked_out_connection_is_never_shared(recording_sqlite):
    _, options = recording_sqlite
    plugin = plugins.get_plugin("recording_sqlite")
    deadline = plugins.Deadline(5)
    first = plugins.connection_cache.checkout("shared", plugin, options, deadline)
    leased = {}
    thread = threading.Thread(target=lambda: leased.setdefault(
        "lease", plugins.connection_cache.checkout("shared", plugin, options, deadline)))
    thread.start()
    thread.join(5)
    second = leased["lease"]
    assert second.connection is not first.connection
    assert plugins.connection_cache.stats()["kinds"]["recording_sqlite"] == {"active": 2, "idle": 0}
    plugins.connection_cache.checkin(first)
    plugins.connection_cache.checkin(second)
    assert plugins.connection_cache.stats()["kinds"]["recording_sqlite"] == {"active": 0, "idle": 2}
    assert plugins.connection_cache.checkout("shared", plugin, options, deadline).cached


def test_clear_closes_connections_checked_out_at_checkin(recording_sqlite):
    plugin_class, options = recording_sqlite
    plugin = plugins.get_plugin("recording_sqlite")
    lease = plugins.connection_cache.checkout("ds", plugin, options, plugins.Deadline(5))
    plugins.connection_cache.clear()
    assert plugin_class.closed == []
    plugins.connection_cache.checkin(lease)
    assert plugin_class.closed == [lease.connection]


def test_every_run_reports_its_phases(recording_sqlite):
    plugin_class, options = recording_sqlite
    run(options, "SELECT 'abc' AS x")
    run(options)
    with pytest.raises(QueryFailed):
        run(options, "SELECT * FROM no_such_table")
    first, second, failed = plugin_class.reports
    assert set(first.phases) == set(plugins.PHASES) and first.status == "success"
    assert first.connect_seconds is not None and second.connect_seconds is None
    assert first.bytes_received > second.bytes_received > 0 and first.bytes_sent > 0
    assert first.use_seconds is not None and first.seconds >= sum(first.phases.values())
    assert (failed.status, failed.result) == ("error", "query_failed")
    assert set(failed.phases) == {"connect", "execute"}
