#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs from files the project already has.

Usage: make-seeds.py OUT_DIR [UI_CORPUS_DIR...]

  workflow          the shipped templates and every graph posted in a recorded transcript
  ui_conversion     UI-format exports from the workflow corpus folders given
  backend_messages  every websocket message and /history entry recorded from ComfyUI
  injection         each shipped template with its manifest and a few parameters
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
MAX_BYTES = 256 * 1024


def write(folder, name, value):
    folder.mkdir(parents=True, exist_ok=True)
    data = value if isinstance(value, bytes) else json.dumps(value).encode()
    if len(data) <= MAX_BYTES:
        (folder / name).write_bytes(data)


def main():
    out = pathlib.Path(sys.argv[1])
    transcripts = sorted((ROOT / "fixtures" / "transcripts").glob("*.json"))
    templates = sorted((ROOT / "templates").glob("*.json"))

    for path in templates:
        write(out / "workflow", path.stem, path.read_bytes())
        manifest = path.with_suffix(".toml")
        write(out / "injection", path.stem, {
            "workflow": json.loads(path.read_text()),
            "manifest": manifest.read_text() if manifest.exists() else "",
            "params": {"prompt": "a fox", "seed": 7, "steps": 2, "width": 64},
        })

    for path in transcripts:
        recorded = json.loads(path.read_text())
        for index, call in enumerate(recorded.get("http", [])):
            body = call.get("body")
            if isinstance(body, dict) and isinstance(body.get("prompt"), dict):
                write(out / "workflow", f"{path.stem}-{index}", body["prompt"])
        for index, message in enumerate(recorded.get("ws", [])):
            if "text" in message:
                write(out / "backend_messages", f"{path.stem}-ws-{index}", message["text"])
        for index, history in enumerate(recorded.get("history", [])):
            for entry in (history or {}).values():
                write(out / "backend_messages", f"{path.stem}-history-{index}", entry)

    for corpus in sys.argv[2:]:
        for path in sorted(pathlib.Path(corpus).rglob("*.json")):
            try:
                value = json.loads(path.read_text())
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(value, dict) and "nodes" in value and "links" in value:
                write(out / "ui_conversion", path.stem, path.read_bytes())


if __name__ == "__main__":
    main()
