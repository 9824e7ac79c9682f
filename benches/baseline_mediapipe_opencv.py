#!/usr/bin/env python3
"""Python peers for benches/fps.rs: what an integrator would otherwise write around the same
MediaPipe selfie-segmentation model, measured on the same frames in the same run.

Both run the original TFLite model in LiteRT (the TFLite runtime MediaPipe embeds; PyPI
ai-edge-litert, 1 thread) with OpenCV on one thread:

* "competent" (the headline peer): what someone who knows OpenCV writes. INTER_AREA downscale
  to the model input, the float mask resized with INTER_LINEAR, a soft composite with
  cv2.blendLinear (no hard threshold), and for blur: the frame downscaled 4x, GaussianBlur,
  upscaled (a blur of that strength does not need full resolution).
* "naive" (the first baseline, kept for comparison): GaussianBlur of the full-resolution
  frame with a huge kernel and a hard np.where composite.

PyPI mediapipe 1.x dropped the legacy `solutions.selfie_segmentation` API, and its tasks
API refuses this model without TFLite metadata, so the interpreter is used directly: this
is the same inference engine with less Python overhead, i.e. peers that favour Python.

    baseline_mediapipe_opencv.py SECONDS SIZES MODEL.tflite   (prints JSON)
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
# Blur sigma as backgroundfx's default blur-strength=50: 1/20 of the frame height.
SIGMA_SHARE = 0.05


def person_mask(frame, interpolation):
    small = cv2.resize(frame, (model_w, model_h), interpolation=interpolation)
    small = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    interpreter.set_tensor(input_index, (small.astype(np.float32) * (1.0 / 255.0))[None])
    interpreter.invoke()
    return interpreter.get_tensor(output_index)[0]


def naive(frame, effect, colour, picture):
    mask = person_mask(frame, cv2.INTER_LINEAR)
    mask = cv2.resize(mask, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_LINEAR)
    condition = (mask > 0.5)[:, :, None]
    if effect == "blur":
        background = cv2.GaussianBlur(frame, (0, 0), sigmaX=frame.shape[0] * SIGMA_SHARE)
    elif effect == "solid":
        background = colour
    else:
        background = picture
    return np.where(condition, frame, background)


def competent(frame, effect, colour, picture):
    height, width = frame.shape[:2]
    mask = person_mask(frame, cv2.INTER_AREA)
    mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
    if effect == "blur":
        small = cv2.resize(frame, (width // 4, height // 4), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigmaX=height * SIGMA_SHARE / 4)
        background = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    elif effect == "solid":
        background = colour
    else:
        background = picture
    return cv2.blendLinear(frame, background, mask, 1.0 - mask)


PEERS = {
    "competent": ("LiteRT 1 thread + OpenCV: INTER_AREA input, soft blendLinear composite, blur at 1/4 size", competent),
    "naive": ("LiteRT 1 thread + OpenCV: full-size GaussianBlur, hard np.where composite", naive),
}

results = []
for width, height in sizes:
    frames = []
    for name in ["carphone000", "carphone060", "astronaut"]:
        image = cv2.imread(os.path.join(root, "tests/data/parity", f"{name}_256x144.png"))
        frames.append(cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR))
    picture = cv2.resize(cv2.imread(os.path.join(root, "tests/data/parity/astronaut_256x256.png")), (width, height))
    colour = np.full((height, width, 3), (60, 120, 0), np.uint8)
    for effect in ["blur", "solid", "picture"]:
        for peer, (_, process) in PEERS.items():
            for i in range(3):
                process(frames[i % 3], effect, colour, picture)
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                process(frames[count % 3], effect, colour, picture)
                count += 1
            fps = count / (time.perf_counter() - start)
            print(f"{peer} peer {width}x{height} {effect}: {fps:.1f} fps", file=sys.stderr)
            results.append({"peer": peer, "width": width, "height": height, "effect": effect, "fps_per_core": round(fps, 1)})
print(json.dumps({"peers": {name: text for name, (text, _) in PEERS.items()}, "results": results}))
