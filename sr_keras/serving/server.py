"""A local server with TF Serving's REST API, on the same SavedModels (aiohttp; not http.server).

Endpoints (as TF Serving):
  GET  /v1/models/{name}[/versions/{v}]            version status
  GET  /v1/models/{name}[/versions/{v}]/metadata   signature defs
  POST /v1/models/{name}[/versions/{v}]:predict    row ("instances") or columnar ("inputs") format
Errors are {"error": "..."} with 400 (bad request), 404 (unknown model/version), 405, 408 (body too slow),
413 (body, instances or pixels over a limit, or work past the deadline), 503 (queue full) and 500 (internal faults
only). Bodies are read with a timeout and parsed off the event loop; inference runs in a bounded thread pool, tile
by tile, and stops at the next tile when the client disconnects or the request's deadline passes. New version
folders are picked up by polling.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import pathlib
import socket
import threading
import time
from typing import Optional

from absl import logging

@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask of the server. Each is a flag of sr-serve, named in the error it causes."""

    max_request_bytes: int = 32 * 1024 * 1024  # --max_request_mb
    max_instances: int = 16  # --max_instances
    # Input pixels per request, all instances together, read from the headers. With the default model at x4 on 2
    # CPU cores a 1 MP input takes about 17 s (benchmarks/bench_memory.py), so 2 MP stays well within the deadline;
    # raise both on a GPU.
    max_input_pixels: int = 2_000_000  # --max_input_pixels
    body_timeout_seconds: float = 30.0  # --body_timeout_seconds
    # A connection that sends no complete request line and headers within this is closed (slow-header clients),
    # as is an idle keep-alive connection. A request being read or run is not affected.
    idle_timeout_seconds: float = 15.0  # --idle_timeout_seconds
    request_timeout_seconds: float = 90.0  # --request_timeout_seconds
    max_concurrent: int = 2  # --max_concurrent
    max_queue: int = 64  # --max_queue
    parse_workers: int = 1  # Processes that parse request JSON.
    max_parse_mb: int = 3072  # --max_parse_mb: address space of each parser process.

    def __post_init__(self):
        """A limit that would refuse every request (or none of the abuse it is for) is refused at start."""
        checks = (("max_request_mb", self.max_request_bytes / 2**20, self.max_request_bytes > 0, "above 0"),
                  ("max_instances", self.max_instances, self.max_instances >= 1, "at least 1"),
                  ("max_input_pixels", self.max_input_pixels, self.max_input_pixels >= 0, "0 (no limit) or more"),
                  ("body_timeout_seconds", self.body_timeout_seconds, self.body_timeout_seconds > 0, "above 0"),
                  ("idle_timeout_seconds", self.idle_timeout_seconds, self.idle_timeout_seconds > 0, "above 0"),
                  ("request_timeout_seconds", self.request_timeout_seconds, self.request_timeout_seconds > 0,
                   "above 0"),
                  ("max_concurrent", self.max_concurrent, self.max_concurrent >= 1, "at least 1"),
                  ("max_queue", self.max_queue, self.max_queue >= 1, "at least 1"),
                  ("max_parse_mb", self.max_parse_mb, self.max_parse_mb == 0 or self.max_parse_mb >= 64,
                   "0 (no cap) or at least 64"))
        for flag, value, ok, need in checks:
            if not ok or value != value:  # NaN compares unequal to itself.
                raise ValueError(f"--{flag}={value:g} must be {need}")


MIN_POLL_SECONDS = 0.1  # Polling more often than this only burns a core.


_STATIC = pathlib.Path(__file__).parent / "static"
PAGE_TEMPLATE = (_STATIC / "index.html").read_text(encoding="utf-8")
PAGE_SCRIPT = (_STATIC / "app.js").read_text(encoding="utf-8")
# Every answer: no MIME sniffing, no framing (clickjacking). The page runs only its own script file, sends forms
# nowhere and cannot be re-based.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}
PAGE_CSP = ("default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'unsafe-inline'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class Server:
    """The aiohttp application around a `ModelRegistry`: TF Serving's REST API, and a web page at `/`."""

    def __init__(self, registry, limits: Limits = Limits()):
        """`registry`: a `ModelRegistry`, or a list of them (one per served model, each under its own name)."""
        from sr_keras.serving.rest import check_model_name

        registries = list(registry) if isinstance(registry, (list, tuple)) else [registry]
        for r in registries:
            check_model_name(r.name)
        self.registries = {r.name: r for r in registries}
        self.registry = registries[0]  # The first model: the page's initial choice.
        self.limits = limits
        self.executor = concurrent.futures.ThreadPoolExecutor(limits.max_concurrent, thread_name_prefix="infer")
        self.parser = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="parse")
        self.parse_pool = None  # Processes, started at the first request (see `_parse`).
        self.parse_in_thread = False
        self._pool_lock = threading.Lock()
        self.semaphore: Optional[asyncio.Semaphore] = None
        self.waiting = 0

    def app(self):
        from aiohttp import web

        application = web.Application(client_max_size=self.limits.max_request_bytes + 1,
                                      middlewares=[_json_errors()])
        application.router.add_route("*", "/{tail:.*}", self.handle)

        async def secure(request_, response):
            response.headers.update(SECURITY_HEADERS)
        application.on_response_prepare.append(secure)

        async def start_parsers(app_):  # In the background: the first request need not wait for them.
            self._warming = asyncio.get_running_loop().run_in_executor(self.parser, self._parse_pool)
        application.on_startup.append(start_parsers)
        return application

    @staticmethod
    def _json(status: int, payload: dict):
        from aiohttp import web

        return web.Response(status=status, text=json.dumps(payload, allow_nan=False), content_type="application/json")

    def _error(self, status: int, message: str):
        from sr_keras.serving import rest

        return self._json(status, rest.error_body(message))

    def _route(self, path: str):
        from sr_keras.serving.rest import RestError, parse_path

        name, version, action = parse_path(path)
        if name not in self.registries:
            raise RestError(404, f"unknown model {name!r}; this server serves "
                                 f"{', '.join(repr(n) for n in self.registries)}")
        return self.registries[name], version, action

    @staticmethod
    def _serving(registry, version):
        from sr_keras.serving.rest import RestError

        v = registry.get(version)
        if v is None:
            what = f"version {version} of " if version is not None else "any version of "
            raise RestError(404, f"{what}model {registry.name!r} is not available")
        return v

    def _page(self):
        """The web page (`static/index.html`): upload, before/after slider, model, version and alpha, download.
        It calls this server's own REST API; the served model's name and default alpha are written into it."""
        from aiohttp import web

        v = self.registry.get()
        config = {"models": list(self.registries),
                  "default_alpha": v.model.default_alpha if v is not None and v.model is not None else None}
        page = PAGE_TEMPLATE.replace("/*CONFIG*/{}", json.dumps(config).replace("<", "\\u003c"))
        return web.Response(text=page, content_type="text/html", headers={"Content-Security-Policy": PAGE_CSP})

    async def handle(self, request):
        from aiohttp import web

        from sr_keras.serving import rest

        try:
            if request.path in ("/", "/index.html", "/app.js"):
                if request.method != "GET":
                    raise rest.RestError(405, "the page needs GET")
                if request.path == "/app.js":
                    return web.Response(text=PAGE_SCRIPT, content_type="text/javascript",
                                        headers={"Cache-Control": "no-cache"})
                return self._page()
            registry, version, action = self._route(request.path)
            if action == rest.PREDICT:
                if request.method != "POST":
                    raise rest.RestError(405, "predict needs POST")
                return await self._predict(request, registry, version)
            if request.method != "GET":
                raise rest.RestError(405, f"{request.path} needs GET")
            if action == rest.METADATA:
                v = self._serving(registry, version)
                return self._json(200, rest.metadata_body(registry.name, v.number, v.signatures))
            status = registry.status(version)
            if not status:
                raise rest.RestError(404, f"model {registry.name!r} has no version "
                                          f"{version if version is not None else 'loaded yet'}")
            return self._json(200, rest.status_body(status))
        except rest.RestError as e:
            return self._error(e.status, e.message)
        except web.HTTPException:
            raise
        except Exception as e:  # A real internal fault: log it in full, tell the client without server paths.
            from sr_keras.serving.registry import public_error

            logging.exception("internal error")
            return self._error(500, f"internal error: {public_error(e)}")

    async def _read_body(self, request) -> bytes:
        from aiohttp import web

        from sr_keras.serving.rest import RestError

        limit = self.limits.max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            raise RestError(413, f"request body of {request.content_length} bytes is over the limit of {limit} "
                                 "(--max_request_mb)")
        try:
            return await asyncio.wait_for(request.read(), self.limits.body_timeout_seconds)
        except asyncio.TimeoutError:
            raise RestError(408, f"the request body did not arrive within {self.limits.body_timeout_seconds:g} s "
                                 "(--body_timeout_seconds)") from None
        except web.HTTPRequestEntityTooLarge:
            raise RestError(413, f"request body is over the limit of {limit} bytes (--max_request_mb)") from None
        except (web.HTTPException, ConnectionError):
            raise
        except Exception as e:  # aiohttp's errors for a body it cannot read: bad gzip, broken chunking.
            raise RestError(400, f"cannot read the request body ({type(e).__name__}: {str(e)[:200]})") from None

    async def _predict(self, request, registry, version):
        from sr_keras import inference
        from sr_keras.serving import predict, rest

        body = await self._read_body(request)
        v = self._serving(registry, version)
        loop = asyncio.get_running_loop()
        sig_name, inputs, row = await self._parse(body, v.signatures)
        # Image headers are read in a thread: decoding starts only within the limits.
        await loop.run_in_executor(self.parser, predict.check_request_size, sig_name, inputs,
                                   self.limits.max_input_pixels)
        if self.semaphore is None:
            self.semaphore = asyncio.Semaphore(self.limits.max_concurrent)
        if self.waiting >= self.limits.max_queue:
            raise rest.RestError(503, f"server busy: {self.waiting} requests waiting (--max_queue)")
        stop = threading.Event()
        deadline = time.monotonic() + self.limits.request_timeout_seconds
        self.waiting += 1
        try:
            async with self.semaphore:
                if _gone(request):
                    return self._error(400, "client disconnected")
                job = loop.run_in_executor(
                    self.executor, predict.run, v.model, sig_name, inputs,
                    lambda: stop.is_set() or time.monotonic() > deadline, self.limits.max_input_pixels)
                while not job.done():  # Watch the client while the tiles run; a hang-up stops the work.
                    await asyncio.wait({job}, timeout=0.2)
                    if _gone(request):
                        stop.set()
                try:
                    outputs = job.result()
                except inference.Cancelled:
                    if stop.is_set():
                        return self._error(400, "client disconnected")
                    raise rest.RestError(413, f"the request needs more than the {self.limits.request_timeout_seconds:g}"
                                              " s this server allows (--request_timeout_seconds); send a smaller "
                                              "image") from None
                except ValueError as e:  # The image itself is unusable (shape, values).
                    raise rest.RestError(400, f"invalid input: {str(e)[:300]}") from None
                except MemoryError:
                    raise rest.RestError(413, "not enough memory for this request now; send a smaller image "
                                              "or retry later") from None
        finally:
            self.waiting -= 1
        return await self._stream_json(request, rest.encode_outputs(outputs, row))

    async def _parse(self, body: bytes, signatures: dict) -> tuple:
        """`rest.parse_predict` in a separate process: parsing a large JSON body holds the GIL for seconds, which
        in a thread would still stall every other request. The process has a memory cap, so a body built to
        explode while parsing costs a 413, not the server."""
        from concurrent.futures.process import BrokenProcessPool

        from sr_keras.serving import rest

        loop = asyncio.get_running_loop()
        args = (rest.parse_predict, body, signatures, self.limits.max_instances)
        pool = await loop.run_in_executor(self.parser, self._parse_pool)
        try:
            if pool is None:
                return await loop.run_in_executor(self.parser, *args)
            return await loop.run_in_executor(pool, *args)
        except (BrokenProcessPool, MemoryError):
            if pool is self.parse_pool:
                self.parse_pool = None  # Replaced on the next request.
                pool.shutdown(wait=False, cancel_futures=True)
            raise rest.RestError(413, "the request body is too large to parse within the parser's memory "
                                      "(--max_parse_mb)") from None

    def _parse_pool(self):
        """The parser processes, or None where they cannot start (then a thread parses)."""
        with self._pool_lock:
            return self._start_parse_pool()

    def _start_parse_pool(self):
        if self.parse_pool is None and not self.parse_in_thread:
            import multiprocessing

            try:
                pool = concurrent.futures.ProcessPoolExecutor(
                    self.limits.parse_workers, mp_context=multiprocessing.get_context("forkserver"),
                    initializer=_cap_memory, initargs=(self.limits.max_parse_mb,))
                pool.submit(int).result(timeout=60)  # Started and working.
                self.parse_pool = pool
            except Exception as e:  # noqa: BLE001 - e.g. a main module without `if __name__ == "__main__"`.
                logging.warning("request JSON is parsed in a thread (parser processes cannot start: %s)", e)
                self.parse_in_thread = True
        return self.parse_pool

    async def _stream_json(self, request, chunks):
        """Writes a JSON answer chunk by chunk; each chunk is encoded in a thread, so the loop stays free."""
        from aiohttp import web

        loop = asyncio.get_running_loop()
        first = await loop.run_in_executor(self.parser, next, chunks, b"")
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        try:
            await response.prepare(request)
            chunk = first
            while chunk:
                await response.write(chunk)
                chunk = await loop.run_in_executor(self.parser, next, chunks, b"")
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError) as e:  # Not our fault, and nothing to tell anyone.
            logging.info("%s %s: the client hung up during the answer (%s)", request.method, request.path,
                         type(e).__name__)
            if isinstance(e, asyncio.CancelledError):
                raise
        return response

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.parser.shutdown(wait=False, cancel_futures=True)
        if self.parse_pool is not None:
            self.parse_pool.shutdown(wait=False, cancel_futures=True)


def _json_errors():
    """A middleware answering aiohttp's own errors (a path its router cannot match, such as one holding a newline)
    in JSON, as every other error."""
    from aiohttp import web

    from sr_keras.serving import rest

    @web.middleware
    async def json_errors(request, handler):
        try:
            return await handler(request)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            return web.Response(status=e.status, text=json.dumps(rest.error_body(e.reason)),
                                content_type="application/json")
    return json_errors


def _cap_memory(max_mb: int) -> None:
    """Parser processes: an address-space cap turns a runaway parse into MemoryError there, not an OOM kill here."""
    import resource

    if max_mb:
        limit = max_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _gone(request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _poll_forever(registries, seconds: float):
    """Polls every registry (one or a list) for new version folders, forever."""
    await asyncio.gather(*(_poll_one(r, seconds)
                           for r in (registries if isinstance(registries, (list, tuple)) else [registries])))


async def _poll_one(registry, seconds: float):
    loop = asyncio.get_running_loop()
    while True:
        try:
            await loop.run_in_executor(None, registry.poll)
        except Exception:  # Polling must never take the server down.
            logging.exception("polling %s failed", registry.base_path)
        await asyncio.sleep(seconds)


def check_port(port: int) -> None:
    """ValueError for a port outside 0..65535 (the C call would take it modulo 65536 and listen elsewhere)."""
    if not 0 <= port <= 65535:
        raise ValueError(f"--port={port} must be 1..65535 (0: any free port)")


def check_poll_seconds(seconds: float) -> None:
    if not seconds >= MIN_POLL_SECONDS:  # NaN too.
        raise ValueError(f"--poll_seconds={seconds:g} must be at least {MIN_POLL_SECONDS:g} (polling more often "
                         "only burns a core)")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound before anything slow happens, so a taken port fails at once, in one line."""
    check_port(port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise OSError(f"--host={host}: {e.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        why = "is already in use" if e.errno == 98 else f"cannot be used ({e.strerror})"
        raise OSError(f"port {port} on {host} {why}; pick another with --port") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


class BackgroundServer:
    """Runs a `Server` on its own event loop in a thread (tests, benchmarks, notebooks)."""

    def __init__(self, registry, host: str = "127.0.0.1", port: int = 0, poll_seconds: float = 0.5,
                 limits: Limits = Limits(), **limit_overrides):
        if "max_request_mb" in limit_overrides:
            limit_overrides["max_request_bytes"] = int(limit_overrides.pop("max_request_mb") * 1024 * 1024)
        self.server = Server(registry, dataclasses.replace(limits, **limit_overrides))
        self._ready = threading.Event()
        self._sock = bind(host, port)
        self.port = self._sock.getsockname()[1]
        self._args = (registry, poll_seconds)
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self):
        from aiohttp import web

        registry, poll_seconds = self._args
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(self.server.app(), access_log=None,
                               keepalive_timeout=self.server.limits.idle_timeout_seconds)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.SockSite(runner, self._sock).start())
        poller = self.loop.create_task(_poll_forever(registry, poll_seconds))
        self._stop = asyncio.Event()
        self._ready.set()
        self.loop.run_until_complete(self._stop.wait())
        poller.cancel()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()
        self.server.close()

    def __enter__(self):
        self._thread.start()
        self._ready.wait(60)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def serve(models: list, host: str, port: int, limits: Limits = Limits(), poll_seconds: float = 2.0) -> None:
    """Runs the server until interrupted: `models` is [(name, model base path), ...], each served under its name.
    Binds the port first, then loads each model's newest version that loads."""
    from aiohttp import web

    from sr_keras.serving.registry import ModelRegistry, writable_by_others

    check_poll_seconds(poll_seconds)
    from sr_keras.serving.rest import check_model_name

    for name, _ in models:
        check_model_name(name)
    sock = bind(host, port)
    port = sock.getsockname()[1]  # The one really bound (0 picks a free one).
    registries = []
    for name, base_path in models:
        for path in writable_by_others(base_path):
            logging.warning("%s is writable by other users: a SavedModel is code, and anyone who can write there "
                            "can run code as this server's user", path)
        registry = ModelRegistry(name, base_path)
        registry.poll()
        if registry.get() is None:
            sock.close()
            errors = "; ".join(f"version {number}: {error}" for number, _, error in registry.status())
            raise ValueError(f"--model_base_path={base_path} holds no loadable version folder"
                             + (f" ({errors})" if errors else "")
                             + f" (export one with: sr-export --export_dir={base_path.rstrip('/').rsplit('/', 1)[0]} "
                             f"--model_name={name})")
        registries.append(registry)
    server = Server(registries, limits)
    application = server.app()

    async def start_polling(app_):
        app_["poller"] = asyncio.create_task(_poll_forever(registries, poll_seconds))

    async def stop_polling(app_):
        app_["poller"].cancel()

    application.on_startup.append(start_polling)
    application.on_cleanup.append(stop_polling)
    for r in registries:
        print(f"serving {r.name} version {r.get().number} from {r.base_path} on http://{host}:{port}/v1/models/"
              f"{r.name}", flush=True)
    print(f"web page: http://{host}:{port}/", flush=True)
    web.run_app(application, sock=sock, print=None, access_log=None, keepalive_timeout=limits.idle_timeout_seconds)
