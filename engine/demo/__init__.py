"""The built-in demo: phantoms, demo files, the demo architecture and the demo audit."""
