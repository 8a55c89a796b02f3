#!/usr/bin/env python3
"""Checks run by smoke-real-comfyui.sh against a running ComfyUI (standard library only).

    python3 smoke_real_comfyui.py PORT

Submits the standard txt2img graph and one graph per Darkroom test node, waits for
each to reach /history, and checks status and outputs. Prints one PASS/FAIL line per
check and a summary; exit status 0 only if everything passed. Talks to 127.0.0.1 only.
"""

import base64
import hashlib
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8188
BASE = f"http://127.0.0.1:{PORT}"
CLIENT_ID = uuid.uuid4().hex
JOB_TIMEOUT = 120.0
OUR_NODES = ["DarkroomSteps", "DarkroomFail", "DarkroomUntilInterrupted", "DarkroomMultiOutput", "DarkroomText"]


class CheckFailed(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise CheckFailed(what)


def http(method, path, body=None, timeout=30.0):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def get_json(path):
    status, raw = http("GET", path)
    expect(status == 200, f"GET {path} -> HTTP {status}: {raw[:300]!r}")
    return json.loads(raw)


def submit(graph):
    status, raw = http("POST", "/prompt", {"prompt": graph, "client_id": CLIENT_ID})
    expect(status == 200, f"POST /prompt -> HTTP {status}: {raw[:500]!r}")
    reply = json.loads(raw)
    expect(not reply.get("node_errors"), f"node_errors: {reply.get('node_errors')}")
    return reply["prompt_id"]


def wait_history(prompt_id, timeout=JOB_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = get_json(f"/history/{prompt_id}").get(prompt_id)
        if entry and entry.get("status", {}).get("status_str") in ("success", "error"):
            return entry
        time.sleep(0.05)
    raise CheckFailed(f"prompt {prompt_id} not finished in /history after {timeout:.0f} s")


def message_types(entry):
    return [m[0] for m in entry["status"]["messages"]]


def message(entry, kind):
    for name, data in entry["status"]["messages"]:
        if name == kind:
            return data
    raise CheckFailed(f"no {kind} message in history: {message_types(entry)}")


def expect_success(entry):
    status = entry["status"]
    expect(status["status_str"] == "success" and status["completed"] is True,
           f"expected success, got {status['status_str']}: {json.dumps(status['messages'])[:800]}")


def fetch_view(item):
    query = urllib.parse.urlencode({"filename": item["filename"], "subfolder": item["subfolder"],
                                    "type": item["type"]})
    status, raw = http("GET", "/view?" + query)
    expect(status == 200, f"GET /view {item} -> HTTP {status}")
    return raw


def png_size(raw):
    expect(raw[:8] == b"\x89PNG\r\n\x1a\n", f"not a PNG: {raw[:8]!r}")
    width, height = struct.unpack(">II", raw[16:24])
    return width, height


# ---- a minimal websocket observer (RFC 6455 client, enough for ComfyUI's /ws) ---------------


class Observer(threading.Thread):
    """Collects every message ComfyUI sends to our client id: dicts for JSON, bytes for binary."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", PORT), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws?clientId={CLIENT_ID} HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\n"
                           f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.pending = b""
        while b"\r\n\r\n" not in self.pending:
            chunk = self.sock.recv(4096)
            expect(chunk, "websocket closed during the handshake")
            self.pending += chunk
        head, self.pending = self.pending.split(b"\r\n\r\n", 1)
        expect(head.split(b"\r\n")[0].split(b" ")[1] == b"101", f"websocket handshake: {head[:100]!r}")
        self.sock.settimeout(None)
        self.messages = []
        self.cond = threading.Condition()

    def _take(self, n):
        while len(self.pending) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.pending += chunk
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    def _send(self, opcode, payload):
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def run(self):
        message, kind = b"", None
        try:
            while True:
                b0, b1 = self._take(2)
                length = b1 & 0x7F
                if length == 126:
                    length = struct.unpack(">H", self._take(2))[0]
                elif length == 127:
                    length = struct.unpack(">Q", self._take(8))[0]
                mask = self._take(4) if b1 & 0x80 else None
                payload = self._take(length)
                if mask:
                    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                opcode = b0 & 0x0F
                if opcode == 8:
                    break
                if opcode == 9:
                    self._send(10, payload[:125])
                    continue
                if opcode in (1, 2):
                    message, kind = payload, opcode
                elif opcode == 0:
                    message += payload
                else:
                    continue
                if b0 & 0x80:
                    item = json.loads(message) if kind == 1 else bytes(message)
                    with self.cond:
                        self.messages.append(item)
                        self.cond.notify_all()
        except (EOFError, OSError):
            pass

    def mark(self):
        with self.cond:
            return len(self.messages)

    def until_done(self, start, prompt_id, timeout=10.0):
        """Messages from index `start` up to the final `executing` (node null) of prompt_id."""
        def done():
            return any(isinstance(m, dict) and m.get("type") == "executing" and m["data"].get("node") is None
                       and m["data"].get("prompt_id") == prompt_id for m in self.messages[start:])
        with self.cond:
            expect(self.cond.wait_for(done, timeout), f"no final 'executing' for {prompt_id} on the websocket")
            return list(self.messages[start:])


OBSERVER = None


def json_messages(messages, kind):
    return [m["data"] for m in messages if isinstance(m, dict) and m.get("type") == kind]


def binary_frames(messages, event):
    return [m[4:] for m in messages if isinstance(m, bytes) and struct.unpack(">I", m[:4])[0] == event]


# ---- checks ---------------------------------------------------------------------------------


def check_object_info():
    info = get_json("/object_info")
    missing = [n for n in OUR_NODES if n not in info]
    expect(not missing, f"nodes not loaded: {missing}")
    for name in OUR_NODES:
        expect(info[name]["category"] == "darkroom/testing", f"{name} category is {info[name]['category']}")
    return f"{len(info)} node classes, all 5 Darkroom nodes present"


def check_txt2img():
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red lighthouse at dusk", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 42, "steps": 4, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "smoke/txt2img", "images": ["8", 0]}},
    }
    entry = wait_history(submit(graph))
    expect_success(entry)
    images = entry["outputs"]["9"]["images"]
    expect(len(images) == 1, f"expected 1 image, got {images}")
    item = images[0]
    expect(item["type"] == "output" and item["subfolder"] == "smoke", f"unexpected image item {item}")
    raw = fetch_view(item)
    size = png_size(raw)
    expect(size == (64, 64), f"image is {size}, expected 64x64")
    return f"{item['filename']} 64x64, sha256 {hashlib.sha256(raw).hexdigest()[:16]}"


def check_steps():
    graph = {
        "1": {"class_type": "DarkroomSteps", "inputs": {
            "steps": 3, "step_ms": 20, "preview": True, "preview_format": "PNG", "progress_text": True,
            "size": 16, "color": 0x3366CC, "always_run": True}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    start = OBSERVER.mark()
    prompt_id = submit(graph)
    entry = wait_history(prompt_id)
    expect_success(entry)
    item = entry["outputs"]["2"]["images"][0]
    expect(item["type"] == "temp", f"unexpected preview item {item}")
    seen = OBSERVER.until_done(start, prompt_id)
    progress = [(p["value"], p["max"]) for p in json_messages(seen, "progress") if p["node"] == "1"]
    expect(progress == [(1, 3), (2, 3), (3, 3)], f"progress messages {progress}")
    previews = binary_frames(seen, 1)
    expect(len(previews) == 3, f"{len(previews)} preview frames, expected 3")
    for frame in previews:
        expect(struct.unpack(">I", frame[:4])[0] == 2 and frame[4:12] == b"\x89PNG\r\n\x1a\n",
               f"preview frame is not a PNG: {frame[:12]!r}")
    texts = []
    for frame in binary_frames(seen, 3):
        n = struct.unpack(">I", frame[:4])[0]
        texts.append((frame[4:4 + n].decode(), frame[4 + n:].decode()))
    expect(texts == [("1", "step 1/3"), ("1", "step 2/3"), ("1", "step 3/3")], f"text frames {texts}")
    expect(png_size(fetch_view(item)) == (16, 16), "preview image is not 16x16")
    # always_run: a second identical prompt runs the node again.
    again = wait_history(submit(graph))
    expect_success(again)
    expect("1" not in message(again, "execution_cached")["nodes"], "DarkroomSteps was cached despite always_run")
    return "progress 1..3/3, 3 PNG preview frames, 3 TEXT frames, always_run re-executes"


def check_steps_cacheable():
    graph = {
        "1": {"class_type": "DarkroomSteps", "inputs": {
            "steps": 1, "step_ms": 0, "preview": False, "preview_format": "JPEG", "progress_text": False,
            "size": 8, "color": 0x102030, "always_run": False}},
        "2": {"class_type": "DarkroomText", "inputs": {"text": "cache probe"}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    expect_success(wait_history(submit(graph)))
    second = wait_history(submit(graph))
    expect_success(second)
    cached = message(second, "execution_cached")["nodes"]
    expect("1" in cached, f"always_run=false should be cached, execution_cached nodes={cached}")
    return f"second run cached nodes {cached}"


def check_fail():
    graph = {
        "1": {"class_type": "DarkroomFail", "inputs": {"message": "smoke test boom", "fail": True}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    entry = wait_history(submit(graph))
    status = entry["status"]
    expect(status["status_str"] == "error" and status["completed"] is False, f"expected error, got {status}")
    err = message(entry, "execution_error")
    expect(err["node_type"] == "DarkroomFail" and err["exception_type"] == "RuntimeError",
           f"unexpected execution_error {err}")
    expect(err["exception_message"].strip() == "smoke test boom", f"message was {err['exception_message']!r}")
    expect(entry["outputs"] == {}, f"outputs should be empty: {entry['outputs']}")
    return "RuntimeError 'smoke test boom' -> status error"


def check_fail_passthrough():
    graph = {
        "1": {"class_type": "DarkroomSteps", "inputs": {
            "steps": 1, "step_ms": 0, "preview": False, "preview_format": "JPEG", "progress_text": False,
            "size": 24, "color": 0xFF0000, "always_run": True}},
        "2": {"class_type": "DarkroomFail", "inputs": {"message": "unused", "fail": False, "image": ["1", 0]}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    entry = wait_history(submit(graph))
    expect_success(entry)
    size = png_size(fetch_view(entry["outputs"]["3"]["images"][0]))
    expect(size == (24, 24), f"passed-through image is {size}, expected 24x24")
    return "fail=false passes the image through"


def check_interrupt():
    graph = {
        "1": {"class_type": "DarkroomUntilInterrupted", "inputs": {"max_seconds": 60, "heartbeat_ms": 100}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    start = OBSERVER.mark()
    prompt_id = submit(graph)
    deadline = time.monotonic() + 30
    while True:
        running = [item[1] for item in get_json("/queue")["queue_running"]]
        if prompt_id in running:
            break
        expect(time.monotonic() < deadline, "prompt never started running")
        time.sleep(0.05)
    time.sleep(0.5)
    status, _ = http("POST", "/interrupt", {"prompt_id": prompt_id})
    expect(status == 200, f"POST /interrupt -> HTTP {status}")
    t0 = time.monotonic()
    entry = wait_history(prompt_id, timeout=30)
    latency = time.monotonic() - t0
    expect(entry["status"]["status_str"] == "error", f"expected error status, got {entry['status']['status_str']}")
    data = message(entry, "execution_interrupted")
    expect(data["node_type"] == "DarkroomUntilInterrupted", f"unexpected execution_interrupted {data}")
    seen = OBSERVER.until_done(start, prompt_id)
    expect(json_messages(seen, "execution_interrupted"), "no execution_interrupted on the websocket")
    beats = [p for p in json_messages(seen, "progress") if p["node"] == "1"]
    expect(len(beats) >= 2 and all(p["max"] == 60000 for p in beats), f"heartbeat progress {beats}")
    return f"{len(beats)} heartbeats, interrupted, in history after {latency:.2f} s"


def check_until_cap():
    graph = {
        "1": {"class_type": "DarkroomUntilInterrupted", "inputs": {"max_seconds": 1, "heartbeat_ms": 250}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    t0 = time.monotonic()
    entry = wait_history(submit(graph), timeout=30)
    expect_success(entry)
    took = time.monotonic() - t0
    expect(took >= 1.0, f"returned after {took:.2f} s, before the 1 s cap")
    return f"returned on its own after {took:.2f} s"


def check_multi_output():
    graph = {
        "1": {"class_type": "DarkroomMultiOutput", "inputs": {
            "filename_prefix": "smoke/multi", "text": "several kinds", "size": 12, "color": 0x22AA44,
            "audio_ms": 50}},
    }
    entry = wait_history(submit(graph))
    expect_success(entry)
    out = entry["outputs"]["1"]
    expect(sorted(out) == ["animated", "audio", "images", "text"], f"output keys {sorted(out)}")
    expect(out["text"] == ["several kinds"], f"text {out['text']}")
    expect(out["animated"] == [False], f"animated {out['animated']}")
    image, audio = out["images"][0], out["audio"][0]
    for item in (image, audio):
        expect(item["type"] == "output" and item["subfolder"] == "smoke", f"unexpected item {item}")
    expect(png_size(fetch_view(image)) == (12, 12), "PNG is not 12x12")
    wav = fetch_view(audio)
    expect(wav[:4] == b"RIFF" and wav[8:12] == b"WAVE", f"not a WAV: {wav[:12]!r}")
    return json.dumps(out, separators=(",", ":"))


def check_text():
    graph = {"1": {"class_type": "DarkroomText", "inputs": {"text": "hello gateway"}}}
    entry = wait_history(submit(graph))
    expect_success(entry)
    expect(entry["outputs"] == {"1": {"text": ["hello gateway"]}}, f"outputs {entry['outputs']}")
    return "outputs {\"1\": {\"text\": [\"hello gateway\"]}}"


CHECKS = [
    ("object_info", check_object_info),
    ("txt2img tiny-sd15 64x64 4 steps", check_txt2img),
    ("DarkroomSteps progress/preview/text", check_steps),
    ("DarkroomSteps always_run=false is cached", check_steps_cacheable),
    ("DarkroomFail raises", check_fail),
    ("DarkroomFail fail=false passes through", check_fail_passthrough),
    ("DarkroomUntilInterrupted + POST /interrupt", check_interrupt),
    ("DarkroomUntilInterrupted safety cap", check_until_cap),
    ("DarkroomMultiOutput", check_multi_output),
    ("DarkroomText", check_text),
]


def main():
    global OBSERVER
    OBSERVER = Observer()
    OBSERVER.start()
    failures = 0
    for name, fn in CHECKS:
        t0 = time.monotonic()
        try:
            detail = fn()
            print(f"PASS  {name} ({time.monotonic() - t0:.2f} s): {detail}", flush=True)
        except Exception as exc:  # a failed check must not stop the others
            failures += 1
            print(f"FAIL  {name} ({time.monotonic() - t0:.2f} s): {type(exc).__name__}: {exc}", flush=True)
    print(f"{len(CHECKS) - failures}/{len(CHECKS)} checks passed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
