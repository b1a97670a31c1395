"""Write the three sample images of images/, one synthetic patch per class, bit for bit::

    python scripts/make_sample_images.py            # rewrites images/*.png
    python scripts/make_sample_images.py --out DIR  # writes them somewhere else

The images come from ``cnn.casestudy.synthetic.write_sample_images``: one patch per class at the case
study's input size, drawn with the fixed seeds ``cnn.casestudy.synthetic.SAMPLE_SEEDS``, scaled to 8 bits
and saved as grayscale PNG files without metadata.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cnn.casestudy.networks import INPUT_SIZE
from cnn.casestudy.synthetic import write_sample_images


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].rstrip(":"))
    default_out = Path(__file__).resolve().parent.parent / "images"
    parser.add_argument("--out", type=Path, default=default_out, help="folder for the PNG files")
    args = parser.parse_args(argv)
    for path in write_sample_images(args.out, INPUT_SIZE):
        print(path)


if __name__ == "__main__":
    main()
