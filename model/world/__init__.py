"""The tiny world: a synthetic collection of images, clips and PDFs whose answers are known."""

import os
from pathlib import Path

REFERENCE_MODEL_ENV = "UME_REFERENCE_MODEL"
# The reference model trained on this world, shipped in the repository (see its README.md). An
# installed copy of the package (a wheel, the Docker image) lies outside the repository, so the
# model's folder can be named in $UME_REFERENCE_MODEL.
IN_REPOSITORY = Path(__file__).resolve().parents[2] / "models" / "ume-r1-tiny-world"
REFERENCE_MODEL = Path(os.environ.get(REFERENCE_MODEL_ENV) or IN_REPOSITORY)
