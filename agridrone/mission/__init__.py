"""Mission files agronomists write: load + validate (loader, validate), plan (survey, routing),
compile to MAVLink items (compile), import/export (formats), draw (render), upload (upload).

Kept empty of imports so that ``agridrone bench`` and the CLI stay light until a command runs.
"""
