"""JupyterLab for real: a server starts, serves the lab page, opens a notebook through its REST API and runs its first
cells on a live kernel through the kernel's websocket — what a reader who types `make lab` gets.

Skipped, with the reason, where JupyterLab is not installed. Runs as root too (`--allow-root`), as `make lab` does.
"""
import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "01_marginal_stability.ipynb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, token, method="GET", body=None):
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read().decode()
        return r.status, text


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (pip install -e '.[dev]' installs it)")
    token, port = secrets.token_hex(16), _free_port()
    runtime = tmp_path_factory.mktemp("jupyter-runtime")
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime), JUPYTER_CONFIG_DIR=str(tmp_path_factory.mktemp("jupyter-config")))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={ROOT / 'notebooks'}"] + (["--allow-root"] if os.geteuid() == 0 else [])
    log = open(runtime / "lab.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            if _get(f"{base}/api/status", token)[0] == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"JupyterLab did not start (exit {proc.poll()}):\n{(runtime / 'lab.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield base, token
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_the_lab_page_is_served(lab):
    base, token = lab
    status, html = _get(f"{base}/lab", token)
    assert status == 200 and "JupyterLab" in html


async def _run_cells(ws_url, token, cells, timeout=240):
    """Sends each cell as an execute_request on the kernel's websocket; returns [(status, stdout, error)] per cell."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    conn = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {token}"}))
    session, results = uuid.uuid4().hex, []
    for code in cells:
        msg_id = uuid.uuid4().hex
        conn.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": session, "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        out, err, status, idle = [], None, None, False
        end = time.time() + timeout
        while status is None or not idle:
            raw = await asyncio.wait_for(conn.read_message(), timeout=max(end - time.time(), 1))
            if raw is None:
                raise RuntimeError("the kernel's websocket closed")
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                err = f"{content['ename']}: {content['evalue']}"
            elif kind == "execute_reply":
                status = content["status"]
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        results.append((status, "".join(out), err))
    conn.close()
    return results


def test_a_notebook_opens_through_the_rest_api_and_its_first_cells_run_on_a_live_kernel(lab):
    base, token = lab
    status, text = _get(f"{base}/api/contents/{NOTEBOOK}", token)
    nb = json.loads(text)
    assert status == 200 and nb["type"] == "notebook"
    code = [c["source"] for c in nb["content"]["cells"] if c["cell_type"] == "code"]
    params = next(c for c in nb["content"]["cells"] if "parameters" in c["metadata"].get("tags", []))
    assert "scale" in params["source"]
    _, text = _get(f"{base}/api/sessions", token, "POST", {"path": NOTEBOOK, "type": "notebook", "kernel": {"name": "python3"}})
    session = json.loads(text)
    kid = session["kernel"]["id"]
    try:
        # the parameters cell as it is, then smoke scale (as papermill would inject it), the imports and set-up, and a check
        cells = [code[0], 'scale = "smoke"', code[1], "print(type(cfg).__name__, scale)"]
        results = asyncio.run(_run_cells(f"{base.replace('http', 'ws')}/api/kernels/{kid}/channels", token, cells))
    finally:
        _get(f"{base}/api/sessions/{session['id']}", token, "DELETE")
    for (st, _, err), cell in zip(results, cells):
        assert st == "ok", f"cell failed on the live kernel: {err}\n{cell[:300]}"
    assert results[-1][1].strip() == "MarginalConfig smoke"
