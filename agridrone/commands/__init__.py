"""One module per ``agridrone`` sub-command; each exposes ``register(subparsers)``.

Modules here must import nothing heavy at top level: do it inside the command's function.
"""
