"""Logging is configured here, once per process; modules only call getLogger(__name__)."""
import logging

_configured = False


def configure_logging(level: str = "INFO") -> None:
    global _configured
    if _configured:
        return
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
    )
    # The docker SDK and urllib3 log every HTTP request at DEBUG; keep them quiet.
    for noisy in ("docker", "urllib3", "apscheduler.executors", "apscheduler.scheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # peewee's DEBUG log prints every SQL statement with its parameters, generated
    # passwords included: never let it through, whatever the level.
    logging.getLogger("peewee").setLevel(logging.INFO)
    _configured = True
