"""The segmentation workshop's helper library.

Each module is one stage of the data path (see README): ``config`` -> ``data`` -> ``augment`` ->
``models`` -> ``losses`` -> ``metrics`` -> ``engine`` -> ``inference`` / ``viz``.
Exercises live in ``workshop.tasks``.
"""

__version__ = "0.1.0"
