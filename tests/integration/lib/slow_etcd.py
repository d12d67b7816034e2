"""An HTTP proxy in front of one real etcd member that loses the writes of
chosen keys: a fault on the path to etcd (as nftables is one), not a model
of etcd. Every other request is forwarded as it is, answers streamed back
(watches included). A write whose body names a held key is never forwarded:
the proxy waits `delay` seconds and closes the connection, as a slow network
that drops the request does. A chunked request (the lease keepalive stream)
is refused by closing the connection, so the client renews with one POST
each, which the proxy forwards."""
import http.client
import http.server
import threading
import time

from lib.procs import LOOPBACK, free_port

WRITES = ("/v3/kv/put", "/v3/kv/txn", "/v3/kv/deleterange")
FORWARDED_HEADERS = ("content-type", "authorization")
HOP_HEADERS = ("transfer-encoding", "content-length", "connection", "keep-alive")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - http.server's naming
        proxy = self.server.proxy
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path in WRITES and any(k in body for k in proxy.held_keys()):
            proxy.count_held()
            time.sleep(proxy.delay)
            self.close_connection = True
            return
        host, port = proxy.upstream.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=None)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() in FORWARDED_HEADERS}
            conn.request("POST", self.path, body, headers)
            resp = conn.getresponse()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in HOP_HEADERS:
                    self.send_header(k, v)
            length = resp.getheader("Content-Length")
            if length is not None:
                data = resp.read()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while True:  # a watch: as long as etcd streams and the client listens
                data = resp.read1(65536)
                if not data:
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True
        finally:
            conn.close()

    def log_message(self, *args):
        pass


class SlowEtcdProxy:
    def __init__(self, upstream, delay=3.0):
        self.upstream = upstream  # "host:port" of the etcd member
        self.delay = delay
        self.held = 0  # writes lost so far
        self._keys = ()
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer((LOOPBACK, free_port()), _Handler)
        self._server.daemon_threads = True
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self):
        return f"{LOOPBACK}:{self._server.server_address[1]}"

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def hold(self, *keys):
        """Lose the writes of these keys (bytes as they appear in a request
        body: base64) from now on; hold() with none forwards all again."""
        with self._lock:
            self._keys = tuple(keys)

    def held_keys(self):
        with self._lock:
            return self._keys

    def count_held(self):
        with self._lock:
            self.held += 1
