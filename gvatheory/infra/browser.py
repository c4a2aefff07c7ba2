"""Load pages in headless Chromium and report what a reader would see: console errors, images, a screenshot.

``check(pages, shots)`` starts Chromium (from the Debian package ``chromium``; ``CHROMIUM`` overrides the path)
with its DevTools protocol on a local port, loads each page, and returns per page: the console errors and
uncaught exceptions, the number of images and how many of them decoded, and whether its screenshot
(written to ``shots/``) is non-blank. Used by the book's test and by ``python -m gvatheory.infra.browser``.
"""
from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The Chromium executable (``$CHROMIUM``, else the first of ``CANDIDATES`` on the PATH), or None."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


def _start(exe: str, profile: str) -> tuple[subprocess.Popen, int]:
    cmd = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions", "--remote-debugging-port=0",
           f"--user-data-dir={profile}", "--window-size=1280,1600", "about:blank"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    for line in proc.stderr:
        m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
        if m:
            return proc, int(m.group(1))
        if time.time() > deadline:
            break
    proc.kill()
    raise RuntimeError(f"Chromium ({exe}) did not open its DevTools port")


def _blank(png: bytes) -> bool:
    import matplotlib.image as mpimg
    import numpy as np

    img = mpimg.imread(io.BytesIO(png), format="png")
    return float(np.asarray(img)[..., :3].std()) < 0.02  # a uniform page: nothing drawn


async def _check_page(port: int, url: str, shot: Path, settle_s: float) -> dict:
    from tornado.websocket import websocket_connect

    req = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
    target = json.loads(urllib.request.urlopen(req, timeout=30).read())
    ws = await websocket_connect(target["webSocketDebuggerUrl"], max_message_size=512 * 2**20)
    ids, events = iter(range(1, 10**6)), []

    async def call(method, **params):
        i = next(ids)
        ws.write_message(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.read_message(), timeout=60))
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            events.append(msg)

    for domain in ("Page", "Runtime", "Log"):
        await call(f"{domain}.enable")
    await call("Page.navigate", url=url)
    deadline = time.time() + 60
    while not any(e.get("method") == "Page.loadEventFired" for e in events) and time.time() < deadline:
        try:
            events.append(json.loads(await asyncio.wait_for(ws.read_message(), timeout=max(deadline - time.time(), 0.1))))
        except asyncio.TimeoutError:
            break
    end = time.time() + settle_s  # late scripts and console messages
    while time.time() < end:
        try:
            events.append(json.loads(await asyncio.wait_for(ws.read_message(), timeout=max(end - time.time(), 0.05))))
        except asyncio.TimeoutError:
            break
    images = await call("Runtime.evaluate", expression="JSON.stringify([...document.images].map(i => i.complete && i.naturalWidth > 0))", returnByValue=True)
    decoded = json.loads(images["result"]["value"])
    png = base64.b64decode((await call("Page.captureScreenshot", format="png"))["data"])
    shot.write_bytes(png)
    ws.close()
    errors = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.exceptionThrown":
            errors.append(p["exceptionDetails"].get("exception", {}).get("description") or p["exceptionDetails"].get("text"))
        elif m == "Runtime.consoleAPICalled" and p.get("type") == "error":
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
            errors.append(f"{p['entry'].get('source')}: {p['entry'].get('text')} {p['entry'].get('url', '')}")
    return dict(url=url, loaded=any(e.get("method") == "Page.loadEventFired" for e in events), errors=errors, images=len(decoded),
                images_decoded=int(sum(decoded)), screenshot=str(shot), blank=_blank(png))


def check(pages, shots, *, settle_s: float = 1.0, exe: str | None = None) -> list[dict]:
    """Loads every file in ``pages`` in headless Chromium; writes a screenshot per page to ``shots/``; returns one dict
    per page (``loaded``, ``errors``, ``images``, ``images_decoded``, ``screenshot``, ``blank``).

    Raises:
        FileNotFoundError: no Chromium (install the Debian package ``chromium``, or set ``CHROMIUM``).
    """
    exe = exe or find_chromium()
    if exe is None:
        raise FileNotFoundError("no Chromium found: install it (Debian/Ubuntu: apt-get install chromium) or set CHROMIUM=/path/to/chrome")
    shots = Path(shots)
    shots.mkdir(parents=True, exist_ok=True)
    # Chromium's helper processes may still write to the profile as it is removed
    with tempfile.TemporaryDirectory(prefix="gvatheory-chromium-", ignore_cleanup_errors=True) as profile:
        proc, port = _start(exe, profile)
        try:
            return [asyncio.run(_check_page(port, Path(p).resolve().as_uri(), shots / (Path(p).stem + ".png"), settle_s)) for p in pages]
        finally:
            proc.kill()
            proc.wait()


def main(argv=None) -> int:
    """``python -m gvatheory.infra.browser PAGE... --shots DIR``: prints each page's check; exit 1 if any fails."""
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pages", nargs="+", type=Path)
    p.add_argument("--shots", type=Path, default=Path("screenshots"))
    a = p.parse_args(argv)
    bad = 0
    for r in check(a.pages, a.shots):
        ok = r["loaded"] and not r["errors"] and not r["blank"] and r["images_decoded"] == r["images"]
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} {Path(r['url']).name}: {r['images_decoded']}/{r['images']} images, {len(r['errors'])} console errors, "
              f"{'blank' if r['blank'] else 'non-blank'} screenshot {r['screenshot']}" + "".join(f"\n    {e}" for e in r["errors"]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
