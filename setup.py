# Metadata lives in setup.cfg. Beam's workers get semantica as a wheel built from a copy of the
# source in a temporary folder (semantica/portable.py), not through --setup_file, which would build an
# sdist inside the checkout.
from setuptools import setup

setup()
