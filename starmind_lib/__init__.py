"""Starmind: how good a language model can run on a Raspberry Pi Pico (RP2040)?

The shared library behind the study's notebooks. Importing it has no side
effects; every function takes its configuration explicitly. See ARCHITECTURE.md.
"""
__version__ = "0.1.0"
