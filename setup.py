# setuptools reads everything else from setup.cfg; only cffi_modules has no declarative form.
from setuptools import setup

setup(cffi_modules=["native/build_native.py:ffibuilder"])
