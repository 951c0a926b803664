"""Onboard perception: the TFLite runtime, detector decoders, plant health and vegetation indices.

Import the submodules you need (``agridrone.perception.detector``, ``.health``, ``.runtime``); this
package imports nothing heavy by itself.
"""
