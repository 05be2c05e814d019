"""A local server with TF Serving's REST API, on the same SavedModels (aiohttp; not http.server).

Endpoints (as TF Serving):
  GET  /v1/models/{name}[/versions/{v}]            version status
  GET  /v1/models/{name}[/versions/{v}]/metadata   signature defs
  POST /v1/models/{name}[/versions/{v}]:predict    row ("instances") or columnar ("inputs") format
  GET  /sr_keras/models                           this server's own: the names it serves (sr-client uses it)
Errors are {"error": "..."} with 400 (bad request), 404 (unknown model/version), 405, 408 (body too slow),
413 (body, instances or pixels over a limit, or work past the deadline), 503 (queue full) and 500 (internal faults
only). Bodies are read with a timeout and parsed off the event loop; inference runs in a bounded thread pool, tile
by tile, and stops at the next tile when the client disconnects or the request's deadline passes. New version
folders are picked up by polling.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import multiprocessing
import pathlib
import threading
import time
from concurrent.futures.process import BrokenProcessPool

from absl import logging
from aiohttp import web

from sr_keras import zoo
from sr_keras.infer import enhancer
from sr_keras.serving import predict, rest
from sr_keras.serving.limits import Limits, cap_parser_memory
from sr_keras.serving.registry import public_error
from sr_keras.serving.rest import RestError, check_model_name, parse_path

_STATIC = pathlib.Path(__file__).parent / "static"
PAGE_TEMPLATE = (_STATIC / "index.html").read_text(encoding="utf-8")
PAGE_SCRIPT = (_STATIC / "app.js").read_text(encoding="utf-8")
PAGE_ICON = (_STATIC / "favicon.svg").read_text(encoding="utf-8")  # Also at /favicon.ico: no 404 per page load.
# Every answer: no MIME sniffing, no framing (clickjacking). The page runs only its own script file, sends forms
# nowhere and cannot be re-based.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}
PAGE_CSP = ("default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'unsafe-inline'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")



def _describe(v) -> dict:
    """What the page and the metadata say of a served version: its scale, the alpha its plain signatures run at
    (each model its own: 0 for a real-world GAN whose L1 end is its default, None for a model without the knob),
    and what it is for (a zoo model's purpose: clean images, real photos)."""
    model = getattr(v, "model", None)
    meta = getattr(model, "metadata", None) or {}
    out = {"scale": getattr(model, "scale", None), "default_alpha": getattr(model, "default_alpha", None)}
    name = zoo.match_name(str(meta.get("model") or meta.get("model_name") or ""))
    if name and zoo.purpose(name):
        out["purpose"] = zoo.purpose(name)
    return out

class Server:
    """The aiohttp application around a `ModelRegistry`: TF Serving's REST API, and a web page at `/`."""

    def __init__(self, registry, limits: Limits = Limits()):
        """`registry`: a `ModelRegistry`, or a list of them (one per served model, each under its own name)."""

        registries = list(registry) if isinstance(registry, (list, tuple)) else [registry]
        for r in registries:
            check_model_name(r.name)
        self.registries = {r.name: r for r in registries}
        self.registry = registries[0]  # The first model: the page's initial choice.
        limits.check_names(self.registries)
        self.limits = limits
        # Each model has its own --max_concurrent run slots and its own --max_queue: a cheap model's requests never
        # wait behind an expensive one's (they share the CPU while both run, instead of queueing).
        self.executor = concurrent.futures.ThreadPoolExecutor(limits.max_concurrent * len(self.registries),
                                                              thread_name_prefix="infer")
        self.parser = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="parse")
        self.parse_pool = None  # Processes, started at the first request (see `_parse`).
        self.parse_in_thread = False
        self._pool_lock = threading.Lock()
        # Model name -> its run slots (an asyncio.Semaphore binds to the loop that first waits on it).
        self.slots = {name: asyncio.Semaphore(limits.max_concurrent) for name in self.registries}
        self.waiting = {name: 0 for name in self.registries}

    def app(self):

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

        return web.Response(status=status, text=json.dumps(payload, allow_nan=False), content_type="application/json")

    def _error(self, status: int, message: str):

        return self._json(status, rest.error_body(message))

    def _route(self, path: str):

        name, version, action = parse_path(path)
        if name not in self.registries:
            raise RestError(404, f"unknown model {name!r}; this server serves "
                                 f"{', '.join(repr(n) for n in self.registries)}")
        return self.registries[name], version, action

    @staticmethod
    def _serving(registry, version):

        v = registry.get(version)
        if v is None:
            what = f"version {version} of " if version is not None else "any version of "
            raise RestError(404, f"{what}model {registry.name!r} is not available")
        return v

    def model_limits(self, registry, v=None):
        """The `ModelLimits` of `registry`'s model, with the cost measured when version `v` (default: the newest
        being served) loaded."""
        v = v if v is not None else registry.get()
        return self.limits.for_model(registry.name, v.seconds_per_pixel if v is not None else None)

    def _page(self):
        """The web page (`static/index.html`): upload, before/after slider, model, version and alpha, download.
        It calls this server's own REST API; the served models' names, scales and limits, and the default alpha,
        are written into it."""

        v = self.registry.get()
        models = {}
        for name, registry in self.registries.items():
            served = registry.get()
            models[name] = {**_describe(served), **self.model_limits(registry, served).as_json()}
        config = {"models": list(self.registries), "limits": models,
                  "default_alpha": v.model.default_alpha if v is not None and v.model is not None else None}
        page = PAGE_TEMPLATE.replace("/*CONFIG*/{}", json.dumps(config).replace("<", "\\u003c"))
        return web.Response(text=page, content_type="text/html", headers={"Content-Security-Policy": PAGE_CSP})

    async def handle(self, request):


        try:
            if request.path in ("/", "/index.html", "/app.js", "/favicon.svg", "/favicon.ico"):
                if request.method != "GET":
                    raise rest.RestError(405, "the page needs GET")
                if request.path.startswith("/favicon"):
                    return web.Response(text=PAGE_ICON, content_type="image/svg+xml",
                                        headers={"Cache-Control": "max-age=86400"})
                if request.path == "/app.js":
                    return web.Response(text=PAGE_SCRIPT, content_type="text/javascript",
                                        headers={"Cache-Control": "no-cache"})
                return self._page()
            if request.path == rest.MODELS_PATH:  # sr-serve's own (TF Serving has none): the models it serves.
                if request.method != "GET":
                    raise rest.RestError(405, f"{request.path} needs GET")
                return self._json(200, {"models": list(self.registries)})
            registry, version, action = self._route(request.path)
            if action == rest.PREDICT:
                if request.method != "POST":
                    raise rest.RestError(405, "predict needs POST")
                return await self._predict(request, registry, version)
            if request.method != "GET":
                raise rest.RestError(405, f"{request.path} needs GET")
            if action == rest.METADATA:
                v = self._serving(registry, version)
                return self._json(200, rest.metadata_body(registry.name, v.number, v.signatures, _describe(v)))
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

            logging.exception("internal error")
            return self._error(500, f"internal error: {public_error(e)}")

    async def _read_body(self, request) -> bytes:


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

        body = await self._read_body(request)
        v = self._serving(registry, version)
        loop = asyncio.get_running_loop()
        sig_name, inputs, row = await self._parse(body, v.signatures)
        limits = self.model_limits(registry, v)
        # Image headers are read in a thread: decoding starts only within the limits.
        await loop.run_in_executor(self.parser, predict.check_request_size, sig_name, inputs,
                                   limits.max_input_pixels, registry.name)
        slots = self.slots[registry.name]
        if self.waiting[registry.name] >= self.limits.max_queue:
            raise rest.RestError(503, f"server busy: {self.waiting[registry.name]} requests for {registry.name!r} "
                                      "waiting (--max_queue)")
        stop = threading.Event()
        deadline = time.monotonic() + limits.request_timeout_seconds
        self.waiting[registry.name] += 1
        try:
            async with slots:
                if _gone(request):
                    return self._error(400, "client disconnected")
                job = loop.run_in_executor(
                    self.executor, predict.run, v.model, sig_name, inputs,
                    lambda: stop.is_set() or time.monotonic() > deadline, limits.max_input_pixels or None,
                    registry.name)
                while not job.done():  # Watch the client while the tiles run; a hang-up stops the work.
                    await asyncio.wait({job}, timeout=0.2)
                    if _gone(request):
                        stop.set()
                try:
                    outputs = job.result()
                except enhancer.Cancelled:
                    if stop.is_set():
                        return self._error(400, "client disconnected")
                    raise rest.RestError(413, f"the request needs more than the {limits.request_timeout_seconds:g} s "
                                              f"this server allows {registry.name!r} (--request_timeout_seconds); "
                                              "send a smaller image") from None
                except ValueError as e:  # The image itself is unusable (shape, values).
                    raise rest.RestError(400, f"invalid input: {str(e)[:300]}") from None
                except MemoryError:
                    raise rest.RestError(413, "not enough memory for this request now; send a smaller image "
                                              "or retry later") from None
        finally:
            self.waiting[registry.name] -= 1
        return await self._stream_json(request, rest.encode_outputs(outputs, row))

    async def _parse(self, body: bytes, signatures: dict) -> tuple:
        """`rest.parse_predict` in a separate process: parsing a large JSON body holds the GIL for seconds, which
        in a thread would still stall every other request. The process has a memory cap, so a body built to
        explode while parsing costs a 413, not the server."""

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

            try:
                pool = concurrent.futures.ProcessPoolExecutor(
                    self.limits.parse_workers, mp_context=multiprocessing.get_context("forkserver"),
                    initializer=cap_parser_memory, initargs=(self.limits.max_parse_mb,))
                pool.submit(int).result(timeout=60)  # Started and working.
                self.parse_pool = pool
            except Exception as e:  # noqa: BLE001 - e.g. a main module without `if __name__ == "__main__"`.
                logging.warning("request JSON is parsed in a thread (parser processes cannot start: %s)", e)
                self.parse_in_thread = True
        return self.parse_pool

    async def _stream_json(self, request, chunks):
        """Writes a JSON answer chunk by chunk; each chunk is encoded in a thread, so the loop stays free."""

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
            # Its processes hold the server's stdout and stderr: ended now, so whoever reads them (a supervisor, a
            # pipe) sees the end when the server exits, not when the workers notice.
            workers = list((getattr(self.parse_pool, "_processes", None) or {}).values())
            self.parse_pool.shutdown(wait=False, cancel_futures=True)
            for process in workers:
                process.terminate()


def _json_errors():
    """A middleware answering aiohttp's own errors (a path its router cannot match, such as one holding a newline)
    in JSON, as every other error."""


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


def _gone(request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


