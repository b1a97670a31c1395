"""Write the three sample images of images/, one synthetic patch per class, bit for bit.

    python scripts/make_sample_images.py            # rewrites images/*.png
    python scripts/make_sample_images.py --out DIR  # writes them somewhere else

Each image is one patch from ``cnn.synthetic.make_class_patches`` at the case study's input size,
drawn from ``numpy.random.default_rng(SEEDS[name])``, scaled to 8 bits and saved as a grayscale PNG
without metadata. The seeds were picked by eye, so that each image shows its class's lesion
clearly; they were not picked by what any network predicts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from cnn.casestudy import INPUT_SIZE
from cnn.synthetic import CLASS_NAMES, make_class_patches

SEEDS = {"benign": 1, "benign_without_callback": 1, "malignant": 2}


def sample_image(name):
    """The sample patch of class ``name`` as an ``(S, S)`` uint8 array."""
    rng = np.random.default_rng(SEEDS[name])
    patch = make_class_patches(CLASS_NAMES.index(name), 1, INPUT_SIZE, rng=rng)[0, 0]
    return np.round(patch * 255).astype(np.uint8)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).resolve().parent.parent / "images"
    parser.add_argument("--out", type=Path, default=default_out, help="folder for the PNG files")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in CLASS_NAMES:
        path = args.out / f"{name}.png"
        Image.fromarray(sample_image(name)).save(path, format="PNG")
        print(path)


if __name__ == "__main__":
    main()
