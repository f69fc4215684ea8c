"""Ingress: what makes ``<scheme>://<hostname><path>`` reach an order's services (issue 12).

- :mod:`app.ingress.routes`: the desired route of an order, from its status, operations and ports (pure);
- :mod:`app.ingress.pages`: the pages customers see while an order is not serving;
- :mod:`app.ingress.caddy`: the adapter that writes routes into Caddy through its admin API (the one
  module that talks to Caddy);
- :mod:`app.ingress.service`: when and what to apply (the worker after each operation, and a resync).
"""
