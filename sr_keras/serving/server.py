"""A local server with TF Serving's REST API, on the same SavedModels (aiohttp; not http.server).

Endpoints (as TF Serving):
  GET  /v1/models/{name}[/versions/{v}]            version status
  GET  /v1/models/{name}[/versions/{v}]/metadata   signature defs
  POST /v1/models/{name}[/versions/{v}]:predict    row ("instances") or columnar ("inputs") format
Errors are {"error": "..."} with 400 (bad request), 404 (unknown model/version), 413 (body too large),
503 (queue full) and 500 (internal faults only). Inference runs in a bounded thread pool; new version folders are
picked up by polling.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
from typing import Optional

from absl import logging

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]*)(?:/versions/(?P<version>[^/:]*))?(?P<rest>/metadata|:predict)?$")


class Server:
    """The aiohttp application around a `ModelRegistry`."""

    def __init__(self, registry, max_request_bytes: int, max_concurrent: int = 2, max_queue: int = 64):
        self.registry = registry
        self.max_request_bytes = max_request_bytes
        self.executor = concurrent.futures.ThreadPoolExecutor(max_concurrent, thread_name_prefix="infer")
        self.semaphore: Optional[asyncio.Semaphore] = None
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.waiting = 0

    def app(self):
        from aiohttp import web

        application = web.Application(client_max_size=self.max_request_bytes + 1)
        application.router.add_route("*", "/{tail:.*}", self.handle)
        return application

    @staticmethod
    def _json(status: int, payload: dict):
        from aiohttp import web

        return web.Response(status=status, text=json.dumps(payload), content_type="application/json")

    def _error(self, status: int, message: str):
        return self._json(status, {"error": message})

    def _route(self, path: str):
        from sr_keras.serving.rest import RestError

        m = _PATH.match(path)
        if not m:
            raise RestError(404, f"no such endpoint: {path}")
        name, version, rest = m.group("name"), m.group("version"), m.group("rest") or ""
        if not name:
            raise RestError(400, "missing model name in the URL (/v1/models/<name>)")
        if version is not None and not version.isdigit():
            raise RestError(400, f"version must be a non-negative integer, got {version!r}")
        if name != self.registry.name:
            raise RestError(404, f"unknown model {name!r}; this server serves {self.registry.name!r}")
        return (int(version) if version is not None else None), rest

    def _serving(self, version):
        from sr_keras.serving.rest import RestError

        v = self.registry.get(version)
        if v is None:
            what = f"version {version} of " if version is not None else "any version of "
            raise RestError(404, f"{what}model {self.registry.name!r} is not available")
        return v

    async def handle(self, request):
        from aiohttp import web

        from sr_keras.serving import rest

        try:
            version, action = self._route(request.path)
            if action == ":predict":
                if request.method != "POST":
                    raise rest.RestError(405, "predict needs POST")
                return await self._predict(request, version)
            if request.method != "GET":
                raise rest.RestError(405, f"{request.path} needs GET")
            if action == "/metadata":
                v = self._serving(version)
                return self._json(200, {
                    "model_spec": {"name": self.registry.name, "signature_name": "", "version": str(v.number)},
                    "metadata": {"signature_def": {"signature_def": rest.signature_defs(v.model.signatures)}}})
            status = self.registry.status(version)
            if not status:
                raise rest.RestError(404, f"model {self.registry.name!r} has no version "
                                          f"{version if version is not None else 'loaded yet'}")
            return self._json(200, {"model_version_status": status})
        except rest.RestError as e:
            return self._error(e.status, e.message)
        except web.HTTPException:
            raise
        except Exception as e:  # A real internal fault: report it, keep serving.
            logging.exception("internal error")
            return self._error(500, f"internal error: {type(e).__name__}: {e}")

    async def _predict(self, request, version):
        from aiohttp import web

        from sr_keras.serving import rest

        if request.content_length is not None and request.content_length > self.max_request_bytes:
            raise rest.RestError(413, f"request body of {request.content_length} bytes is over the limit of "
                                      f"{self.max_request_bytes} (--max_request_mb)")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise rest.RestError(413, f"request body is over the limit of {self.max_request_bytes} bytes "
                                      "(--max_request_mb)") from None
        v = self._serving(version)
        sig_name, inputs, row = rest.parse_predict(body, v.model.signatures)
        if self.semaphore is None:
            self.semaphore = asyncio.Semaphore(self.max_concurrent)
        if self.waiting >= self.max_queue:
            raise rest.RestError(503, f"server busy: {self.waiting} requests waiting (--max_queue)")
        self.waiting += 1
        try:
            async with self.semaphore:
                loop = asyncio.get_running_loop()
                outputs = await loop.run_in_executor(self.executor, _run_signature, v.model, sig_name, inputs)
        finally:
            self.waiting -= 1
        return self._json(200, rest.format_outputs(outputs, row))


def _run_signature(model, sig_name: str, inputs: dict) -> dict:
    import tensorflow as tf

    from sr_keras.serving.rest import RestError

    try:
        out = model.signatures[sig_name](**inputs)
    except tf.errors.InvalidArgumentError as e:
        if sig_name == "serving_default":  # Its only input is encoded image bytes: decoding is what failed.
            raise RestError(400, "image_bytes: not a decodable image (JPEG, PNG, WebP, BMP or GIF expected)") from None
        lines = [x for x in (e.message or str(e)).splitlines() if x.strip() and "Graph execution" not in x]
        raise RestError(400, f"invalid input: {(lines[0] if lines else type(e).__name__)[:300]}") from None
    return {k: v.numpy() for k, v in out.items()}


async def _poll_forever(registry, seconds: float):
    loop = asyncio.get_running_loop()
    while True:
        try:
            await loop.run_in_executor(None, registry.poll)
        except Exception:  # Polling must never take the server down.
            logging.exception("polling %s failed", registry.base_path)
        await asyncio.sleep(seconds)


class BackgroundServer:
    """Runs a `Server` on its own event loop in a thread (tests, benchmarks, notebooks)."""

    def __init__(self, registry, host: str = "127.0.0.1", port: int = 0, max_request_mb: float = 32.0,
                 max_concurrent: int = 2, max_queue: int = 64, poll_seconds: float = 0.5):
        import threading

        self.server = Server(registry, int(max_request_mb * 1024 * 1024), max_concurrent, max_queue)
        self._ready = threading.Event()
        self._args = (registry, host, port, poll_seconds)
        self._thread = threading.Thread(target=self._main, daemon=True)
        self.port = None

    def _main(self):
        from aiohttp import web

        registry, host, port, poll_seconds = self._args
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(self.server.app(), access_log=None)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, host, port)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        poller = self.loop.create_task(_poll_forever(registry, poll_seconds))
        self._stop = asyncio.Event()
        self._ready.set()
        self.loop.run_until_complete(self._stop.wait())
        poller.cancel()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

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


def serve(base_path: str, name: str, host: str, port: int, max_request_mb: float = 32.0, max_concurrent: int = 2,
          max_queue: int = 64, poll_seconds: float = 2.0) -> None:
    """Runs the server until interrupted. Loads the newest version before accepting requests."""
    from aiohttp import web

    from sr_keras.serving.registry import ModelRegistry

    registry = ModelRegistry(name, base_path)
    registry.poll()
    if registry.get() is None:
        raise ValueError(f"--model_base_path={base_path} holds no loadable version folder "
                         f"(export one with: sr-export --export_dir={base_path.rstrip('/').rsplit('/', 1)[0]} "
                         f"--model_name={name})")
    server = Server(registry, int(max_request_mb * 1024 * 1024), max_concurrent, max_queue)
    application = server.app()

    async def start_polling(app_):
        app_["poller"] = asyncio.create_task(_poll_forever(registry, poll_seconds))

    async def stop_polling(app_):
        app_["poller"].cancel()

    application.on_startup.append(start_polling)
    application.on_cleanup.append(stop_polling)
    print(f"serving {name} version {registry.get().number} from {base_path} on http://{host}:{port}/v1/models/"
          f"{name}", flush=True)
    web.run_app(application, host=host, port=port, print=None, access_log=None)
