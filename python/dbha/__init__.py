"""dbha: follow a dbha (or Patroni on etcd v3) PostgreSQL cluster from Python.

A thin ctypes binding of libdbha (the C client library, libdbha.so.0): no
build step, only the Python standard library. The library is the path in
the DBHA_LIBRARY environment variable (a build tree's libdbha.so.*), else
libdbha.so.0 as the dynamic linker finds it, else
ctypes.util.find_library("dbha").

    import psycopg2, dbha

    with dbha.Client(etcd=["127.0.0.1:2379"], scope="demo",
                     conninfo="dbname=app user=app") as c:
        c.wait_topology(timeout=5)
        c.on_change(lambda topo: print("primary now", topo["leader"]))
        with psycopg2.connect(c.primary_dsn()) as w:
            ...
            lsn = dbha.current_lsn(w)
        r, node = c.connect_ryw(psycopg2.connect, lsn)   # sees that write

Errors of the library (a negative errno) are raised as OSError with that
errno and libdbha's one-line message: TimeoutError for ETIMEDOUT, and so on.
Every method is thread-safe. Callbacks run on the client's background thread;
an exception they raise is printed to stderr with its traceback and the
client goes on.
"""
import ctypes
import ctypes.util
import errno as _errno
import json
import os
import sys
import threading
import traceback
import weakref

__all__ = ["Client", "library", "lsn_parse", "lsn_format", "lsn_reached", "current_lsn",
           "replay_lsn", "conninfo_with"]

_NAME_MAX = 256
_ERROR_MESSAGE_MAX = 256
_LSN_TEXT_MAX = 24
ROLE_PRIMARY = "primary"
ROLE_REPLICA = "replica"


class _Error(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("message", ctypes.c_char * _ERROR_MESSAGE_MAX)]


class _Node(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("host", ctypes.c_char_p), ("port", ctypes.c_int),
                ("api_url", ctypes.c_char_p), ("state", ctypes.c_char_p),
                ("lag_known", ctypes.c_bool), ("lag_bytes", ctypes.c_int64),
                ("sync", ctypes.c_bool), ("noloadbalance", ctypes.c_bool),
                ("tags_json", ctypes.c_char_p)]


class _Topology(ctypes.Structure):
    _fields_ = [("version", ctypes.c_int64), ("scope", ctypes.c_char_p),
                ("leader", ctypes.c_char_p), ("timeline", ctypes.c_int64),
                ("primary", ctypes.POINTER(_Node)), ("replicas", ctypes.POINTER(_Node)),
                ("n_replicas", ctypes.c_size_t), ("updated", ctypes.c_char_p)]


class _Target(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * _NAME_MAX), ("host", ctypes.c_char * _NAME_MAX),
                ("port", ctypes.c_int)]


class _Stats(ctypes.Structure):
    _fields_ = [("updates", ctypes.c_uint64), ("fetch_errors", ctypes.c_uint64),
                ("reconnects", ctypes.c_uint64), ("version", ctypes.c_int64),
                ("last_error", ctypes.c_char * _ERROR_MESSAGE_MAX)]


_TopoP = ctypes.POINTER(_Topology)
_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, _TopoP, ctypes.c_void_p)
_StrArray = ctypes.POINTER(ctypes.c_char_p)


class _Options(ctypes.Structure):
    _fields_ = [("etcd_endpoints", _StrArray), ("n_etcd_endpoints", ctypes.c_size_t),
                ("etcd_username", ctypes.c_char_p), ("etcd_password", ctypes.c_char_p),
                ("dcs_namespace", ctypes.c_char_p), ("scope", ctypes.c_char_p),
                ("rest_urls", _StrArray), ("n_rest_urls", ctypes.c_size_t),
                ("poll_interval_usec", ctypes.c_uint64),
                ("request_timeout_usec", ctypes.c_uint64),
                ("callback", _CALLBACK), ("userdata", ctypes.c_void_p),
                ("etcd_cacert", ctypes.c_char_p), ("etcd_cert", ctypes.c_char_p),
                ("etcd_key", ctypes.c_char_p)]


_lib = None
_lib_lock = threading.Lock()


def _declare(lib):
    P = ctypes.c_void_p
    sigs = {
        "dbha_version": (ctypes.c_char_p, []),
        "dbha_topology_parse": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_size_t,
                                               ctypes.POINTER(_TopoP), ctypes.POINTER(_Error)]),
        "dbha_topology_ref": (_TopoP, [_TopoP]),
        "dbha_topology_unref": (_TopoP, [_TopoP]),
        "dbha_node_is_healthy_replica": (ctypes.c_bool, [ctypes.POINTER(_Node), ctypes.c_int64]),
        "dbha_lsn_parse": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint64)]),
        "dbha_lsn_format": (ctypes.c_char_p, [ctypes.c_uint64, ctypes.c_char_p,
                                              ctypes.c_size_t]),
        "dbha_lsn_reached": (ctypes.c_bool, [ctypes.c_uint64, ctypes.c_uint64]),
        "dbha_client_open": (ctypes.c_int, [ctypes.POINTER(_Options), ctypes.POINTER(P),
                                            ctypes.POINTER(_Error)]),
        "dbha_client_free": (P, [P]),
        "dbha_client_get_topology": (ctypes.c_int, [P, ctypes.POINTER(_TopoP)]),
        "dbha_client_wait_topology": (ctypes.c_int, [P, ctypes.c_int64, ctypes.c_uint64,
                                                     ctypes.POINTER(_TopoP),
                                                     ctypes.POINTER(_Error)]),
        "dbha_client_fetch_topology": (ctypes.c_int, [P, ctypes.POINTER(_TopoP),
                                                      ctypes.POINTER(_Error)]),
        "dbha_client_get_stats": (None, [P, ctypes.POINTER(_Stats)]),
        "dbha_client_pick_replica": (ctypes.c_int, [P, ctypes.c_int64,
                                                    ctypes.POINTER(_Target)]),
        "dbha_client_pick_primary": (ctypes.c_int, [P, ctypes.POINTER(_Target)]),
    }
    for name, (res, args) in sigs.items():
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args
    return lib


def library():
    """The loaded libdbha (a ctypes.CDLL): $DBHA_LIBRARY, else libdbha.so.0 as
    the dynamic linker finds it, else find_library("dbha"). Raises OSError
    when there is none."""
    global _lib
    with _lib_lock:
        if _lib is None:
            path = os.environ.get("DBHA_LIBRARY")
            if path:
                lib = ctypes.CDLL(path)
            else:
                try:  # the ABI this module is written for
                    lib = ctypes.CDLL("libdbha.so.0")
                except OSError:
                    lib = ctypes.CDLL(ctypes.util.find_library("dbha") or "libdbha.so")
            _lib = _declare(lib)
        return _lib


def version():
    """libdbha's version, "MAJOR.MINOR.PATCH"."""
    return library().dbha_version().decode()


def _raise(rc, err=None, what=""):
    msg = err.message.decode(errors="replace") if err is not None and err.message else ""
    raise OSError(-rc, msg or what or os.strerror(-rc))


def _s(b):
    return None if b is None else b.decode(errors="replace")


def _node(n, primary):
    d = {"name": _s(n.name), "host": _s(n.host), "port": n.port, "api_url": _s(n.api_url)}
    if not primary:
        d.update(state=_s(n.state), lag_bytes=n.lag_bytes if n.lag_known else None,
                 sync=bool(n.sync), noloadbalance=bool(n.noloadbalance),
                 tags=json.loads(n.tags_json) if n.tags_json else {})
    return d


def _topology(t):
    """A dict of a DbhaTopology (the document's fields, docs/topology.md)."""
    c = t.contents
    return {"version": c.version, "scope": _s(c.scope), "leader": _s(c.leader),
            "timeline": None if c.timeline < 0 else c.timeline,
            "primary": _node(c.primary.contents, True) if c.primary else None,
            "replicas": [_node(c.replicas[i], False) for i in range(c.n_replicas)],
            "updated": _s(c.updated)}


def _healthy(t, max_lag_bytes):
    lib = library()
    c = t.contents
    return [_node(c.replicas[i], False) for i in range(c.n_replicas)
            if lib.dbha_node_is_healthy_replica(ctypes.byref(c.replicas[i]), max_lag_bytes)]


def parse_topology(text):
    """Decodes a topology document (str or bytes) as libdbha does; a dict."""
    lib = library()
    raw = text.encode() if isinstance(text, str) else bytes(text)
    t = _TopoP()
    err = _Error()
    rc = lib.dbha_topology_parse(raw, len(raw), ctypes.byref(t), ctypes.byref(err))
    if rc < 0:
        _raise(rc, err)
    try:
        return _topology(t)
    finally:
        lib.dbha_topology_unref(t)


# ---- LSNs (read-your-writes) ----

def lsn_parse(text):
    """PostgreSQL's "X/Y" into an int; ValueError when it is not one."""
    v = ctypes.c_uint64()
    if library().dbha_lsn_parse(str(text).encode(), ctypes.byref(v)) < 0:
        raise ValueError(f"not an LSN: {text!r}")
    return v.value


def lsn_format(lsn):
    buf = ctypes.create_string_buffer(_LSN_TEXT_MAX)
    return library().dbha_lsn_format(lsn, buf, _LSN_TEXT_MAX).decode()


def lsn_reached(replay_lsn, want_lsn):
    """Whether a replica that replayed up to replay_lsn shows every write up
    to want_lsn (want_lsn 0: any replica does)."""
    return bool(library().dbha_lsn_reached(replay_lsn, want_lsn))


def _one_lsn(conn, sql):
    cur = conn.cursor()
    try:
        cur.execute(sql)
        row = cur.fetchone()
    finally:
        cur.close()
    return lsn_parse(row[0]) if row and row[0] is not None else 0


def current_lsn(conn):
    """The primary's WAL position (pg_current_wal_lsn()) on a DB-API
    connection, as an int: after a commit, a replica that replayed this far
    shows it. Call it after the commit, outside a transaction you keep open."""
    return _one_lsn(conn, "SELECT pg_current_wal_lsn()")


def replay_lsn(conn):
    """What a replica replayed (pg_last_wal_replay_lsn()); 0 when unknown."""
    return _one_lsn(conn, "SELECT pg_last_wal_replay_lsn()")


def _quote(v):
    v = str(v)
    if v and not any(ch in v for ch in " '\\\t\n"):
        return v
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo_with(conninfo, **kv):
    """conninfo (libpq key=value text) followed by kv, quoted as libpq wants;
    a later keyword wins in libpq."""
    extra = " ".join(f"{k}={_quote(v)}" for k, v in kv.items() if v is not None)
    return f"{conninfo} {extra}".strip() if conninfo else extra


# ---- the client ----

def _free(lib, handle, keep, dispatch):
    """weakref.finalize target: stops the client's thread (which may be in the
    callback: ctypes lets go of the GIL for the call, so it can finish). A
    client collected on its own thread (a callback's garbage collection) is
    freed from another one: that thread cannot join itself."""
    if dispatch.thread == threading.get_ident():
        threading.Thread(target=_free, args=(lib, handle, keep, _Dispatch()),
                         name="dbha-client-free", daemon=False).start()
        return
    if handle.value:
        lib.dbha_client_free(handle)
        handle.value = None
    keep.clear()


class _Dispatch:
    """What the C callback reaches: the Python callbacks, never the Client
    (so the client can be collected and closed)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.callbacks = []
        self.thread = None

    def __call__(self, _client, t, _userdata):
        self.thread = threading.get_ident()
        try:
            with self.lock:
                cbs = list(self.callbacks)
            if not cbs:
                return
            topo = _topology(t)
            for cb in cbs:
                try:
                    cb(topo)
                except BaseException as e:  # a callback must never unwind into C
                    _report(e, cb)
        except BaseException as e:
            _report(e, self)


def _report(exc, where):
    """An exception of a callback, printed to stderr (as threading does for
    a thread's): the client goes on."""
    try:
        sys.stderr.write(f"Exception in dbha topology callback {where!r}:\n")
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        sys.stderr.flush()
    except Exception:
        pass


class Client:
    """Follows a cluster's topology in libdbha's background thread.

    Sources, as dbha_client_open takes them: etcd (etcd=["host:port" or
    "http[s]://host:port", ...], scope=, namespace= default "/service/",
    etcd_username=/etcd_password=, etcd_cacert=/etcd_cert=/etcd_key= for TLS),
    or, with no etcd endpoint, the agents' REST APIs (rest=["http://host:8008",
    ...], polled every poll_interval seconds). request_timeout (seconds) bounds
    one etcd/REST request. conninfo is the libpq text (dbname, user,
    password, ...) the DSN methods add host and port to.

    Opening does no I/O and succeeds while the cluster is unreachable: use
    wait_topology() for a first copy. Close it (or use it as a context
    manager); an unclosed client is closed when collected or at exit."""

    def __init__(self, etcd=None, scope=None, namespace=None, rest=None, conninfo="",
                 etcd_username=None, etcd_password=None, etcd_cacert=None, etcd_cert=None,
                 etcd_key=None, poll_interval=None, request_timeout=None):
        lib = library()
        self.conninfo = conninfo or ""
        self._dispatch = _Dispatch()
        self._cfunc = _CALLBACK(self._dispatch)
        enc = (lambda v: None if v is None else str(v).encode())
        etcd = [etcd] if isinstance(etcd, str) else list(etcd or [])
        rest = [rest] if isinstance(rest, str) else list(rest or [])
        e_arr = (ctypes.c_char_p * max(len(etcd), 1))(*[enc(x) for x in etcd])
        r_arr = (ctypes.c_char_p * max(len(rest), 1))(*[enc(x) for x in rest])
        opts = _Options()
        opts.etcd_endpoints = ctypes.cast(e_arr, _StrArray) if etcd else None
        opts.n_etcd_endpoints = len(etcd)
        opts.etcd_username = enc(etcd_username)
        opts.etcd_password = enc(etcd_password)
        opts.dcs_namespace = enc(namespace)
        opts.scope = enc(scope)
        opts.rest_urls = ctypes.cast(r_arr, _StrArray) if rest else None
        opts.n_rest_urls = len(rest)
        opts.poll_interval_usec = int((poll_interval or 0) * 1e6)
        opts.request_timeout_usec = int((request_timeout or 0) * 1e6)
        opts.callback = self._cfunc
        opts.etcd_cacert = enc(etcd_cacert)
        opts.etcd_cert = enc(etcd_cert)
        opts.etcd_key = enc(etcd_key)
        handle = ctypes.c_void_p()
        err = _Error()
        rc = lib.dbha_client_open(ctypes.byref(opts), ctypes.byref(handle), ctypes.byref(err))
        if rc < 0:
            _raise(rc, err, "dbha_client_open")
        self._lib = lib
        self._handle = handle
        self._close_lock = threading.Lock()
        # the CFUNCTYPE object must outlive the C thread that calls it
        self._finalizer = weakref.finalize(self, _free, lib, handle, [self._cfunc],
                                          self._dispatch)

    # lifetime
    def close(self):
        """Stops the background thread (bounded by twice the request timeout).
        Not from a callback (RuntimeError)."""
        if self._dispatch.thread == threading.get_ident():
            raise RuntimeError("dbha.Client.close() called from its own callback")
        with self._close_lock:
            self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _h(self):
        if not self._handle.value:
            raise ValueError("dbha.Client is closed")
        return self._handle

    # topology
    def on_change(self, callback):
        """callback(topology_dict) for every new version, on the client's
        thread (keep it short; it must not close the client). Returns
        callback, so it can be a decorator."""
        with self._dispatch.lock:
            self._dispatch.callbacks.append(callback)
        return callback

    def remove_callback(self, callback):
        with self._dispatch.lock:
            self._dispatch.callbacks.remove(callback)

    def _take(self, fn, *args, err=None):
        t = _TopoP()
        rc = fn(self._h(), *args, ctypes.byref(t), *([ctypes.byref(err)] if err else []))
        if rc < 0:
            _raise(rc, err, f"{fn.__name__}: {os.strerror(-rc)}")
        return t

    def topology(self):
        """The cached topology as a dict (no I/O); OSError(ENODATA) when none
        was fetched yet."""
        t = self._take(self._lib.dbha_client_get_topology)
        try:
            return _topology(t)
        finally:
            self._lib.dbha_topology_unref(t)

    def wait_topology(self, after_version=0, timeout=5.0):
        """Waits up to timeout seconds for a cached version > after_version;
        TimeoutError (saying what the last fetch failed with) otherwise."""
        err = _Error()
        t = self._take(self._lib.dbha_client_wait_topology, after_version,
                       int(timeout * 1e6), err=err)
        try:
            return _topology(t)
        finally:
            self._lib.dbha_topology_unref(t)

    def fetch_topology(self):
        """Reads the document from its source now, bypassing the cache."""
        err = _Error()
        t = self._take(self._lib.dbha_client_fetch_topology, err=err)
        try:
            return _topology(t)
        finally:
            self._lib.dbha_topology_unref(t)

    def stats(self):
        s = _Stats()
        self._lib.dbha_client_get_stats(self._h(), ctypes.byref(s))
        return {"updates": s.updates, "fetch_errors": s.fetch_errors,
                "reconnects": s.reconnects, "version": s.version,
                "last_error": s.last_error.decode(errors="replace")}

    # routing
    def _target(self, fn, *args):
        tg = _Target()
        rc = fn(self._h(), *args, ctypes.byref(tg))
        if rc < 0:
            _raise(rc, None, "no topology fetched yet" if rc == -_errno.ENODATA
                   else "no primary in the topology" if fn is self._lib.dbha_client_pick_primary
                   else "no healthy replica in the topology")
        return {"name": tg.name.decode(), "host": tg.host.decode(), "port": tg.port}

    def primary(self):
        """{"name", "host", "port"} of the cached topology's primary;
        OSError ENODATA (no topology yet) or ENOENT (no primary)."""
        return self._target(self._lib.dbha_client_pick_primary)

    def replica(self, max_lag_bytes=-1):
        """A healthy replica (streaming, or running with a known lag; not
        noloadbalance; within max_lag_bytes when >= 0), round-robin; OSError
        ENODATA or ENOENT."""
        return self._target(self._lib.dbha_client_pick_replica, max_lag_bytes)

    def dsn(self, node, **kv):
        return conninfo_with(self.conninfo, host=node["host"], port=node["port"], **kv)

    def primary_dsn(self, **kv):
        """conninfo + the primary's host and port (+ kv, e.g. connect_timeout=2)."""
        return self.dsn(self.primary(), **kv)

    def replica_dsn(self, max_lag_bytes=-1, **kv):
        return self.dsn(self.replica(max_lag_bytes), **kv)

    def healthy_replicas(self, max_lag_bytes=-1):
        """Every replica replica() may pick, as dicts, in the document's order."""
        t = self._take(self._lib.dbha_client_get_topology)
        try:
            return _healthy(t, max_lag_bytes)
        finally:
            self._lib.dbha_topology_unref(t)

    def connect_ryw(self, connect, want_lsn, max_lag_bytes=-1, **kv):
        """Read-your-writes, as libdbha's pool does it: a connection (made with
        connect(dsn), e.g. psycopg2.connect) to a healthy replica that has
        replayed at least want_lsn (an int, see current_lsn), checked on that
        connection with pg_last_wal_replay_lsn(); each healthy replica is
        tried once, starting at the next in round-robin order, else the
        primary. Returns (connection, node dict with "role"). A replica that
        cannot be reached is skipped; the primary's connection error is raised."""
        try:
            first = self.replica(max_lag_bytes)["name"]
        except OSError as e:
            if e.errno not in (_errno.ENOENT, _errno.ENODATA):
                raise
            first = None
        reps = self.healthy_replicas(max_lag_bytes) if first else []
        names = [r["name"] for r in reps]
        if first in names:
            i = names.index(first)
            reps = reps[i:] + reps[:i]
        for r in reps:
            try:
                conn = connect(self.dsn(r, **kv))
            except Exception:
                continue
            try:
                ok = lsn_reached(replay_lsn(conn), want_lsn)
                if hasattr(conn, "rollback"):
                    conn.rollback()  # leave no transaction open behind the check
            except Exception:
                ok = False
            if ok:
                return conn, dict(r, role=ROLE_REPLICA)
            try:
                conn.close()
            except Exception:
                pass
        p = self.primary()
        return connect(self.dsn(p, **kv)), dict(p, role=ROLE_PRIMARY)
