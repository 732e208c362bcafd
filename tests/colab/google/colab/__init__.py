"""A stand-in for Colab's ``google.colab`` package, for the Colab replica test (no browser, no Drive).

It has what the workshop's notebooks call: ``output.enable_custom_widget_manager`` (records that it
was called) and ``drive.mount`` (makes the mount point's ``MyDrive`` folder on the local disk).
"""

from google.colab import drive, output  # noqa: F401
