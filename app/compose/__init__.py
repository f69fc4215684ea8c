"""A product's compose file, from the document as read to the typed stack the deployer consumes.

The pipeline is :mod:`app.compose.pipeline`; the stack model :mod:`app.compose.model`.
This package depends on nothing of ``app.catalog``, ``app.stacks`` or ``app.orders``
(tests/unit/test_layering.py keeps it so).
"""
