"""Orders written straight into the bridge's database for the WHMCS module's ListAccounts test (issue 16): 250
orders are too many to deploy, and Server Sync lists what the bridge knows, deployed or not.

None is active: an active order is one the worker's backup schedule and drill look at, so the seeded orders are
suspended, terminated, pending or failed (no container, no operation: the worker leaves them alone; the usage
sampler samples the ones not terminated as idle).
"""
from __future__ import annotations

import datetime as dt

from app.config import Settings

STATUSES = ("suspended", "terminated", "pending", "failed")


def seed_accounts(settings: Settings, first_service_id: int, count: int) -> dict[str, str]:
    """Write ``count`` orders of busybox-demo for WHMCS services ``first_service_id`` on, statuses in turn
    (:data:`STATUSES`), each a minute older than the one before; returns the environment the PHPUnit test reads
    (GEOCATLIVE_SEEDED_FIRST, GEOCATLIVE_SEEDED_COUNT). The bridge's migrations and catalog sync must have run."""
    from app.db import connect_database
    from app.models import Customer, Order, Product, utcnow

    db = connect_database(settings.database_url)
    try:
        with db.atomic():
            product = Product.get(Product.slug == "busybox-demo")
            customer = Customer.create(email="sync@example.org", whmcs_client_id=None)
            now = utcnow()
            Order.insert_many([{
                "whmcs_service_id": first_service_id + n, "customer": customer.id, "product": product.id,
                "revision": product.current_revision_id, "plan": "small", "instance": f"sync{n}",
                "hostname": f"sync{n}.{settings.base_domain}", "status": STATUSES[n % len(STATUSES)],
                "secrets": {}, "published_ports": {}, "created_at": now - dt.timedelta(minutes=n), "updated_at": now,
                "terminated_at": now if STATUSES[n % len(STATUSES)] == "terminated" else None,
                "ingress_pending": False} for n in range(count)]).execute()
    finally:
        db.close()
    return {"GEOCATLIVE_SEEDED_FIRST": str(first_service_id), "GEOCATLIVE_SEEDED_COUNT": str(count)}
