"""Shared test helpers: replay a capture through the pipeline as `sniffroute replay` does."""

from __future__ import annotations

from pathlib import Path

from parsers.capture import open_capture
from sniffroute.pipeline import Pipeline

FIXTURES = Path(__file__).parent / "fixtures"


def replay(*captures: Path | str, pipeline: Pipeline | None = None) -> Pipeline:
    pipeline = pipeline or Pipeline()
    last = 0.0
    for capture_path in captures:
        with open_capture(capture_path) as capture:
            for frame in capture:
                pipeline.feed_frame(frame.linktype, frame.data, frame.timestamp, frame.wire_len)
                last = frame.timestamp
    pipeline.finish(last)
    pipeline.commit()
    return pipeline
