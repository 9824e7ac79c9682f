#!/usr/bin/env python3
"""Baseline for benches/fps.rs: what an integrator would otherwise write in Python.

The same frames (tests/data/parity, scaled to each size) go through the original MediaPipe
selfie-segmentation TFLite model in LiteRT (the TFLite runtime MediaPipe embeds; PyPI
ai-edge-litert, 1 thread) and OpenCV (resize to the model input, GaussianBlur of the
frame, resize of the mask, np.where composite), one thread everywhere. Prints JSON.

PyPI mediapipe 1.x dropped the legacy `solutions.selfie_segmentation` API, and its tasks
API refuses this model without TFLite metadata, so the interpreter is used directly: this
is the same inference engine with less Python overhead, i.e. a baseline that favours Python.
"""

import json
import os
import sys
import time

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

cv2.setNumThreads(1)
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
sizes = [tuple(map(int, s.split("x"))) for s in (sys.argv[2] if len(sys.argv) > 2 else "640x360,1280x720,1920x1080").split(",")]

model_path = sys.argv[3] if len(sys.argv) > 3 else None
interpreter = Interpreter(model_path=model_path, num_threads=1)
interpreter.allocate_tensors()
input_index = interpreter.get_input_details()[0]["index"]
output_index = interpreter.get_output_details()[0]["index"]
_, model_h, model_w, _ = interpreter.get_input_details()[0]["shape"]


def process(frame, effect, colour, picture):
    small = cv2.resize(frame, (model_w, model_h), interpolation=cv2.INTER_AREA)
    interpreter.set_tensor(input_index, (small.astype(np.float32) / 255.0)[None])
    interpreter.invoke()
    mask = interpreter.get_tensor(output_index)[0]
    mask = cv2.resize(mask, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_LINEAR)
    condition = (mask > 0.5)[:, :, None]
    if effect == "blur":
        background = cv2.GaussianBlur(frame, (0, 0), sigmaX=frame.shape[0] / 20)
    elif effect == "solid":
        background = colour
    else:
        background = picture
    return np.where(condition, frame, background)


results = []
for width, height in sizes:
    frames = []
    for name in ["carphone000", "carphone060", "astronaut"]:
        image = cv2.imread(os.path.join(root, "tests/data/parity", f"{name}_256x144.png"))
        frames.append(cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR))
    picture = cv2.resize(cv2.imread(os.path.join(root, "tests/data/parity/astronaut_256x256.png")), (width, height))
    colour = np.full((height, width, 3), (60, 120, 0), np.uint8)
    for effect in ["blur", "solid", "picture"]:
        for i in range(3):
            process(frames[i % 3], effect, colour, picture)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            process(frames[count % 3], effect, colour, picture)
            count += 1
        fps = count / (time.perf_counter() - start)
        print(f"baseline {width}x{height} {effect}: {fps:.1f} fps", file=sys.stderr)
        results.append({"width": width, "height": height, "effect": effect, "fps_per_core": round(fps, 1)})
print(json.dumps({"baseline": "LiteRT (MediaPipe model) + OpenCV + numpy, 1 thread", "results": results}))
