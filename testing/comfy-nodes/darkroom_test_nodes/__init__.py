"""Darkroom's custom ComfyUI nodes for end-to-end tests of the gateway.

They exercise the parts of ComfyUI's protocol that a gateway has to relay:
progress, binary previews and text frames, execution errors, interrupts, and
output nodes whose UI result carries several kinds of output. They need only
what ComfyUI itself needs (torch, numpy, Pillow) plus the standard library.

Load them by linking this folder into ``<base-directory>/custom_nodes/``.
All nodes are in the category ``darkroom/testing``; see README.md.
"""

import itertools
import os
import time
import wave

import numpy as np
import torch
from PIL import Image

import comfy.model_management
import comfy.utils
import folder_paths

CATEGORY = "darkroom/testing"

_change_counter = itertools.count()


def _always_changed():
    """A value never returned before: makes ComfyUI re-run the node instead of using its cache."""
    return f"{time.time_ns()}-{next(_change_counter)}"


def _rgb(color):
    """0xRRGGBB int -> (r, g, b) ints."""
    color = int(color) & 0xFFFFFF
    return (color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF


def _solid_image(width, height, color):
    """An IMAGE tensor, shape [1, height, width, 3], float32 in 0..1, one colour."""
    r, g, b = _rgb(color)
    pixel = torch.tensor([r, g, b], dtype=torch.float32) / 255.0
    return pixel.expand(1, height, width, 3).clone()


def _tensor_to_pil(image):
    """One [H, W, C] IMAGE slice -> PIL RGB image."""
    array = np.clip(image.cpu().numpy() * 255.0, 0, 255).astype(np.uint8)
    return Image.fromarray(array[..., :3])


def _check_interrupt():
    # Raises comfy.model_management.InterruptProcessingException after POST /interrupt.
    comfy.model_management.throw_exception_if_processing_interrupted()


def _send_text(text, node_id):
    # ComfyUI's top-level server.py; imported late because it is only there inside a running server.
    from server import PromptServer

    PromptServer.instance.send_progress_text(text, node_id)


class DarkroomSteps:
    """N steps of M milliseconds with progress, optional previews and optional text frames."""

    CATEGORY = CATEGORY
    DESCRIPTION = "Sleeps steps x step_ms with progress, previews and text frames."
    FUNCTION = "run"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "steps": ("INT", {"default": 5, "min": 1, "max": 10000}),
                "step_ms": ("INT", {"default": 100, "min": 0, "max": 600000}),
                "preview": ("BOOLEAN", {"default": False}),
                "preview_format": (["JPEG", "PNG"], {"default": "JPEG"}),
                "progress_text": ("BOOLEAN", {"default": False}),
                "size": ("INT", {"default": 64, "min": 8, "max": 4096, "step": 8}),
                "color": ("INT", {"default": 0x3366CC, "min": 0, "max": 0xFFFFFF, "display": "color"}),
                # True: re-run on every prompt instead of answering from the cache.
                "always_run": ("BOOLEAN", {"default": True}),
            },
            "optional": {
                "image": ("IMAGE",),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, always_run=True, **_inputs):
        return _always_changed() if always_run else "cacheable"

    def run(self, steps, step_ms, preview, preview_format, progress_text, size, color, always_run,
            image=None, unique_id=None):
        bar = comfy.utils.ProgressBar(steps)
        for step in range(1, steps + 1):
            _check_interrupt()
            if step_ms:
                time.sleep(step_ms / 1000.0)
            frame = None
            if preview:
                # A colour ramp from blue to orange, so consecutive previews differ.
                level = int(255 * step / steps)
                picture = Image.new("RGB", (size, size), (level, 96, 255 - level))
                frame = (preview_format, picture, 512)  # the tuple latent previews use too
            bar.update_absolute(step, steps, frame)
            if progress_text:
                _send_text(f"step {step}/{steps}", unique_id)
        if image is not None:
            return (image,)
        return (_solid_image(size, size, color),)


class DarkroomFail:
    """Raises RuntimeError(message) when `fail` is on; otherwise passes its image through."""

    CATEGORY = CATEGORY
    DESCRIPTION = "Raises RuntimeError(message) when fail is true. Never cached."
    FUNCTION = "run"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "message": ("STRING", {"default": "darkroom test failure"}),
                "fail": ("BOOLEAN", {"default": True}),
            },
            "optional": {
                "image": ("IMAGE",),
            },
        }

    @classmethod
    def IS_CHANGED(cls, **_inputs):
        return _always_changed()

    def run(self, message, fail, image=None):
        if fail:
            raise RuntimeError(message)
        if image is None:
            image = _solid_image(8, 8, 0x000000)
        return (image,)


class DarkroomUntilInterrupted:
    """Runs until POST /interrupt, or until `max_seconds` have passed (then returns normally)."""

    CATEGORY = CATEGORY
    DESCRIPTION = "Loops until interrupted, reporting progress; returns after max_seconds."
    FUNCTION = "run"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                # Safety cap: return normally after this long.
                "max_seconds": ("INT", {"default": 600, "min": 1, "max": 86400}),
                # How often to report progress (value = elapsed ms, max = max_seconds * 1000).
                "heartbeat_ms": ("INT", {"default": 250, "min": 10, "max": 60000}),
            },
            "optional": {
                "image": ("IMAGE",),
            },
        }

    @classmethod
    def IS_CHANGED(cls, **_inputs):
        return _always_changed()

    def run(self, max_seconds, heartbeat_ms, image=None):
        cap_ms = max_seconds * 1000
        bar = comfy.utils.ProgressBar(cap_ms)
        started = time.monotonic()
        next_report = 0.0
        while True:
            _check_interrupt()
            elapsed_ms = (time.monotonic() - started) * 1000.0
            if elapsed_ms >= cap_ms:
                break
            if elapsed_ms >= next_report:
                # The hook behind ProgressBar also checks for an interrupt.
                bar.update_absolute(int(elapsed_ms), cap_ms)
                next_report = elapsed_ms + heartbeat_ms
            time.sleep(min(0.02, (cap_ms - elapsed_ms) / 1000.0))
        bar.update_absolute(cap_ms, cap_ms)
        if image is None:
            image = _solid_image(8, 8, 0x808080)
        return (image,)


class DarkroomMultiOutput:
    """Output node whose UI result has several kinds: images, text, audio (and a non-file flag)."""

    CATEGORY = CATEGORY
    DESCRIPTION = "Saves a PNG and a WAV; UI result has images, text, audio and animated."
    FUNCTION = "run"
    RETURN_TYPES = ()
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "filename_prefix": ("STRING", {"default": "darkroom/multi"}),
                "text": ("STRING", {"default": "darkroom multi output", "multiline": True}),
                "size": ("INT", {"default": 16, "min": 1, "max": 4096}),
                "color": ("INT", {"default": 0x22AA44, "min": 0, "max": 0xFFFFFF, "display": "color"}),
                "audio_ms": ("INT", {"default": 100, "min": 1, "max": 60000}),
            },
            "optional": {
                "image": ("IMAGE",),
            },
        }

    @classmethod
    def IS_CHANGED(cls, **_inputs):
        return _always_changed()

    def run(self, filename_prefix, text, size, color, audio_ms, image=None):
        if image is None:
            image = _solid_image(size, size, color)
        height, width = int(image.shape[1]), int(image.shape[2])
        out_dir = folder_paths.get_output_directory()
        folder, base, counter, subfolder, _prefix = folder_paths.get_save_image_path(
            filename_prefix, out_dir, width, height)
        os.makedirs(folder, exist_ok=True)

        first = counter
        images = []
        for frame in image:
            name = f"{base}_{counter:05}_.png"
            _tensor_to_pil(frame).save(os.path.join(folder, name), format="PNG", compress_level=4)
            images.append({"filename": name, "subfolder": subfolder, "type": "output"})
            counter += 1

        # A 440 Hz tone, 16-bit mono PCM at 8 kHz: a real, playable, tiny WAV.
        rate = 8000
        samples = max(1, rate * audio_ms // 1000)
        t = np.arange(samples, dtype=np.float64) / rate
        pcm = (0.25 * 32767 * np.sin(2 * np.pi * 440.0 * t)).astype("<i2")
        wav_name = f"{base}_{first:05}_.wav"
        with wave.open(os.path.join(folder, wav_name), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm.tobytes())
        audio = [{"filename": wav_name, "subfolder": subfolder, "type": "output"}]

        return {"ui": {"images": images, "text": [text], "audio": audio, "animated": [False]}}


class DarkroomText:
    """Output node returning {"ui": {"text": [text]}}: an `executed` message with no files."""

    CATEGORY = CATEGORY
    DESCRIPTION = "Output node whose UI result is {\"text\": [text]}."
    FUNCTION = "run"
    RETURN_TYPES = ()
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "hello from darkroom", "multiline": True})}}

    def run(self, text):
        return {"ui": {"text": [text]}}


NODE_CLASS_MAPPINGS = {
    "DarkroomSteps": DarkroomSteps,
    "DarkroomFail": DarkroomFail,
    "DarkroomUntilInterrupted": DarkroomUntilInterrupted,
    "DarkroomMultiOutput": DarkroomMultiOutput,
    "DarkroomText": DarkroomText,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "DarkroomSteps": "Darkroom: steps with progress/previews",
    "DarkroomFail": "Darkroom: fail on request",
    "DarkroomUntilInterrupted": "Darkroom: run until interrupted",
    "DarkroomMultiOutput": "Darkroom: multi-kind output",
    "DarkroomText": "Darkroom: text output",
}
