"""Drives a Comfy API v2 server with the official Python SDK (`comfy-sdk`), end to end.

Made for Darkroom in front of a real ComfyUI that has the project's test nodes and the
tiny checkpoint (crates/darkroom/tests/sdk_e2e.rs sets that up), but it only speaks the
public v2 contract through the SDK's public API, so any such server will do.

    COMFY_BASE_URL=http://127.0.0.1:8420 python testing/sdk/sdk_e2e.py

The server must be on 127.0.0.1: the SDK's default target is a public host, so the
script refuses to start without COMFY_BASE_URL naming the loopback address, and points
the SDK's second target (COMFY_ROUTER_BASE_URL, model runs, unused here) there too.

Checks, in order:
  1. a long job (DarkroomUntilInterrupted, capped at 120 s) starts running;
  2. a text-to-image job submitted behind it streams, from its first event to its last:
     a `queued` snapshot, `running`, progress, then `succeeded`, in lifecycle order;
  3. the long job is canceled while running and ends `canceled`, well before its cap;
  4. the text-to-image outputs download as valid PNGs of the advertised size and shape,
     whole, to a file, and by byte range;
  5. an uploaded PNG (an asset) used by LoadImage -> ImageInvert -> SaveImage produces
     the inverted image; the same bytes committed again are deduplicated.

Prints exactly one JSON line on stdout (the summary, `"ok": true|false`); progress and
the SDK's HTTP requests go to stderr. Exit status: 0 passed, 1 a check failed, 2 the
setup is wrong (no COMFY_BASE_URL, or not loopback).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import struct
import sys
import tempfile
import threading
import time
import traceback
import zlib
from pathlib import Path
from urllib.parse import urlsplit

# Everything must be done in well under the Rust test's own bound on this process.
TOTAL_SECONDS = 420
JOB_SECONDS = 180
CANCEL_SECONDS = 60
LONG_JOB_CAP_SECONDS = 120

TXT2IMG_SIZE = 64
INPUT_WIDTH, INPUT_HEIGHT = 24, 16
INPUT_COLOR = (200, 40, 90)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"

# Lifecycle order of the contract's statuses; terminal ones share the last rank.
STATUS_RANK = {
    "queued": 0,
    "running": 1,
    "canceling": 2,
    "succeeded": 3,
    "failed": 3,
    "canceled": 3,
    "expired": 3,
}


class CheckFailed(Exception):
    """A check on what the server did failed."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def log(message: str) -> None:
    print(f"[sdk-e2e] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- target


def loopback_target() -> str:
    """COMFY_BASE_URL, once it is known to name 127.0.0.1; exits 2 otherwise.

    Runs before comfy_sdk is imported: the SDK reads the variable per client, and with
    it unset the client would aim at a public host.
    """
    raw = os.environ.get("COMFY_BASE_URL", "").strip()
    if not raw:
        setup_error("COMFY_BASE_URL is not set: point it at the server under test")
    parts = urlsplit(raw)
    if parts.scheme != "http" or parts.hostname != "127.0.0.1" or parts.port is None:
        setup_error(f"COMFY_BASE_URL must be http://127.0.0.1:PORT, got {raw!r}")

    # Model runs go to a second target that defaults to a public host; this script makes
    # none, and this keeps even a mistaken one on the loopback.
    os.environ["COMFY_ROUTER_BASE_URL"] = raw
    # No credential: the server under test needs none and should receive none.
    os.environ.pop("COMFY_API_KEY", None)
    # httpx honours proxy variables; loopback traffic must not be sent to a proxy.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        os.environ.pop(name, None)
        os.environ.pop(name.lower(), None)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    return raw


def setup_error(message: str) -> None:
    print(json.dumps({"ok": False, "error": message}), flush=True)
    log(f"SETUP ERROR: {message}")
    sys.exit(2)


# ---------------------------------------------------------------------------- graphs
# API-format graphs, the same shapes as crates/testkit/src/graphs.rs.


def txt2img_graph(seed: int) -> dict:
    return {
        "4": {"class_type": "CheckpointLoaderSimple",
              "inputs": {"ckpt_name": "tiny-sd15.safetensors"}},
        "6": {"class_type": "CLIPTextEncode",
              "inputs": {"text": "a lighthouse at dusk", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage",
              "inputs": {"width": TXT2IMG_SIZE, "height": TXT2IMG_SIZE, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": 8, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage",
              "inputs": {"images": ["8", 0], "filename_prefix": "sdk-e2e/txt2img"}},
    }


def until_interrupted_graph() -> dict:
    return {
        "1": {"class_type": "DarkroomUntilInterrupted",
              "inputs": {"max_seconds": LONG_JOB_CAP_SECONDS, "heartbeat_ms": 50}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }


def invert_graph() -> dict:
    """LoadImage's `image` is set to the asset handle by the caller."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage",
              "inputs": {"images": ["2", 0], "filename_prefix": "sdk-e2e/inverted"}},
    }


# ---------------------------------------------------------------------------- PNG


def png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def solid_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """An 8-bit RGB PNG of one colour, every row unfiltered."""
    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (PNG_SIGNATURE + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(row * height)) + png_chunk(b"IEND", b""))


def read_png(data: bytes) -> tuple[int, int, tuple[int, ...]]:
    """(width, height, first pixel) of an 8-bit RGB or RGBA PNG, checking its structure:
    signature, every chunk's CRC, IHDR first, IEND last, and the pixel data's length."""
    check(data[:8] == PNG_SIGNATURE, f"not a PNG: starts with {data[:8]!r}")
    offset, chunks = 8, []
    while offset < len(data):
        check(offset + 12 <= len(data), "PNG truncated inside a chunk header")
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind = data[offset + 4:offset + 8]
        body = data[offset + 8:offset + 8 + length]
        check(len(body) == length, f"PNG chunk {kind!r} truncated")
        (crc,) = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        check(zlib.crc32(kind + body) & 0xFFFFFFFF == crc, f"PNG chunk {kind!r} has a bad CRC")
        chunks.append((kind, body))
        offset += 12 + length
    check(chunks and chunks[0][0] == b"IHDR", "PNG does not start with IHDR")
    check(chunks[-1][0] == b"IEND", "PNG does not end with IEND")
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    check(depth == 8 and color in (2, 6) and interlace == 0,
          f"unexpected PNG format: depth {depth}, colour type {color}, interlace {interlace}")
    channels = 3 if color == 2 else 4
    pixels = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    check(len(pixels) == height * (1 + width * channels), "PNG pixel data has the wrong length")
    # Row 0 has no row above and pixel 0 none to its left, so every filter leaves its
    # bytes as they are: the first pixel reads directly after the filter byte.
    return width, height, tuple(pixels[1:1 + channels])


# ---------------------------------------------------------------------------- events


class EventCollector(threading.Thread):
    """Follows one job's event stream on a client of its own, recording every event."""

    def __init__(self, job) -> None:
        super().__init__(name=f"events-{job.id}", daemon=True)
        self.job = job
        self.events: list = []
        self.first_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for event in self.job.events():
                self.events.append(event)
                self.first_event.set()
        except BaseException as error:  # reported by the main thread
            self.error = error
        finally:
            self.first_event.set()


def describe(event) -> str:
    name = type(event).__name__
    if name == "StatusChange":
        return f"status:{event.status}"
    if name == "Progress":
        return f"progress:{event.value:.2f}"
    if name == "OutputReady":
        return f"output:{event.output.node_id}"
    return name.lower()


def check_lifecycle(events: list, final: str) -> dict:
    """The order the contract promises: a status snapshot first, statuses in lifecycle
    order, progress only while running, the terminal status last; returns counts."""
    from comfy_sdk import OutputReady, Preview, Progress, StatusChange

    trace = " ".join(describe(event) for event in events)
    check(events, "the event stream ended without a single event")
    check(isinstance(events[0], StatusChange),
          f"the first event is not the status snapshot the contract sends on connect: {trace}")
    statuses = [event.status for event in events if isinstance(event, StatusChange)]
    ranks = [STATUS_RANK.get(status, -1) for status in statuses]
    check(-1 not in ranks, f"a status outside the contract: {statuses}")
    check(ranks == sorted(ranks), f"statuses out of lifecycle order: {statuses}")
    check("running" in statuses, f"no `running` status event: {trace}")
    check(isinstance(events[-1], StatusChange) and events[-1].status == final,
          f"the last event is not status `{final}`: {trace}")

    running_at = next(i for i, event in enumerate(events)
                      if isinstance(event, StatusChange) and event.status == "running")
    progress = [(i, event) for i, event in enumerate(events) if isinstance(event, Progress)]
    check(progress, f"no progress event: {trace}")
    check(all(i > running_at for i, _ in progress), f"progress before `running`: {trace}")
    values = [event.value for _, event in progress]
    check(all(0.0 <= value <= 1.0 for value in values), f"progress outside [0, 1]: {values}")
    check(values == sorted(values), f"overall progress went backwards: {values}")

    for event in events:
        if isinstance(event, Preview):
            magic = JPEG_MAGIC if event.content_type == "image/jpeg" else PNG_SIGNATURE
            check(event.data.startswith(magic),
                  f"a preview's bytes are not its content type {event.content_type}")
    return {
        "statuses": statuses,
        "progress": len(progress),
        "previews": sum(isinstance(event, Preview) for event in events),
        "outputs": sum(isinstance(event, OutputReady) for event in events),
        "total": len(events),
    }


def wait_until_running(job) -> list:
    """Follows `job`'s stream until it runs (a `running` status or a progress event)."""
    from comfy_sdk import Progress, StatusChange

    seen, stream = [], job.events()
    try:
        for event in stream:
            seen.append(event)
            if isinstance(event, Progress) or (
                    isinstance(event, StatusChange) and event.status == "running"):
                return seen
            ended = isinstance(event, StatusChange) and STATUS_RANK.get(event.status) == 3
            check(not ended, f"job {job.id} ended {getattr(event, 'status', '')} before it ran")
    finally:
        stream.close()
    raise CheckFailed(f"job {job.id}'s stream ended before it ran: "
                      + " ".join(describe(event) for event in seen))


# ---------------------------------------------------------------------------- steps


class Run:
    """The steps, their timings and the summary."""

    def __init__(self, base_url: str, workdir: Path) -> None:
        self.base_url = base_url
        self.workdir = workdir
        self.summary: dict = {"ok": False, "base_url": base_url, "seconds": {}}
        self.current = "start"

    @contextlib.contextmanager
    def step(self, name: str):
        self.current = name
        log(f"{name} ...")
        started = time.monotonic()
        yield
        elapsed = round(time.monotonic() - started, 2)
        self.summary["seconds"][name] = elapsed
        log(f"{name}: ok ({elapsed} s)")

    def execute(self) -> None:
        import comfy_sdk
        from comfy_sdk import Comfy

        self.summary["sdk"] = comfy_sdk.__version__
        with self.step("connect"):
            client = Comfy(timeout=30.0)
            watcher = Comfy(timeout=30.0)
            check("127.0.0.1" in repr(client), f"the client does not target loopback: {client!r}")

        with self.step("long_job_running"):
            long_job = client.submit(client.workflows.from_json(until_interrupted_graph()))
            seen = wait_until_running(long_job)
            self.summary["long_job"] = {"id": long_job.id,
                                        "first_events": [describe(event) for event in seen]}

        with self.step("txt2img_queued_and_streaming"):
            graph = txt2img_graph(seed=int(time.time()))
            txt2img = client.submit(client.workflows.from_json(graph))
            check(txt2img.status == "queued", f"a new job is {txt2img.status}, not queued")
            collector = EventCollector(watcher.jobs.get(txt2img.id))
            collector.start()
            check(collector.first_event.wait(30), "no event within 30 s of connecting")
            check(collector.error is None, f"event stream failed: {collector.error!r}")
            check(collector.events, "the event stream ended without a single event")
            first = describe(collector.events[0])
            check(first == "status:queued",
                  f"behind a running job the snapshot on connect is status:queued, not {first}")

        with self.step("cancel_running_job"):
            self.cancel(long_job)

        with self.step("txt2img_events"):
            collector.join(JOB_SECONDS)
            check(not collector.is_alive(),
                  f"job {txt2img.id}'s stream still open after {JOB_SECONDS} s")
            check(collector.error is None, f"event stream failed: {collector.error!r}")
            events = check_lifecycle(collector.events, final="succeeded")
            txt2img.result()
            self.summary["txt2img"] = {"id": txt2img.id, "events": events}

        with self.step("txt2img_outputs"):
            outputs = txt2img.get_outputs("9")
            check(len(outputs) == 1, f"SaveImage (node 9) has {len(outputs)} outputs, not 1")
            streamed = {event.output.id for event in collector.events
                        if type(event).__name__ == "OutputReady"}
            check(streamed <= {output.id for output in txt2img.outputs},
                  "an `output` event names an output the job does not list")
            self.summary["txt2img"]["outputs"] = [
                self.download(output, (TXT2IMG_SIZE, TXT2IMG_SIZE)) for output in outputs]

        with self.step("asset_upload"):
            asset = self.upload(client)

        with self.step("asset_used_by_workflow"):
            workflow = client.workflows.from_json(invert_graph())
            workflow.set_input("1", "image", asset)
            inverted = client.run(workflow, timeout=JOB_SECONDS)
            outputs = inverted.get_outputs("3")
            check(len(outputs) == 1, f"SaveImage (node 3) has {len(outputs)} outputs, not 1")
            pixel = self.download(outputs[0], (INPUT_WIDTH, INPUT_HEIGHT))["first_pixel"]
            wanted = [255 - value for value in INPUT_COLOR]
            check(all(abs(got - want) <= 1 for got, want in zip(pixel, wanted)),
                  f"the output is not the uploaded image inverted: pixel {pixel}, wanted {wanted}")
            self.summary["asset"]["job"] = inverted.id

        with self.step("asset_dedup"):
            again = client.assets.from_bytes(solid_png(INPUT_WIDTH, INPUT_HEIGHT, INPUT_COLOR),
                                             filename="sdk-e2e-again.png", content_type="image/png")
            again.commit()
            check(again.hash == asset.hash, f"same bytes, other hash: {again.hash} vs {asset.hash}")
            check(again.created_new is not True,
                  "the same bytes committed again were stored as a new blob (created_new true)")
            self.summary["asset"]["dedup"] = {"id": again.id, "created_new": again.created_new}

        client.close()
        watcher.close()
        self.summary["ok"] = True

    def cancel(self, job) -> None:
        from comfy_sdk import StatusChange

        asked = time.monotonic()
        job.cancel()
        check(job.status in ("canceling", "canceled"),
              f"cancel of a running job answered status {job.status}")
        answered = job.status
        stream = job.events()
        try:
            statuses = [event.status for event in stream if isinstance(event, StatusChange)]
        finally:
            stream.close()
        check(statuses and statuses[-1] == "canceled",
              f"the canceled job's stream ended without status canceled: {statuses}")
        job.wait(timeout=CANCEL_SECONDS)
        took = time.monotonic() - asked
        check(job.status == "canceled", f"the canceled job ended {job.status}")
        check(took < CANCEL_SECONDS,
              f"cancel took {took:.1f} s; the job caps itself at {LONG_JOB_CAP_SECONDS} s")
        job.cancel()
        check(job.status == "canceled", f"canceling again changed the status to {job.status}")
        self.summary["long_job"].update(
            {"cancel_answer": answered, "canceled_after_s": round(took, 2)})

    def download(self, output, size: tuple[int, int]) -> dict:
        """Every way the SDK reads an output, each checked against the advertised size."""
        check(output.type == "image" and output.content_type == "image/png",
              f"output {output.name} is {output.type} {output.content_type}, not an image/png")
        data = output.to_bytes()
        check(len(data) == output.size_bytes,
              f"output {output.name}: {len(data)} bytes downloaded, {output.size_bytes} advertised")
        width, height, pixel = read_png(data)
        check((width, height) == size, f"output {output.name} is {width}x{height}, not {size}")
        path = output.to_file(self.workdir / f"{output.id}.png")
        check(path.read_bytes() == data, f"output {output.name} differs when written to a file")
        check(output.to_bytes(range=(0, 7)) == PNG_SIGNATURE,
              f"a ranged read of output {output.name} is not its first 8 bytes")
        return {"id": output.id, "name": output.name, "bytes": len(data), "first_pixel": pixel}

    def upload(self, client):
        path = self.workdir / "sdk-e2e-input.png"
        path.write_bytes(solid_png(INPUT_WIDTH, INPUT_HEIGHT, INPUT_COLOR))
        asset = client.assets.from_file(path)
        local_hash = asset.hash
        asset_id = asset.commit()
        check(bool(asset_id), "the upload returned no asset id")
        check(asset.hash == local_hash, f"server hash {asset.hash} is not the local {local_hash}")
        check(asset.created_new is True, f"a first upload has created_new {asset.created_new}")
        check(asset.job_id is None, f"an uploaded asset names a producing job {asset.job_id}")
        self.summary["asset"] = {"id": asset_id, "hash": local_hash}
        return asset


def error_text(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    for attribute in ("code", "http_status", "request_id"):
        value = getattr(error, attribute, None)
        if value is not None:
            text += f" [{attribute}={value}]"
    return text


def main() -> int:
    base_url = loopback_target()
    # The SDK's requests (method, URL, status), for the reader of a failure.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="[sdk-e2e] %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.INFO)

    def out_of_time(_signal, _frame):
        raise TimeoutError(f"the whole run exceeded {TOTAL_SECONDS} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(TOTAL_SECONDS)
    with tempfile.TemporaryDirectory(prefix="sdk-e2e-") as workdir:
        run = Run(base_url, Path(workdir))
        try:
            run.execute()
        except BaseException as error:  # every failure ends in the summary line
            traceback.print_exc(file=sys.stderr)
            run.summary.update({"failed_step": run.current, "error": error_text(error)})
            log(f"FAILED in step {run.current}: {error_text(error)}")
    signal.alarm(0)
    print(json.dumps(run.summary, separators=(",", ":")), flush=True)
    return 0 if run.summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
