"""The retail example: a web shop, a warehouse worker, a webhook and a failing consumer.

Run it with ``.venv/bin/python examples/retail/run.py``; ``README.md`` walks through it.
"""
