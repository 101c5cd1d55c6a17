"""Celery workers and beat: ``celery -A workers worker`` / ``celery -A workers beat``."""

from workers.celery_app import app

__all__ = ["app"]
