"""agridrone: the companion-computer application for farm survey drones.

Nothing is imported here on purpose: `import agridrone` has no side effects and pulls in
neither OpenCV, pymavlink nor a model runtime.
"""

__version__ = "0.1.0"
