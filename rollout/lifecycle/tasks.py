"""The autopilot's periodic tick as a Celery task: beat sends it every ROLLOUT_AUTOPILOT_SECONDS."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="rollout.autopilot", ignore_result=True)
def autopilot():
    """Advance or pause every query on its plan, once (rollout.lifecycle.autopilot.tick)."""
    from rollout.lifecycle.autopilot import tick

    for move in tick():
        logger.info("autopilot: %s", move)
