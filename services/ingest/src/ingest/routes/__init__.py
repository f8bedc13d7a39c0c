"""Ingest's HTTP routes, one ``APIRouter`` per resource (``ingest.app`` composes them)."""
