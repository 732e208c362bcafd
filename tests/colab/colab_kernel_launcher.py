"""Start an IPython kernel the way Colab's ``colab_kernel_launcher`` does: ``google.colab`` imported first.

The kernelspec of the Colab replica runs ``python -m colab_kernel_launcher -f {connection_file}``.
"""

import google.colab  # noqa: F401  (in sys.modules before any cell runs, as on Colab)
from ipykernel import kernelapp

if __name__ == "__main__":
    kernelapp.launch_new_instance()
