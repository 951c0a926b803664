"""The built-in ArduCopter-like simulator (``agridrone sim``): a point-mass copter that speaks
MAVLink 2 the way ArduCopter 4.7 does. See ``app.py`` for the command line and ``launcher.py``
to start it as a subprocess from tests.
"""
