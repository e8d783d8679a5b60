# Metadata lives in setup.cfg. This file exists for Beam's --setup_file, which ships the
# package to Dataflow / Spark / Flink workers by building an sdist with it.
from setuptools import setup

setup()
