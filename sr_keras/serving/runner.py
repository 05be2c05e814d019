"""Running the REST `Server`: binding the port first, polling for new versions, in the foreground (`serve`, what
sr-serve runs) or on a thread (`BackgroundServer`, for tests, benchmarks and notebooks)."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import socket
import threading

from absl import logging
from aiohttp import web
from aiohttp.web_runner import GracefulExit

from sr_keras.serving.limits import Limits, check_poll_seconds, check_port
from sr_keras.serving.registry import ModelRegistry, writable_by_others
from sr_keras.serving.rest import check_model_name
from sr_keras.serving.server import Server


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


SHUTDOWN_SECONDS = 2.0  # On SIGINT/SIGTERM: how long open connections get to finish before the server exits.


def serve(models: list, host: str, port: int, limits: Limits = Limits(), poll_seconds: float = 2.0) -> int:
    """Runs the server until SIGINT (Ctrl-C) or SIGTERM: `models` is [(name, model base path), ...], each served
    under its name. Binds the port first, then loads each model's newest version that loads. On the signal it says
    so in one line, gives open connections SHUTDOWN_SECONDS, and returns the exit status: 130 after SIGINT (as a
    shell expects), 0 after SIGTERM (a service manager's stop)."""

    check_poll_seconds(poll_seconds)

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

    received = []

    async def handle_signals(app_):  # aiohttp's own handlers cannot tell which signal it was.
        loop = asyncio.get_running_loop()

        def stop(signum):
            received.append(signum)
            raise GracefulExit()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop, signum)

    application.on_startup.append(handle_signals)
    application.on_startup.append(start_polling)
    application.on_cleanup.append(stop_polling)
    for r in registries:
        mine = server.model_limits(r)
        pixels = f"{mine.max_input_pixels / 1e6:g} MP" if mine.max_input_pixels else "any size"
        print(f"serving {r.name} version {r.get().number} from {r.base_path} on http://{host}:{port}/v1/models/"
              f"{r.name} ({pixels} per request, {mine.request_timeout_seconds:g} s deadline)", flush=True)
    print(f"web page: http://{host}:{port}/", flush=True)
    try:
        web.run_app(application, sock=sock, print=None, access_log=None, handle_signals=False,
                    keepalive_timeout=limits.idle_timeout_seconds, shutdown_timeout=SHUTDOWN_SECONDS)
    except KeyboardInterrupt:  # Ctrl-C before the loop took the signal over (while the models loaded).
        received.append(signal.SIGINT)
    finally:
        server.close()
    name = signal.Signals(received[0]).name if received else "the end of the loop"
    print(f"sr-serve: stopped ({name})", flush=True)
    return 130 if received and received[0] == signal.SIGINT else 0
