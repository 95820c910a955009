"""plotly.js served from the plotly package itself: no vendored copy, no build step.

Only `plotly/plotly.min.js` of the package's data is a static file; its widget bundle
and sample datasets (another 5 MB) would only slow `collectstatic` and its compression.
"""
from __future__ import annotations

from pathlib import Path

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PREFIX = "plotly"
FILES = ("plotly.min.js",)
SOURCE = Path(plotly.__file__).parent / "package_data"


class PlotlyFinder(BaseFinder):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=SOURCE)
        self.storage.prefix = PREFIX

    def check(self, **kwargs):
        return []

    def find(self, path, find_all=False, **kwargs):
        find_all = find_all or kwargs.get("all", False)
        prefix, _, name = path.partition("/")
        match = str(SOURCE / name) if prefix == PREFIX and name in FILES else None
        if find_all:
            return [match] if match else []
        return match

    def list(self, ignore_patterns):
        for name in FILES:
            yield name, self.storage
